"""Viewer benchmark (offscreen): W/L frame time, open -> first pixel / findings, event-loop stalls.

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_viewer.py`` (``--help`` for options).

1. Frame time of one window/level change plus a synchronous repaint of a 3000x3000 uint16 film,
   measured side by side in one process on the same widget size:
   pyqtgraph's plain path (``ImageItem.setLevels`` on the uint16 array), pyqtgraph with a
   precomputed 65536-entry lookup table, pyqtgraph's ``autoDownsample``, and the viewer's path
   (uint16 pyramid, codes resampled to the screen grid once per pan/zoom, a 65536-entry ARGB table
   per W/L change, Qt's native pixel format), fitted and at 1:1.
2. Open -> first pixel and open -> findings shown, in the real window with the chosen model.
3. The longest event-loop stall (QTimer probe every 5 ms) while the model runs, per torch thread
   count, next to an idle baseline.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402


def film(size: int, seed: int = 0) -> np.ndarray:
    """A 12-bit chest-like uint16 film (smooth body, dark lungs, noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    body = 2600 + 800 * np.cos((x - 0.5) * np.pi)
    for cx in (0.3, 0.7):
        body -= 1700 * ((((x - cx) / 0.17) ** 2 + ((y - 0.5) / 0.3) ** 2) < 1)
    body += rng.normal(0, 30, size=body.shape).astype(np.float32)
    return np.clip(body, 0, 4095).astype(np.uint16)


def stats(samples: list[float]) -> str:
    s = sorted(samples)
    p95 = s[min(len(s) - 1, int(0.95 * len(s)))]
    return f"median {statistics.median(s):6.2f} ms   p95 {p95:6.2f} ms   max {s[-1]:6.2f} ms"


def time_frames(step, repaint, frames: int) -> list[float]:  # noqa: ANN001
    for i in range(3):
        step(i)
        repaint()
    out = []
    for i in range(frames):
        t0 = time.perf_counter()
        step(i)
        repaint()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_window_level(app, size: int, frames: int, width: int, height: int) -> dict[str, float]:  # noqa: ANN001
    import pyqtgraph as pg

    from viewer.image_view import ImageViewWidget
    from viewer.theme import configure_pyqtgraph

    configure_pyqtgraph()
    data = film(size)
    lo, hi = 600.0, 3400.0
    results: dict[str, float] = {}
    print(
        f"\n[1] W/L change + repaint, {size}x{size} uint16, widget {width}x{height}, {frames} frames"
    )

    def pg_widget(**item_kwargs):  # noqa: ANN003, ANN202
        widget = pg.GraphicsLayoutWidget()
        widget.resize(width, height)
        vb = widget.addViewBox(lockAspect=True, invertY=True)
        item = pg.ImageItem(axisOrder="row-major", **item_kwargs)
        vb.addItem(item)
        item.setImage(data, levels=(lo, hi))
        widget.show()
        vb.autoRange(padding=0)
        app.processEvents()
        return widget, item

    widget, item = pg_widget()
    plain = time_frames(
        lambda i: item.setLevels((lo + 7 * (i % 50), hi)), widget.viewport().repaint, frames
    )
    widget.close()
    widget, item = pg_widget()
    codes = np.arange(65536, dtype=np.float64)

    def lut_step(i: int) -> None:
        lut = np.clip((codes - (lo + 7 * (i % 50))) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
        item.setLevels(None)
        item.setLookupTable(lut)

    pg_lut = time_frames(lut_step, widget.viewport().repaint, frames)
    widget.close()
    widget, item = pg_widget(autoDownsample=True)
    pg_down = time_frames(
        lambda i: item.setLevels((lo + 7 * (i % 50), hi)), widget.viewport().repaint, frames
    )
    widget.close()

    view = ImageViewWidget()
    view.resize(width, height)
    view.show()
    app.processEvents()

    class Film:
        pixels = data.astype(np.float32)
        window = ((lo + hi) / 2, hi - lo)
        spacing_mm = (0.15, 0.15)
        voi_function = "LINEAR"

    t0 = time.perf_counter()
    view.set_image(Film())
    app.processEvents()
    set_ms = (time.perf_counter() - t0) * 1e3

    def ours_step(i: int) -> None:
        view.set_window((lo + hi) / 2 + 7 * (i % 50), hi - lo)

    ours_fit = time_frames(ours_step, view.graphics.viewport().repaint, frames)
    fit_shape = view.displayed_array().shape
    view.one_to_one()
    app.processEvents()
    ours_one = time_frames(ours_step, view.graphics.viewport().repaint, frames)
    one_shape = view.displayed_array().shape
    pans = []
    for i in range(frames):
        t0 = time.perf_counter()
        view.view.translateBy(x=15 if i % 40 < 20 else -15)
        app.processEvents()
        view.graphics.viewport().repaint()
        pans.append((time.perf_counter() - t0) * 1e3)
    view.close()

    base = statistics.median(plain)
    rows = [
        ("pyqtgraph plain (setLevels on uint16)", plain),
        ("pyqtgraph + 65536-entry LUT", pg_lut),
        ("pyqtgraph autoDownsample", pg_down),
        (f"viewer, fitted (shows {fit_shape[1]}x{fit_shape[0]})", ours_fit),
        (f"viewer, 1:1 (shows {one_shape[1]}x{one_shape[0]})", ours_one),
        ("viewer, pan step at 1:1 (re-crop + W/L)", pans),
    ]
    for name, samples in rows:
        ratio = statistics.median(samples) / base
        print(f"  {name:44s} {stats(samples)}   x{ratio:4.2f} of plain")
    print(f"  viewer set_image (pyramid + first render): {set_ms:.0f} ms")
    results["wl_plain_ms"] = base
    results["wl_viewer_fit_ms"] = statistics.median(ours_fit)
    results["wl_viewer_1to1_ms"] = statistics.median(ours_one)
    return results


def bench_open_and_stalls(
    app,
    model: str | None,
    size: int,
    repeats: int,
    threads: list[int],
    inferences: int,  # noqa: ANN001
) -> None:
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from bench.probe import StallProbe
    from viewer.main_window import MainWindow
    from viewer.theme import apply_theme

    apply_theme(app)
    tmp = Path(tempfile.mkdtemp(prefix="bench_viewer_"))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.viewer.helpers import write_dicom

    files = [
        write_dicom(tmp / f"film{i}.dcm", film(size, seed=i), window=(2000, 3000)) for i in range(2)
    ]

    def wait(signal, timeout_s: float = 300.0) -> list:  # noqa: ANN001
        loop = QEventLoop()
        got: list = []

        def done(*args) -> None:  # noqa: ANN002
            got.append(args)
            loop.quit()

        signal.connect(done)
        QTimer.singleShot(int(timeout_s * 1000), loop.quit)
        loop.exec()
        signal.disconnect(done)
        if not got:
            raise SystemExit(f"timed out waiting for {signal}")
        return list(got[0])

    for n_threads in threads:
        settings = QSettings(str(tmp / f"s{n_threads}.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            model,
            "cpu",
            settings=settings,
            index_cache=False,
            torch_threads=n_threads,
            thumbnails=False,
        )
        window.resize(1600, 1000)
        window.show()
        wait(window.model_ready)
        info = window.state.model
        print(
            f"\n[2] open -> first pixel / findings: {size}x{size} DICOM, model '{info.name}' "
            f"on {info.device}, torch threads {n_threads}"
        )
        first, findings, infer = [], [], []
        for r in range(repeats + 1):
            path = files[r % 2]
            window.session.current_path = None
            window.open_path(path)
            wait(window.result_shown)
            if r == 0:
                continue  # warm-up (first forward pass allocates)
            first.append(window.timings["first_pixel_ms"])
            findings.append(window.timings["findings_ms"])
            infer.append(window.timings["inference_ms"])
        print(f"  open -> first pixel    {stats(first)}")
        print(f"  open -> findings shown {stats(findings)}")
        print(f"  inference round trip   {stats(infer)}")

        probe = StallProbe(5)
        probe.start()
        loop = QEventLoop()
        QTimer.singleShot(1000, loop.quit)
        loop.exec()
        idle = probe.stop()
        idle_gaps = sorted(probe.gaps)

        # Torch alone: the window does not handle the results (only the hub sees them).
        window.hub.result_ready.disconnect(window.session._on_hub_result_ready)
        probe.start()
        for _ in range(inferences):
            window.hub.request_inference(window.state.image.image)
            wait(window.hub.result_ready)
        bare = probe.stop()
        bare_gaps = sorted(probe.gaps)
        window.hub.result_ready.connect(window.session._on_hub_result_ready)
        # The real thing: each result is listed, its heatmap drawn, the level strip refreshed.
        probe.start()
        for _ in range(inferences):
            window.hub.request_inference(window.state.image.image)
            wait(window.grid_drawn)
        busy = probe.stop()
        gaps = sorted(probe.gaps)

        def p99(values: list[float]) -> float:
            return values[int(0.99 * (len(values) - 1))] if values else 0.0

        print(f"\n[3] event-loop stalls (QTimer probe, 5 ms), torch threads {n_threads}")
        print(
            f"  idle 1 s:                                  longest {idle:6.1f} ms   "
            f"p99 {p99(idle_gaps):5.1f} ms"
        )
        print(
            f"  {inferences} inferences with CAMs, results unhandled: longest {bare:6.1f} ms   "
            f"p99 {p99(bare_gaps):5.1f} ms"
        )
        print(
            f"  {inferences} inferences, results shown (list, heatmap, strip): longest {busy:6.1f} ms"
            f"   p99 {p99(gaps):5.1f} ms   ({probe.ticks} ticks)"
        )

        probe.start()
        for r in range(repeats):
            window.session.current_path = None
            window.open_path(files[r % 2])
            wait(window.result_shown)
        both = probe.stop()
        print(
            f"  during {repeats} x (open {size}px DICOM + inference + overlay): longest {both:6.1f} ms"
        )
        print("  (the open path includes the GUI-thread work: first render, overlay, level grid)")
        window.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=3000, help="film side in pixels")
    p.add_argument("--frames", type=int, default=60, help="W/L frames per variant")
    p.add_argument("--width", type=int, default=1280, help="view width")
    p.add_argument("--height", type=int, default=960, help="view height")
    p.add_argument("--model", default=None, help="checkpoint/ensemble (default: bundled model)")
    p.add_argument("--repeats", type=int, default=3, help="opens per measurement")
    p.add_argument("--threads", default="1,2", help="torch thread counts to compare")
    p.add_argument("--inferences", type=int, default=5, help="inferences under the stall probe")
    p.add_argument("--skip-open", action="store_true", help="only the W/L benchmark")
    p.add_argument("--skip-wl", action="store_true", help="skip the W/L benchmark")
    args = p.parse_args()

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, Qt platform {os.environ['QT_QPA_PLATFORM']}"
    )
    if not args.skip_wl:
        bench_window_level(app, args.size, args.frames, args.width, args.height)
    if not args.skip_open:
        threads = [int(t) for t in args.threads.split(",") if t]
        bench_open_and_stalls(app, args.model, args.size, args.repeats, threads, args.inferences)
    return 0


if __name__ == "__main__":
    sys.exit(main())

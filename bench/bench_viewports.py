"""Reading-room benchmark (offscreen): linked W/L across two viewports, opening a study with a prior.

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_viewports.py`` (``--help`` for options).

1. Frame time of one W/L drag step plus a synchronous repaint of every view, measured side by
   side in one process (the arms interleaved step by step, so load hits them alike) on 3000x3000
   uint16 films: one viewport alone (the same widget the main window uses); two linked viewports
   of the same total size as the reading room draws them (the drag in one leads, the other follows
   at half resolution until the release, ``viewer/view_links.py``); and, for reference, two linked
   viewports that draw every followed step exactly (how the link worked before). The release
   frame, where the followers draw their exact frame, is timed apart. Target: two linked
   viewports within 1.2x of one.
2. Opening a study with a prior: index a folder with a patient's current and prior 3000x3000
   study, open the current one in the real window, press "Compare with prior" and time until
   both films (with their corner text) are on screen; findings with the chosen model follow.
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

from bench.bench_viewer import film, stats  # noqa: E402


def write_film(path: Path, size: int, seed: int, patient: str, date: str) -> Path:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.StudyDate = patient, patient, date
    ds.Modality, ds.ViewPosition, ds.PatientOrientation = "DX", "PA", ["L", "F"]
    pixels = film(size, seed)
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelSpacing = ["0.139", "0.139"]
    ds.WindowCenter, ds.WindowWidth = "2000", "3000"
    ds.PixelData = pixels.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def bench_linked_window_level(app, size: int, frames: int, width: int, height: int) -> float:  # noqa: ANN001
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QHBoxLayout, QWidget

    from fpsm_core.io.image import XRayImage
    from viewer import display
    from viewer.corner_text import DEFAULT_CORNERS
    from viewer.state import ViewerState
    from viewer.view_links import ViewLinker
    from viewer.viewports import Viewport

    print(
        f"\n[1] W/L drag step + repaint, {size}x{size} uint16, {width}x{height} in all, {frames} frames"
    )
    films = [film(size, seed) for seed in (0, 1)]
    images = [
        XRayImage(
            pixels=f.astype(np.float32),
            window=(2000.0, 3000.0),
            spacing_mm=None,
            path=Path(f"f{i}"),
        )
        for i, f in enumerate(films)
    ]
    pyramids = [display.build_pyramid(f) for f in films]

    def make(count: int) -> tuple[QWidget, list[Viewport]]:
        host = QWidget()
        row = QHBoxLayout(host)
        row.setContentsMargins(0, 0, 0, 0)
        ports = []
        for i in range(count):
            vp = Viewport(i, ViewerState(), None, DEFAULT_CORNERS)
            row.addWidget(vp)
            ports.append(vp)
        host.resize(width, height)
        host.show()
        app.processEvents()
        for vp, image, pyramid in zip(ports, images, pyramids, strict=False):
            vp.view.set_image(image, pyramid)
        app.processEvents()
        return host, ports

    def stepper(ports: list, preview: bool):  # noqa: ANN001, ANN202
        views = [vp.view for vp in ports]
        linker = ViewLinker(ports[0])
        linker.set_views(views)
        source = views[-1]
        if preview:  # a right-drag's press: the followers preview until the release
            source.view.window_drag_started.emit()

        def frame(i: int, flush: bool) -> tuple[float, float]:
            t0, c0 = time.perf_counter(), time.thread_time()
            # What one right-drag mouse move does: a window_dragged step on the view box.
            source.view.window_dragged.emit(
                float(3 if i % 2 else -3), float(2 if i % 4 < 2 else -2)
            )
            if flush:  # what the event loop does next: all that the step posted, paints too
                for _ in range(3):  # what the first round posts (layout, scene) in the next
                    app.processEvents()
            else:  # force a repaint of each view in turn
                for v in views:
                    v.graphics.viewport().repaint()
            return (time.perf_counter() - t0) * 1e3, (time.thread_time() - c0) * 1e3

        def release() -> float:
            t0 = time.perf_counter()
            source.view.window_drag_finished.emit()
            for v in views:
                v.graphics.viewport().repaint()
            ms = (time.perf_counter() - t0) * 1e3
            if preview:
                source.view.window_drag_started.emit()  # the next drag
            return ms

        return frame, release

    arms = (("one", 1, False), ("two", 2, True), ("two_exact", 2, False))
    hosts = {name: make(count) for name, count, _p in arms}
    steppers = {name: stepper(hosts[name][1], preview) for name, _c, preview in arms}
    paints: dict[tuple[int, bool], int] = {}  # paint events per (view, mode) in timed steps
    counting: list[bool | None] = [None]  # the mode of the step being timed (None: not timed)

    class PaintCounter(QObject):
        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
            mode = counting[0]
            if event.type() == QEvent.Type.Paint and mode is not None:
                key = (id(watched), mode)
                paints[key] = paints.get(key, 0) + 1
            return False

    counter = PaintCounter()
    for _host, ports in hosts.values():
        for vp in ports:
            vp.view.graphics.viewport().installEventFilter(counter)
    modes = (True, False)  # flushed like the event loop; each view repainted in turn
    keys = [(name, flush) for name in hosts for flush in modes]
    results: dict[tuple[str, bool], list[float]] = {k: [] for k in keys}
    cpu: dict[tuple[str, bool], list[float]] = {k: [] for k in keys}  # GUI-thread CPU time
    releases: dict[str, list[float]] = {name: [] for name in hosts}
    # One mode after the other (a forced repaint() leaves layout and scene events queued that
    # the next flush would paint); within a mode the arms are interleaved frame by frame, so
    # load noise hits every arm alike.
    for flush in modes:
        for i in range(10):  # warm-up
            for f, _r in steppers.values():
                f(i, flush)
        app.processEvents()
        for i in range(frames):
            for name, (f, r) in steppers.items():
                counting[0] = flush
                wall, thread = f(i, flush)
                counting[0] = None
                results[name, flush].append(wall)
                cpu[name, flush].append(thread)
                if flush and i % 20 == 19:  # a release every 20 steps
                    releases[name].append(r())
                    app.processEvents()
        app.processEvents()
    flushed_steps = frames
    med = {k: statistics.median(v) for k, v in results.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    px = {
        name: sum(vp.view.image_item.array.size for vp in ports)
        for name, (_host, ports) in hosts.items()
    }
    levels = {
        name: [vp.view.rendered_level() for vp in ports] for name, (_h, ports) in hosts.items()
    }
    rows = (
        ("one", "one viewport"),
        ("two", "two linked viewports"),
        ("two_exact", "two linked, all exact"),
    )
    print("  a step, then the event loop paints what changed (each view once):")
    for name, title in rows:
        per_view = [
            round(paints.get((id(vp.view.graphics.viewport()), True), 0) / flushed_steps, 2)
            for vp in hosts[name][1]
        ]
        print(
            f"  {title:24s} {stats(results[name, True])}   release "
            f"{statistics.median(releases[name]):6.2f} ms   {px[name] / 1e6:.2f} Mpx shown, "
            f"levels {levels[name]}, paints per view per step {per_view}"
        )
    # The GUI thread's own CPU time per step: the work of a frame, without the time the thread
    # waits for a core on a shared machine (wall figures there swing with other processes).
    for name, title in rows:
        print(f"  {title:24s} GUI-thread CPU {stats(cpu[name, True])}")
    ratio = med["two", True] / med["one", True]
    print(f"  ratio two linked / one   {ratio:.2f}x wall, "
          f"{med_cpu['two', True] / med_cpu['one', True]:.2f}x GUI-thread CPU   (target <= 1.2x)")  # fmt: skip
    print(f"  ratio all exact / one    {med['two_exact', True] / med['one', True]:.2f}x wall, "
          f"{med_cpu['two_exact', True] / med_cpu['one', True]:.2f}x GUI-thread CPU   (the link before)")  # fmt: skip
    # The first bench forced viewport().repaint() on each view in turn. The first repaint()
    # flushes every dirty region of the window, the lead's too, and the lead's own repaint()
    # then paints it again: two-view arms paint the lead twice a step that way.
    print("  each view forced to repaint() in turn (this bench's first method):")
    for name, title in rows:
        per_view = [
            round(paints.get((id(vp.view.graphics.viewport()), False), 0) / flushed_steps, 2)
            for vp in hosts[name][1]
        ]
        print(f"  {title:24s} {stats(results[name, False])}   "
              f"GUI-thread CPU median {med_cpu[name, False]:6.2f} ms, paints {per_view}")  # fmt: skip
    print(f"  ratio two linked / one   {med['two', False] / med['one', False]:.2f}x wall, "
          f"{med_cpu['two', False] / med_cpu['one', False]:.2f}x GUI-thread CPU")  # fmt: skip
    for host, _ports in hosts.values():
        host.close()
    return ratio


def bench_open_with_prior(app, size: int, model: str | None) -> None:  # noqa: ANN001
    from PySide6.QtCore import QEventLoop, QSettings, QTimer

    from viewer.main_window import MainWindow

    print(
        f"\n[2] open a study, then compare with its prior ({size}x{size}, model {model or 'bundled'})"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "patient"
        for sub in ("2024", "2021"):
            (folder / sub).mkdir(parents=True)
        current = write_film(folder / "2024" / "pa.dcm", size, 0, "BENCH", "20240301")
        prior = write_film(folder / "2021" / "pa.dcm", size, 1, "BENCH", "20210301")
        settings = QSettings(str(Path(tmp) / "s.ini"), QSettings.Format.IniFormat)
        window = MainWindow(model, "cpu", settings=settings, index_cache=False, thumbnails=False)
        window.resize(1600, 1000)
        window.show()
        grid = window.reading_room.grid

        def wait(done, timeout_s: float = 600.0) -> None:  # noqa: ANN001
            loop = QEventLoop()
            timer = QTimer()
            timer.timeout.connect(lambda: loop.quit() if done() else None)
            timer.start(2)
            deadline = time.perf_counter() + timeout_s
            while not done() and time.perf_counter() < deadline:
                loop.exec()
            timer.stop()

        wait(lambda: window.state.model is not None)
        t0 = time.perf_counter()
        window.open_path(folder)
        wait(
            lambda: grid.viewports[0].path == str(current) and grid.viewports[0].header is not None
        )
        first = (time.perf_counter() - t0) * 1e3
        wait(lambda: window.state.result is not None and grid.prior_button.isEnabled())
        t1 = time.perf_counter()
        grid.prior_button.click()
        wait(
            lambda: (
                len(grid.viewports) > 1
                and grid.viewports[1].path == str(prior)
                and grid.viewports[1].header is not None
            )
        )
        hung = (time.perf_counter() - t1) * 1e3
        wait(lambda: grid.viewports[1].state.result is not None)
        findings = (time.perf_counter() - t1) * 1e3
        print(f"  folder open -> current film + corner text   {first:8.0f} ms")
        print(f"  'Compare with prior' -> prior on screen     {hung:8.0f} ms")
        print(f"  'Compare with prior' -> prior's findings    {findings:8.0f} ms")
        window.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=3000)
    p.add_argument("--frames", type=int, default=200)
    p.add_argument("--width", type=int, default=1600)
    p.add_argument("--height", type=int, default=800)
    p.add_argument("--model", default=None, help="checkpoint for part 2 (default: bundled)")
    p.add_argument("--skip-open", action="store_true", help="only part 1")
    args = p.parse_args()
    from PySide6.QtWidgets import QApplication

    from viewer.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    print(
        f"{platform.node()}  {platform.processor() or platform.machine()}  {os.cpu_count()} cores"
    )
    bench_linked_window_level(app, args.size, args.frames, args.width, args.height)
    if not args.skip_open:
        bench_open_with_prior(app, args.size, args.model)
    return 0


if __name__ == "__main__":
    sys.exit(main())

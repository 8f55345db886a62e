"""The composition studio's drag step at 1024 px, offscreen: does the composite keep up with a hand?

One run, side by side, on a simulated 1024 px film, for a typical lung patch (the median one) and
the largest (a third of the film), each dragged along a path through both lungs, ``--steps``
positions (median and 95th percentile; only steps that moved the patch count):

- ``compose`` as ``generate`` runs it (no cache), and with a ``ComposeCache`` (the resized patch,
  its weights and the target's lung estimate kept between calls);
- ``recipe.render`` (the studio's composite: library lookup, the generator's spec, compose),
  without and with the cache;
- one drag step: a real mouse-move event on the view's viewport (the drag handler, the state
  step: snap into the lung field, render, label vector, signals, the film's new ARGB rectangle)
  and the events it leaves processed at once (the repaint of the rectangle it touched and of the
  patch list), and the same with a whole-view repaint instead (an upper bound).

The drag steps run in alternating blocks of ``--block`` steps *without* the studio's cache (its
state's ``compose_cache`` off, the lung outline stroked afresh each paint: the work done before
these were added) and *with* it, so both see the same load. Wall time is what a hand sees; the GUI
thread's CPU time beside it is the steadier figure on a shared machine. One 60 Hz frame is 16.7 ms.

With ``--check N`` it also times, N interleaved repeats on the same composite, the model check
the studio runs: the two bare forwards (original and composite, one batch, no CAMs), the core's
``check_composition`` (the same forwards with the closed-form CAMs and the readout), and the
studio's whole round trip (button click to the table and the per-level maps on screen, on the
model thread), with the bundled demo ensemble (or ``--model``).

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_studio_gui.py [--size 1024] [--steps 100]
[--block 10] [--check 5] [--model M]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME_MS = 1000.0 / 60.0
MODES = ("without cache", "with cache")


@dataclass
class Timings:
    """Wall and GUI-thread CPU milliseconds of one step kind, per mode."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})


def _stats(xs: list[float]) -> tuple[float, float]:
    if not xs:
        return float("nan"), float("nan")
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def _path(steps: int) -> list[tuple[float, float]]:
    """Up and down the left lung, then the right one: every step a new place in the field."""
    import numpy as np

    half = max(steps // 2, 1)
    return [
        (
            0.3 + 0.4 * (i >= steps // 2) + 0.03 * float(np.sin(i / 5.0)),
            0.3 + 0.3 * abs(((2 * i / half) % 2) - 1),
        )
        for i in range(steps)
    ]


def measure_core(target: Any, recipe: Any, lib: Any, steps: int) -> dict[str, Timings]:
    """compose and render along the path, without and with a ComposeCache, step by step."""
    import numpy as np

    from fpsm_core.dadam.composition import ComposeCache, compose
    from fpsm_core.dadam.recipe import patch_specs, render

    specs = patch_specs(recipe, lib)  # library pixels: read-only, so a cache may keep them
    dest = target.pixels  # a loaded target: read-only
    cache_c, cache_r = ComposeCache(), ComposeCache()
    out = {"compose": Timings(), "render": Timings()}
    for x, y in _path(steps):
        sp = [replace(s, center=(x, y)) for s in specs]
        moved = recipe.moved(0, (x, y))
        for mode, cc, cr in ((MODES[0], None, None), (MODES[1], cache_c, cache_r)):
            t0, c0 = time.perf_counter(), time.thread_time()
            compose(dest, sp, dest_spacing=target.spacing, rng=np.random.default_rng(0), cache=cc)
            out["compose"].wall[mode].append((time.perf_counter() - t0) * 1e3)
            out["compose"].cpu[mode].append((time.thread_time() - c0) * 1e3)
            t0, c0 = time.perf_counter(), time.thread_time()
            render(moved, lib, target=(target.pixels, target.spacing), cache=cr)
            out["render"].wall[mode].append((time.perf_counter() - t0) * 1e3)
            out["render"].cpu[mode].append((time.thread_time() - c0) * 1e3)
    return out


def measure(
    app: Any, window: Any, target: Any, patch: Any, steps: int, block: int
) -> tuple[dict[str, Timings], int]:
    """Time compose, render and the two drag steps for one patch; modes in alternating blocks."""
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication, QGraphicsItem

    studio = window.studio
    state = studio.state
    cache = state.compose_cache
    state.set_patches(())
    window.state.set_selection([patch.id])
    studio.add_selection()
    app.processEvents()
    lib = window.state.session.library
    h, w = target.pixels.shape
    path = _path(steps)
    out = measure_core(target, state.recipe, lib, steps)
    view = studio.view
    view.fit()
    app.processEvents()
    viewport = view.graphics.viewport()

    def send(kind: Any, pos: Any, buttons: Any) -> None:
        ev = QMouseEvent(
            kind,
            pos,
            QPointF(viewport.mapToGlobal(pos.toPoint())),
            Qt.MouseButton.LeftButton,
            buttons,
            Qt.KeyboardModifier.NoModifier,
        )
        QApplication.sendEvent(viewport, ev)

    def use(mode: str) -> None:
        cached = mode == MODES[1]
        state.compose_cache = cache if cached else None
        view.outline.setCacheMode(
            QGraphicsItem.CacheMode.DeviceCoordinateCache
            if cached
            else QGraphicsItem.CacheMode.NoCache
        )

    moved = 0
    for kind in ("drag", "drag, whole view"):
        times = out[kind] = Timings()
        use(MODES[0])
        state.move_patch(0, path[0])
        app.processEvents()
        box = state.composition.placements[0].box
        pos = view.image_to_viewport((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        send(QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton)
        first = view.image_to_viewport(path[0][0] * w, path[0][1] * h)
        grab = (pos.x() - first.x(), pos.y() - first.y())
        moved = 0
        for i, (x, y) in enumerate(path[1:]):
            mode = MODES[(i // block) % 2]
            if i % block == 0:
                use(mode)
                app.processEvents()  # the outline's new cache mode repaints outside the timing
            p = view.image_to_viewport(x * w, y * h)
            pos = QPointF(p.x() + grab[0], p.y() + grab[1])
            rev = state.revision
            t0, c0 = time.perf_counter(), time.thread_time()
            send(QEvent.Type.MouseMove, pos, Qt.MouseButton.LeftButton)
            if kind == "drag":
                app.processEvents()  # the paints the step left: the touched rectangle, the list
            else:
                viewport.repaint()
            if state.revision != rev:  # a position snapped to the last one re-composes nothing
                times.wall[mode].append((time.perf_counter() - t0) * 1e3)
                times.cpu[mode].append((time.thread_time() - c0) * 1e3)
                moved += 1
        send(QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.NoButton)
    use(MODES[1])
    return out, moved


ROWS = (
    ("compose", "`compose` (no cache: as `generate` runs it)"),
    ("render", "`recipe.render` (the studio's composite)"),
    ("drag", "drag step: mouse move + the paints it leaves (touched rectangle, patch list)"),
    ("drag, whole view", "drag step with a whole-view repaint (upper bound)"),
)


def report(results: dict[str, tuple[Any, dict[str, Timings], int]], steps: int, size: int) -> None:
    load = os.getloadavg()
    print(f"studio drag at {size} px, {steps} steps, load average {load[0]:.2f} {load[1]:.2f}")
    print(
        "| patch | step | without cache: median / p95 ms | with cache: median / p95 ms "
        "| with cache, CPU: median / p95 ms | p95 / frame |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, (patch, timings, moved) in results.items():
        label = f"{name} ({patch.width}x{patch.height} px crop, {moved} moves)"
        for key, text in ROWS:
            t = timings[key]
            b_med, b_p95 = _stats(t.wall[MODES[0]])
            a_med, a_p95 = _stats(t.wall[MODES[1]])
            c_med, c_p95 = _stats(t.cpu[MODES[1]])
            print(
                f"| {label} | {text} | {b_med:.2f} / {b_p95:.2f} | {a_med:.2f} / {a_p95:.2f} "
                f"| {c_med:.2f} / {c_p95:.2f} | {a_p95 / FRAME_MS:.2f} |"
            )
            label = ""


def measure_check(
    app: Any, lib_root: Path, target: Any, patch: Any, repeats: int, model: str | None
) -> dict[str, list[float]]:
    """Bare forwards, the core's check and the studio's round trip, interleaved."""
    from PySide6.QtCore import QEventLoop, QTimer

    from fpsm_core.dadam.model_check import as_service, check_composition, grey_image
    from viewer.patch_editor import PatchEditorWindow

    window = PatchEditorWindow(lib_root, model=model)
    window.resize(1600, 1000)
    window.show()
    studio = window.studio
    window.tabs.setCurrentWidget(studio)
    studio.state.set_target(target)
    window.state.set_selection([patch.id])
    studio.add_selection()
    comp = studio.state.composition
    box, label = comp.placements[0].box, comp.placements[0].label
    service = as_service(studio.model.model_path, "auto")
    images = [grey_image(target.pixels, "original"), grey_image(comp.image)]
    service.predict(images)  # warm-up: first-call allocations
    loop = QEventLoop()
    studio.check_panel.check_shown.connect(lambda _r: loop.quit())
    studio.check_panel.check_failed.connect(lambda _m: loop.quit())

    def round_trip() -> float:
        t0 = time.perf_counter()
        QTimer.singleShot(0, studio.check_panel.button.click)
        loop.exec()
        app.processEvents()
        return (time.perf_counter() - t0) * 1e3

    round_trip()  # warm-up: the model thread loads its own copy of the model
    out: dict[str, list[float]] = {"bare": [], "core": [], "studio": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        service.predict(images)
        out["bare"].append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        check_composition(service, target.pixels, comp.image, box, label)
        out["core"].append((time.perf_counter() - t0) * 1e3)
        out["studio"].append(round_trip())
    window.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=100, help="drag positions per patch (>= 50)")
    ap.add_argument("--block", type=int, default=10, help="steps per block of one mode")
    ap.add_argument("--check", type=int, default=0, help="repeats of the model check timing")
    ap.add_argument("--model", default=None, help="checkpoint or ensemble (default: the demo)")
    args = ap.parse_args()
    import pyqtgraph as pg
    from PySide6.QtWidgets import QApplication

    from fpsm_core import sim
    from fpsm_core.dadam import PatchLibrary, import_boxes, read_boxes
    from fpsm_core.dadam.composition import LUNG_FIELD_CLASSES
    from viewer.patch_editor import PatchEditorWindow
    from viewer.patch_editor.studio import model as sm
    from viewer.theme import apply_theme

    pg.setConfigOption("mouseRateLimit", 0)  # every synthetic move is handled, none coalesced
    app = QApplication.instance() or QApplication([])
    apply_theme(app)  # type: ignore[arg-type]
    results: dict[str, tuple[Any, dict[str, Timings], int]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_studio_") as tmp:
        base = Path(tmp)
        sim.write_dataset(base, n=8, seed=5, format="png", size=args.size)
        lib_root = base / "lib"
        with PatchLibrary(lib_root) as lib:
            import_boxes(lib, read_boxes(base / "boxes.csv", "fpsm"), base)
            lung = sorted(
                (p for p in lib.patches() if p.label in LUNG_FIELD_CLASSES),
                key=lambda p: p.width * p.height,
            )
            # A typical patch (the median lung patch) and the largest: compose's cost is the
            # patch's area, and the simulator's opacities span a third of the film.
            picks = {"typical": lung[len(lung) // 2], "largest": lung[-1]}
        window = PatchEditorWindow(lib_root)
        window.resize(1600, 1000)
        window.show()
        studio = window.studio
        window.tabs.setCurrentWidget(studio)
        refs = sm.targets_from_csv(base / "labels.csv")
        studio.state.set_targets(refs, None)
        target = sm.load_target(refs[0])
        studio.state.set_target(target)
        for name, patch in picks.items():
            timings, moved = measure(app, window, target, patch, args.steps, args.block)
            results[name] = (patch, timings, moved)
        window.close()
        if args.check:
            checks = measure_check(app, lib_root, target, picks["typical"], args.check, args.model)
    report(results, args.steps, args.size)
    if args.check:
        bare = statistics.median(checks["bare"])
        print(f"\nmodel check at {args.size} px, {args.check} interleaved repeats (medians)")
        print("| what | ms | ratio to the two bare forwards |")
        print("| --- | ---: | ---: |")
        for name, key in (("two bare forwards (one batch, no CAMs)", "bare"),
                          ("check_composition (forwards + CAMs + readout)", "core"),
                          ("studio round trip (click to table and maps shown)", "studio")):  # fmt: skip
            med = statistics.median(checks[key])
            print(f"| {name} | {med:.0f} | {med / bare:.3f} |")


if __name__ == "__main__":
    main()

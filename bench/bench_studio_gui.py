"""The composition studio's drag step at 1024 px, offscreen: does the composite keep up with a hand?

One run, side by side, on a simulated 1024 px film with a lung patch placed on it:

- ``compose`` alone (the core's paste, lung field estimated as ``generate`` does);
- ``recipe.render`` (the studio's composite: library lookup, the generator's spec, compose);
- one state step (``StudioState.move_patch``: snap into the lung field, render, label vector, signals);
- one full drag step: a real mouse-move event on the view's viewport (the drag handler, the state
  step, the film's new ARGB image) and the viewport repainted at once (offscreen raster).

Each is timed over ``--steps`` positions along a path through both lungs (median and 95th
percentile) and compared with one 60 Hz frame (16.7 ms).

With ``--check N`` it also times, N interleaved repeats on the same composite, the model check
the studio runs: the two bare forwards (original and composite, one batch, no CAMs), the core's
``check_composition`` (the same forwards with the closed-form CAMs and the readout), and the
studio's whole round trip (button click to the table and the per-level maps on screen, on the
model thread), with the bundled demo ensemble (or ``--model``).

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_studio_gui.py [--size 1024] [--steps 200]
[--check 5] [--model M]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FRAME_MS = 1000.0 / 60.0
Row = tuple[str, float, float]


def _stats(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    return statistics.median(xs), xs[min(len(xs) - 1, int(0.95 * len(xs)))]


def measure(app: Any, window: Any, target: Any, patch: Any, steps: int, name: str) -> list[Row]:
    """Time the four steps for one patch dragged along a path through both lungs."""
    import numpy as np
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication

    from fpsm_core.dadam.composition import compose
    from fpsm_core.dadam.recipe import patch_specs, render

    studio = window.studio
    state = studio.state
    state.set_patches(())
    window.state.set_selection([patch.id])
    studio.add_selection()
    app.processEvents()
    lib = window.state.session.library
    h, w = target.pixels.shape
    path = [
        # up and down the left lung, then the right one: every step a new place in the field
        (
            0.3 + 0.4 * (i >= steps // 2) + 0.03 * float(np.sin(i / 5.0)),
            0.3 + 0.3 * abs(((2 * i / max(steps // 2, 1)) % 2) - 1),
        )
        for i in range(steps)
    ]
    recipe = state.recipe
    specs = patch_specs(recipe, lib)
    t_compose: list[float] = []
    t_render: list[float] = []
    t_state: list[float] = []
    t_drag: list[float] = []
    t_full: list[float] = []
    for x, y in path:
        sp = [replace(s, center=(x, y)) for s in specs]
        t0 = time.perf_counter()
        compose(target.pixels, sp, dest_spacing=target.spacing, rng=np.random.default_rng(0))
        t_compose.append((time.perf_counter() - t0) * 1e3)
        moved = recipe.moved(0, (x, y))
        t0 = time.perf_counter()
        render(moved, lib, target=(target.pixels, target.spacing))
        t_render.append((time.perf_counter() - t0) * 1e3)
        rev = state.revision
        t0 = time.perf_counter()
        state.move_patch(0, (x, y))
        if state.revision != rev:  # a snapped position equal to the last one re-composes nothing
            t_state.append((time.perf_counter() - t0) * 1e3)
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

    for times, full in ((t_drag, False), (t_full, True)):
        state.move_patch(0, path[0])
        app.processEvents()
        box = state.composition.placements[0].box
        pos = view.image_to_viewport((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        send(QEvent.Type.MouseButtonPress, pos, Qt.MouseButton.LeftButton)
        grab = (
            pos.x() - view.image_to_viewport(path[0][0] * w, path[0][1] * h).x(),
            pos.y() - view.image_to_viewport(path[0][0] * w, path[0][1] * h).y(),
        )
        for x, y in path[1:]:
            p = view.image_to_viewport(x * w, y * h)
            pos = QPointF(p.x() + grab[0], p.y() + grab[1])
            rev = state.revision
            t0 = time.perf_counter()
            send(QEvent.Type.MouseMove, pos, Qt.MouseButton.LeftButton)
            if full:
                viewport.repaint()
            else:
                app.processEvents()  # the paint of the region the drag updated
            if state.revision != rev:
                times.append((time.perf_counter() - t0) * 1e3)
        send(QEvent.Type.MouseButtonRelease, pos, Qt.MouseButton.NoButton)
    size = f"{patch.width}x{patch.height} px crop, {len(t_drag)} of {steps} steps moved it"
    return [
        (f"{name} patch ({size}): compose alone", *_stats(t_compose)),
        (f"{name}: recipe.render (the studio's composite)", *_stats(t_render)),
        (f"{name}: state step (snap, render, labels, film buffer)", *_stats(t_state)),
        (f"{name}: drag step, mouse move + the region's repaint", *_stats(t_drag)),
        (f"{name}: drag step, mouse move + whole-view repaint", *_stats(t_full)),
    ]


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
    ap.add_argument("--steps", type=int, default=200)
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
    rows: list[Row] = []
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
            picks = {"median": lung[len(lung) // 2], "largest": lung[-1]}
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
            rows += measure(app, window, target, patch, args.steps, name)
        window.close()
        if args.check:
            checks = measure_check(app, lib_root, target, picks["median"], args.check, args.model)
    print(f"studio drag at {args.size} px, {args.steps} steps")
    print(f"| step | median ms | p95 ms | median / frame ({FRAME_MS:.1f} ms) |")
    print("| --- | ---: | ---: | ---: |")
    for name, med, p95 in rows:
        print(f"| {name} | {med:.2f} | {p95:.2f} | {med / FRAME_MS:.2f} |")
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

"""Measurement benchmark (offscreen): what annotations cost the film, and what a change costs.

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_annotations.py [--n 50] [--frames 40]``.

Side by side in one process, on one 3000x3000 uint16 film in the viewer's film view:

1. the frame time of a window/level change plus a synchronous repaint, with no annotation and with
   ``--n`` annotations of every kind on the film (ROIs included): what drawing them costs a frame;
2. one edit (a moved ROI: the document's change, measuring and drawing what changed, the write
   to the SQLite file and a repaint), against that frame time;
3. the SQLite write alone (``AnnotationStore.save`` of the whole sheet, WAL, synchronous=NORMAL).
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

from bench.bench_viewer import film  # noqa: E402


def median_ms(fn, repeats: int) -> float:  # noqa: ANN001
    for _ in range(3):
        fn(0)
    samples = []
    for i in range(repeats):
        t0 = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(samples)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50, help="annotations on the film")
    p.add_argument("--frames", type=int, default=40, help="repeats of each measurement")
    args = p.parse_args()

    from PySide6.QtWidgets import QApplication

    from fpsm_core.annotations import AnnotationStore, Sheet, new_annotation
    from fpsm_core.io.image import XRayImage
    from viewer import display
    from viewer.annotations.controller import AnnotationController
    from viewer.image_view import ImageViewWidget
    from viewer.state import ViewerState
    from viewer.workers import LoadedImage

    app = QApplication.instance() or QApplication([])
    tmp = Path(tempfile.mkdtemp(prefix="bench_annotations_"))
    pixels = film(3000).astype(np.float32)
    image = XRayImage(pixels, (2000.0, 3000.0), (0.15, 0.15), tmp / "film.dcm", source_format="png")
    loaded = LoadedImage(image.path, image, display.build_pyramid(pixels), 0.0)
    view = ImageViewWidget()
    view.resize(1200, 1000)
    view.show()
    state = ViewerState(view)
    store = AnnotationStore(tmp / "index.sqlite3")
    controller = AnnotationController(state, view, store)
    state.set_image(loaded)
    view.set_image(image, loaded.pyramid)
    app.processEvents()
    viewport = view.graphics.viewport()

    def wl(i: int) -> None:
        view.set_window(2000 + (i % 7) * 10, 3000 - (i % 5) * 10)
        viewport.repaint()

    rng = np.random.default_rng(0)
    kinds = ("length", "angle", "cobb", "ellipse", "rectangle", "arrow", "text", "ctr")
    count = {"length": 2, "angle": 3, "cobb": 4, "ellipse": 2, "rectangle": 2, "arrow": 2}
    items = []
    for i in range(args.n):
        kind = kinds[i % len(kinds)]
        c = rng.uniform(300, 2700, 2)
        pts = [
            tuple(c + rng.uniform(-200, 200, 2))
            for _ in range(count.get(kind, 1 if kind == "text" else 4))
        ]
        items.append(new_annotation(kind, pts, "note" if kind in ("text", "arrow") else ""))
    controller.document.reset(Sheet(tuple(items)))
    app.processEvents()
    graphics = [g for pair in controller._items.values() for g in pair]

    def shown(visible: bool) -> None:
        for g in graphics:
            g.setVisible(visible)
        viewport.repaint()

    # Interleaved blocks (the build machine is shared): bare and annotated frames alternate.
    bare_ms, drawn_ms = [], []
    for _ in range(5):
        shown(False)
        bare_ms.append(median_ms(wl, max(4, args.frames // 5)))
        shown(True)
        drawn_ms.append(median_ms(wl, max(4, args.frames // 5)))
    bare, drawn = statistics.median(bare_ms), statistics.median(drawn_ms)
    target = items[3]  # an ellipse ROI: its statistics are recomputed on every redraw

    def edit(i: int) -> None:
        current = controller.sheet.get(target.id)
        assert current is not None
        controller.document.update(current.moved(1 if i % 2 else -1, 0))
        viewport.repaint()

    change = median_ms(edit, args.frames)
    sheet = controller.sheet
    save = median_ms(lambda i: store.save("bench", sheet, None), args.frames)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; 3000x3000 film, {args.n} annotations"
    )
    print(f"W/L frame, no annotation          {bare:8.2f} ms   1.00")
    print(f"W/L frame, {args.n} annotations      {drawn:8.2f} ms   {drawn / bare:.2f}")
    print(
        f"one edit (measure, draw, save)    {change:8.2f} ms   {change / bare:.2f} of a bare frame"
    )
    print(f"SQLite save of the sheet alone    {save:8.2f} ms   {save / bare:.2f}")
    store.close()
    view.close()


if __name__ == "__main__":
    main()

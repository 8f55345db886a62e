"""The patch editor at gallery scale: a 50,000-patch library in the window, offscreen.

Builds the library with ``bench/bench_patch_library.py``'s builder (bulk rows, shared patch files),
then measures, in one run:

- open the window on it until the first thumbnails are painted (session open, the id query,
  the first cards and their decoded thumbnails);
- scroll frame time: the gallery scrolled one card row at a time, each step repainted at once
  (median and 95th percentile over the steps, thumbnails decoding meanwhile);
- accept 1,000 selected patches: select them in the view, press the state action, counts and cards
  refreshed (one core transaction with its history rows).

Run: ``QT_QPA_PLATFORM=offscreen python bench/bench_patch_editor.py [--n 50000] [--steps 200]``.
The command-line side of the same operations is ``bench/bench_patch_library.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_patch_library import build  # noqa: E402


def scroll_frames(
    app: object, window: object, steps: int, cache: int | None, row: int
) -> list[float]:
    """Frame times (ms, sorted) of scrolling one card row per step from the top, repainted at once."""
    from viewer.patch_editor.gallery import CARD_CACHE

    gallery = window.gallery  # type: ignore[attr-defined]
    gallery.delegate.cache_size = CARD_CACHE if cache is None else cache
    gallery.delegate.forget()
    window.thumbnails.forget(None)  # type: ignore[attr-defined]
    bar = gallery.view.verticalScrollBar()
    bar.setValue(0)
    app.processEvents()  # type: ignore[attr-defined]
    frames = []
    for _ in range(steps):
        t = time.perf_counter()
        bar.setValue(bar.value() + row)
        gallery.view.viewport().repaint()
        app.processEvents()  # type: ignore[attr-defined]
        frames.append((time.perf_counter() - t) * 1e3)
    return sorted(frames)


def repaint_frames(app: object, window: object, n: int, cache: int | None) -> list[float]:
    """Times (ms) of repainting the gallery page in view, the card cache off (0) or on."""
    from viewer.patch_editor.gallery import CARD_CACHE

    gallery = window.gallery  # type: ignore[attr-defined]
    gallery.delegate.cache_size = CARD_CACHE if cache is None else cache
    gallery.delegate.forget()
    viewport = gallery.view.viewport()
    viewport.repaint()
    app.processEvents()  # type: ignore[attr-defined]
    out = []
    for _ in range(n):
        t = time.perf_counter()
        viewport.repaint()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    from PySide6.QtWidgets import QApplication

    from viewer.patch_editor import PatchEditorWindow
    from viewer.patch_editor.gallery import CARD_H
    from viewer.theme import apply_theme

    app = QApplication.instance() or QApplication([])
    apply_theme(app)  # type: ignore[arg-type]
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_editor_") as tmp:
        root = Path(tmp) / "lib"
        rows.append((f"build a {args.n:,}-patch library", f"{build(root, args.n):.1f} s"))

        t0 = time.perf_counter()
        window = PatchEditorWindow(root)
        window.resize(1400, 900)
        window.show()
        t_open = time.perf_counter() - t0
        first: list[float] = []
        window.thumbnails.thumbnail_ready.connect(
            lambda _pid: first.append(time.perf_counter() - t0) if not first else None
        )
        while not first and time.perf_counter() - t0 < 60:
            app.processEvents()
        window.gallery.view.viewport().repaint()
        rows.append(("open window (session + query + layout)", f"{t_open * 1e3:.0f} ms"))
        rows.append(
            ("open to first thumbnail painted", f"{first[0] * 1e3:.0f} ms" if first else "n/a")
        )
        rows.append(("ids listed", f"{len(window.state.ids):,}"))

        # Scroll: the same window, card cache off then on then off again (ABA, so drift shows),
        # each pass from the top with the thumbnail cache emptied.
        for label, cache in (("no card cache", 0), ("card cache", None), ("no card cache", 0)):
            frames = scroll_frames(app, window, args.steps, cache, CARD_H)
            rows.append((f"scroll frame, {label}, {args.steps} steps of one row (median / p95)",
                         f"{statistics.median(frames):.1f} / {frames[int(0.95 * len(frames))]:.1f} ms"))  # fmt: skip
        # Repaint the same page of cards (thumbnails decoded, nothing scrolling): the card cache's
        # own effect, ABAB.
        for label, cache in (("no card cache", 0), ("card cache", None)) * 2:
            page = repaint_frames(app, window, 100, cache)
            rows.append((f"repaint a full page of cards, {label} (median)",
                         f"{statistics.median(page):.1f} ms"))  # fmt: skip
        rows.append(("thumbnails decoded / dropped as scrolled away",
                      f"{window.thumbnails.decoded} / {window.thumbnails.dropped}"))  # fmt: skip

        t = time.perf_counter()
        window.gallery.select_rows(range(1000))
        app.processEvents()
        t_sel = time.perf_counter() - t
        t = time.perf_counter()
        n = window.state.set_state("accepted")
        app.processEvents()
        t_acc = time.perf_counter() - t
        rows.append(("select 1,000 patches in the view", f"{t_sel * 1e3:.0f} ms"))
        rows.append(
            (f"accept them (core transaction + refresh), {n} changed", f"{t_acc * 1e3:.0f} ms")
        )
        t = time.perf_counter()
        window.state.undo()
        app.processEvents()
        rows.append(("undo it", f"{(time.perf_counter() - t) * 1e3:.0f} ms"))
        window.close()
    width = max(len(a) for a, _ in rows)
    for a, b in rows:
        print(f"{a:<{width}}  {b}")


if __name__ == "__main__":
    main()

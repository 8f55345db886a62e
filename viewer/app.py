"""``fpsm-viewer [PATH] [--model CKPT_OR_DIR] [--device ...] [--screenshot FILE]``.

With no PATH the bundled sample study opens (an empty worklist with a hint when there is none).
``--screenshot FILE`` waits until the first inference has finished and its overlay is drawn, saves
the main window as a PNG and exits 0 (1 when it could not get there); it works with
``QT_QPA_PLATFORM=offscreen``, for docs and checks. ``--patch-editor LIBRARY [--images DIR ...]``
opens the DADAM patch editor instead (viewer/patch_editor). ``fpsm-viewer A B --layout 1x2``
hangs B beside A (viewer/reading_room.py); the screenshot then waits for both films' findings.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

SCREENSHOT_SIZE = (1600, 1000)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fpsm-viewer",
        description="Chest radiograph viewer with FPSM findings and per-level heatmaps.",
    )
    p.add_argument("path", nargs="?", help="image file or folder (default: the sample study)")
    p.add_argument("more", nargs="*", help="with --layout: more files, hung beside the first")
    p.add_argument(
        "--layout",
        choices=("1x1", "1x2", "2x2"),
        help="viewports: 1x2 or 2x2 (files after the first go to the next viewports)",
    )
    p.add_argument("--model", help="checkpoint .json or ensemble directory (default: bundled)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument(
        "--screenshot",
        metavar="FILE",
        help="save a PNG of the window after the first inference and exit",
    )
    p.add_argument(
        "--screenshot-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="give up on --screenshot after S seconds (exit 1)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: all cores but one)"
    )
    p.add_argument(
        "--ground-truth",
        metavar="BOXES",
        type=Path,
        help="a box file for the open images (VinDr, NIH, ChestX-Det, COCO, fpsm sim's boxes.csv, "
        "the sample's ground_truth.csv), drawn on the film and scored per level",
    )
    p.add_argument(
        "--overlay",
        choices=("heatmap", "contours"),
        help="show the findings as the heatmap or as contours (default: as last time)",
    )
    p.add_argument(
        "--patch-editor",
        metavar="LIBRARY",
        type=Path,
        help="open the DADAM patch editor on a patch library folder (created there if absent)",
    )
    p.add_argument(
        "--images",
        metavar="DIR",
        type=Path,
        nargs="+",
        default=[],
        help="with --patch-editor: folders where moved source images are looked for",
    )
    return p


def run_patch_editor(args: argparse.Namespace) -> int:
    """``--patch-editor LIBRARY``: the editor alone (with ``--screenshot``: save it and exit)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.patch_editor import PatchEditorWindow
    from viewer.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fpsm-viewer")
    apply_theme(app)  # type: ignore[arg-type]
    window = PatchEditorWindow(args.patch_editor, images=args.images, model=args.model)
    _install_excepthook(window)
    window.show()
    status = {"code": 0}
    if args.screenshot:
        window.resize(*SCREENSHOT_SIZE)

        def save() -> None:
            pixmap = window.grab()
            if not pixmap.save(str(args.screenshot), "PNG"):
                print(
                    f"fpsm-viewer: cannot write the screenshot '{args.screenshot}'.",
                    file=sys.stderr,
                )
                status["code"] = 1
            window.close()
            app.quit()

        QTimer.singleShot(1500, save)
    code = app.exec()
    return status["code"] if args.screenshot else int(code)


def _sample_images(folder: Path) -> bool:
    """Whether ``folder`` holds any image file (stops at the first one found)."""
    from fpsm_core.io.studies import walk_image_files

    return folder.is_dir() and next(iter(walk_image_files(folder)), None) is not None


def _install_excepthook(window: object) -> None:
    """A bug in a slot must not take the reading session down: log it, say it, carry on."""

    from fpsm_core.errors import one_sentence

    def hook(exc_type: type[BaseException], exc: BaseException, tb: object) -> None:
        traceback.print_exception(exc_type, exc, tb)  # type: ignore[call-overload]
        if issubclass(exc_type, KeyboardInterrupt):
            sys.exit(130)
        show = getattr(window, "show_error", None)
        if show is not None:
            show(f"Internal error ({exc_type.__name__}): {one_sentence(exc)}")

    sys.excepthook = hook


def main(argv: Sequence[str] | None = None) -> int:
    """Run the viewer; returns the exit status."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.patch_editor is not None:
        return run_patch_editor(args)
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from viewer.theme import apply_theme

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("fpsm-viewer")
    app.setOrganizationName("fpsm-cxr")
    apply_theme(app)  # type: ignore[arg-type]

    from fpsm_core.resources import sample_study_dir
    from viewer.main_window import MainWindow
    from viewer.workers import IMAGE, MODEL

    window = MainWindow(args.model, args.device, torch_threads=args.threads)
    _install_excepthook(window)
    if args.overlay:
        window.state.set_overlay_style(args.overlay)
    if args.ground_truth is not None and not window.gt_panel.load(args.ground_truth):
        print(f"fpsm-viewer: {window.last_error}", file=sys.stderr)
    if args.screenshot:
        window.resize(*SCREENSHOT_SIZE)
    window.show()

    target = Path(args.path) if args.path else sample_study_dir()
    if args.path or _sample_images(target):
        window.open_path(target)
    else:
        window.show_status(
            f"No sample study in {target}: open a file or folder (Ctrl+O / Ctrl+Shift+O)."
        )

    if args.layout or args.more:  # viewer/reading_room.py
        window.reading_room.open_beside(args.more, args.layout)

    status = {"code": 0}
    if args.screenshot:
        out = Path(args.screenshot)

        def save(code: int, waited: int = 0) -> None:
            if code == 0 and not window.reading_room.all_ready() and waited < 300:
                QTimer.singleShot(200, lambda: save(code, waited + 1))  # the other viewports
                return
            app.processEvents()
            pixmap = window.grab()
            if not pixmap.save(str(out), "PNG"):
                print(f"fpsm-viewer: cannot write the screenshot '{out}'.", file=sys.stderr)
                code = 1
            else:
                print(f"fpsm-viewer: screenshot {out} ({pixmap.width()}x{pixmap.height()})")
            status["code"] = code
            window.close()
            app.quit()

        def after_result(_result: object) -> None:
            # The film's heatmap is drawn with the findings; the level strip follows on a later
            # event-loop turn. Grab once both are there and painted.
            if window.state.cams is not None:
                window.grid_drawn.connect(lambda: QTimer.singleShot(200, lambda: save(0)))
            else:
                QTimer.singleShot(200, lambda: save(0))

        def on_error(message: str) -> None:
            if window.state.image is None or window.state.model is None:
                print(f"fpsm-viewer: {message}", file=sys.stderr)

        def on_timeout() -> None:
            print(
                "fpsm-viewer: no inference result before the screenshot timeout.", file=sys.stderr
            )
            save(1)

        window.result_shown.connect(after_result)
        window.error_shown.connect(on_error)

        def on_failed(kind: str, _request_id: int, _message: str) -> None:
            if kind in (IMAGE, MODEL):
                QTimer.singleShot(300, lambda: save(1))

        window.hub.failed.connect(on_failed)
        if not (args.path or _sample_images(target)):
            window.model_ready.connect(lambda _i: QTimer.singleShot(300, lambda: save(0)))
        QTimer.singleShot(int(args.screenshot_timeout * 1000), on_timeout)

    code = app.exec()
    return status["code"] if args.screenshot else int(code)


if __name__ == "__main__":
    sys.exit(main())

"""Exports from the viewer: the findings as JSON or CSV, the current view as a PNG.

The JSON is the inference service's own record (``Result.to_json``), so files written by the viewer
and by ``fpsm infer --json`` read the same way; the CSV has one row per finding with each member's
probability and each level's logit as extra columns, and the model and its disclaimer as the last
two; the PNG is a grab of the film as drawn with a caption strip below it (finding, probability,
threshold, level, member, model, disclaimer: :mod:`fpsm_core.explain.caption`), the same text in
its PNG text chunks, and a patient/study line only when File > "Patient line on exported pictures"
is checked. :class:`ViewExporter` runs the File > Export actions: asks where, writes, says what
happened.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction, QImage
from PySide6.QtWidgets import QFileDialog, QMessageBox, QWidget

from fpsm_core.explain import ExplainError
from fpsm_core.explain import caption as captions
from viewer.settings import ViewerSettings
from viewer.state import ViewerState

if TYPE_CHECKING:
    from fpsm_core.inference import Result


class ExportError(OSError):
    """A file could not be written; the message names the file and the reason."""


def write_findings_json(result: Result, path: str | Path) -> Path:
    """Write every finding of a result as JSON (``Result.to_json``)."""
    target = Path(path)
    try:
        target.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"Cannot write '{target}': {exc.strerror or exc}.") from None
    return target


def findings_rows(result: Result) -> tuple[list[str], list[list[Any]]]:
    """The CSV table: header and one row per finding, highest probability first."""
    header = ["image", "label", "probability", "threshold", "above_threshold", "member_spread"]
    header += [f"p[{name}]" for name in result.member_names]
    level_cols = [
        (m, i, f"logit[{name}][L{lv}]")
        for m, (name, levels) in enumerate(
            zip(result.member_names, result.member_levels, strict=True)
        )
        for i, lv in enumerate(levels)
    ]
    header += [col for _, _, col in level_cols]
    header += ["model", "disclaimer"]
    model = dict(result.model or {})
    name = str(model.get("name") or "")
    disclaimer = str(model.get("disclaimer") or "") or captions.NOT_CLINICAL
    rows = []
    for f in result.findings:
        row: list[Any] = [
            result.path or "",
            f.label,
            f"{f.probability:.6f}",
            f"{f.threshold:.6f}",
            int(f.above_threshold),
            f"{f.member_spread:.6f}",
        ]
        row += [f"{p:.6f}" for p in f.member_probabilities]
        row += [f"{f.level_logits[m][i]:.6f}" for m, i, _ in level_cols]
        row += [name, disclaimer]
        rows.append(row)
    return header, rows


def write_findings_csv(result: Result, path: str | Path) -> Path:
    """Write every finding of a result as CSV (see :func:`findings_rows`)."""
    target = Path(path)
    header, rows = findings_rows(result)
    try:
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise ExportError(f"Cannot write '{target}': {exc.strerror or exc}.") from None
    return target


def grab_rgb(view: QWidget) -> np.ndarray:
    """What a widget shows, as (h, w, 3) uint8 RGB."""
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    h, w = image.height(), image.width()
    rows = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(h, image.bytesPerLine())
    return rows[:, : 3 * w].reshape(h, w, 3).copy()


def view_caption(state: ViewerState, *, show_phi: bool = False) -> captions.Caption:
    """The caption of the film as the state shows it (see :mod:`fpsm_core.explain.caption`)."""
    result, loaded = state.result, state.image
    image = loaded.image if loaded is not None else None
    if result is None:
        model = state.model
        lines = ["no AI result on this view"]
        name = model.name if model is not None else ""
        disclaimer = (getattr(model, "disclaimer", "") if model is not None else "") or ""
        disclaimer = disclaimer or captions.NOT_CLINICAL
        if name:
            lines.append(f"model {name}")
        lines.append(disclaimer)
        if show_phi and image is not None:
            lines.append(captions.patient_line(image))
        return captions.Caption(tuple(lines), name, disclaimer)
    shown = None
    if not state.overlay_visible:
        shown = "heatmap hidden: the film alone"
    elif state.cams is None:
        shown = "no heatmap for this result"
    method = "closed-form Grad-CAM"
    if state.overlay_style == "contours":
        method = "contours of the findings above their thresholds, closed-form Grad-CAM"
    return captions.caption_for(
        result,
        state.finding,
        level=state.level,
        member=state.member,
        method=method,
        image=image,
        show_phi=show_phi,
        shown=shown,
    )


def write_view_png(
    view: QWidget, path: str | Path, caption: captions.Caption | None = None
) -> Path:
    """Write what a widget shows (the film with its overlay and rulers) as a PNG.

    With a caption, the strip goes below the picture and its text into the PNG's text chunks.
    """
    target = Path(path)
    if caption is None:
        if not view.grab().save(str(target), "PNG"):
            raise ExportError(f"Cannot write '{target}': the PNG could not be saved.")
        return target
    try:
        return captions.write_png(target, grab_rgb(view)[..., ::-1], caption)
    except ExplainError as exc:
        raise ExportError(f"Cannot write '{target}': {exc}") from None


class ViewExporter(QObject):
    """The export actions of a window: a save dialog, the writer, one message.

    Args:
        parent: the window (the dialogs' parent).
        state: gives the result and the image's name.
        settings: remembers the folder last saved to.
        view: the widget the PNG grabs.

    Signals:
        saved(message): a file was written. failed(message): one sentence, nothing written.
    """

    saved = Signal(str)
    failed = Signal(str)

    def __init__(
        self, parent: QWidget, state: ViewerState, settings: ViewerSettings, view: QWidget
    ) -> None:
        super().__init__(parent)
        self._parent = parent
        self._state = state
        self._settings = settings
        self._view = view
        # Identifiers on exported pictures only when asked, as ``fpsm info --show-phi``.
        self.phi_action = QAction("Patient line on exported pictures", self)
        self.phi_action.setCheckable(True)
        self.phi_action.setToolTip(
            "Add patient ID, name and study to the caption of exported PNGs (off by default)"
        )

    def export_png(self) -> None:
        loaded = self._state.image
        if loaded is not None and loaded.image.burned_in_annotation and not self._allow_burned_in():
            self.failed.emit(
                f"Not exported: {loaded.path.name} says BurnedInAnnotation YES, so its pixels may "
                "show the patient's identity."
            )
            return
        path = self._ask("Export view as PNG", ".png", "PNG images (*.png)")
        if path:
            self._run(lambda: self.write_png(path))

    def write_png(self, path: str | Path) -> Path:
        """Write the view with its caption strip (no questions asked)."""
        caption = view_caption(self._state, show_phi=self.phi_action.isChecked())
        return write_view_png(self._view, path, caption)

    def _allow_burned_in(self) -> bool:
        """Ask before writing pixels that may carry identity (the rule of ``check_exportable``)."""
        answer = QMessageBox.question(
            self._parent,
            "Burned-in annotation",
            "This film's header says BurnedInAnnotation YES: text burned into its pixels may "
            "identify the patient. Export the view anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No,
        )
        return answer == QMessageBox.StandardButton.Yes

    def export_json(self) -> None:
        self._export_findings("JSON", ".json", "JSON (*.json)", write_findings_json)

    def export_csv(self) -> None:
        self._export_findings("CSV", ".csv", "CSV (*.csv)", write_findings_csv)

    def _export_findings(
        self, kind: str, suffix: str, filt: str, writer: Callable[[Result, str], Path]
    ) -> None:
        result = self._state.result
        if result is None:
            self.failed.emit("There are no findings to export yet.")
            return
        path = self._ask(f"Export findings as {kind}", suffix, filt)
        if path:
            self._run(lambda: writer(result, path))

    def _ask(self, title: str, suffix: str, filt: str) -> str | None:
        image = self._state.image
        stem = image.path.stem if image is not None else "view"
        start = str(Path(self._settings.last_dir()) / f"{stem}{suffix}")
        path, _ = QFileDialog.getSaveFileName(self._parent, title, start, filt)
        if path:
            self._settings.set_last_dir(Path(path).parent)
        return path or None

    def _run(self, job: Callable[[], Path]) -> None:
        try:
            written = job()
        except ExportError as exc:
            self.failed.emit(str(exc))
            return
        self.saved.emit(f"Saved {written}")

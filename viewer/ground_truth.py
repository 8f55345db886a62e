"""Ground truth beside the maps: a box file's boxes on the film and how well each level points at them.

The researcher loads a box file once (VinDr, NIH, ChestX-Det, COCO, the simulator's ``boxes.csv``,
the sample's ``ground_truth.csv``: :func:`fpsm_core.explain.ground_truth.load_ground_truth`); it is
kept in the state's ``ground_truth`` field for every image opened after. :class:`GroundTruthBinding`
draws the open image's boxes on the film (dashed, labelled "GT <finding>", the selected finding's
boxes bright); :class:`GroundTruthPanel` has the Load button and, for the selected finding, its
fused map's and each level's pointing hit and energy in box on this image, computed by
:func:`fpsm_core.explain.ground_truth.level_scores` on the maps the film shows (the state's member
and the overlay grid), so the table and the picture never disagree.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyqtgraph as pg
from PySide6.QtCore import QObject, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGraphicsRectItem,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.explain import FUSED, ExplainError
from fpsm_core.explain.ground_truth import (
    FORMATS,
    GroundTruthBox,
    GroundTruthError,
    LevelScore,
    level_scores,
    load_ground_truth,
)
from viewer import cam_display, theme
from viewer.state import ViewerState

if TYPE_CHECKING:
    from viewer.image_view import ImageViewWidget

SELECTED = (80, 255, 120)
OTHER = (200, 200, 200)


def image_boxes(state: ViewerState) -> list[GroundTruthBox]:
    """The loaded file's boxes of the image on the film."""
    gt, loaded = state.ground_truth, state.image
    if gt is None or loaded is None:
        return []
    return gt.boxes_for(loaded.path, getattr(loaded.image, "instance_uid", None))


def finding_scores(state: ViewerState) -> tuple[list[GroundTruthBox], list[LevelScore]]:
    """The selected finding's boxes on this image and each map's scores (empty when none)."""
    finding, cams = state.selected_finding, state.cams
    if finding is None or cams is None:
        return [], []
    boxes = [b for b in image_boxes(state) if b.label == finding.label]
    if not boxes:
        return [], []
    grid = cam_display.overlay_shape(cams.result.image_shape)
    try:
        return boxes, level_scores(cams, finding.index, boxes, state.member, grid)
    except ExplainError:  # every box outside the film: drawn, but nothing to score
        return boxes, []


class GroundTruthBinding(QObject):
    """Draws the open image's ground-truth boxes on the film (a child of the view).

    Signals:
        boxes_drawn(count): the boxes of this image were drawn (or cleared: 0).
    """

    boxes_drawn = Signal(int)

    def __init__(self, state: ViewerState, view: ImageViewWidget) -> None:
        super().__init__(view)
        self._state = state
        self._view = view
        self._items: list[Any] = []
        for signal in (state.image_changed, state.ground_truth_changed, state.finding_changed):
            signal.connect(self._on_state_changed)

    def _on_state_changed(self, *_: Any) -> None:
        self.redraw()

    def redraw(self) -> None:
        for item in self._items:
            scene = item.scene()
            item.setParentItem(None)
            if scene is not None:
                scene.removeItem(item)
        self._items = []
        selected = self._state.selected_finding
        boxes = image_boxes(self._state)
        for box in boxes:
            chosen = selected is not None and box.label == selected.label
            colour = QColor(*(SELECTED if chosen else OTHER))
            pen = QPen(colour)
            pen.setCosmetic(True)
            pen.setWidthF(2.5 if chosen else 1.2)
            pen.setStyle(Qt.PenStyle.DashLine)
            rect = QGraphicsRectItem(QRectF(box.x0, box.y0, box.x1 - box.x0, box.y1 - box.y0))
            rect.setPen(pen)
            rect.setZValue(30)
            rect.setParentItem(self._view.frame)
            label = pg.TextItem(f"GT {box.label}", color=colour, anchor=(0.0, 0.0))
            label.setParentItem(self._view.frame)
            label.setPos(box.x0, box.y1)
            label.setZValue(31)
            self._items += [rect, label]
        self.boxes_drawn.emit(len(boxes))

    def rects(self) -> list[tuple[float, float, float, float]]:
        """The drawn boxes as (x0, y0, x1, y1) in image pixels."""
        out = []
        for item in self._items:
            if isinstance(item, QGraphicsRectItem):
                r = item.rect()
                out.append((r.left(), r.top(), r.right(), r.bottom()))
        return out


class GroundTruthPanel(QWidget):
    """Load a box file; the selected finding's pointing hit and energy in box per level.

    Signals:
        loaded(message): a file was loaded. failed(message): one sentence, nothing changed.
        scores_shown(): the table shows the selected finding on this image.
    """

    loaded = Signal(str)
    failed = Signal(str)
    scores_shown = Signal()

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state = state
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        row = QHBoxLayout()
        self.load_button = QPushButton("Load boxes…")
        self.load_button.setToolTip(
            "A box file for the open images: VinDr, NIH BBox_List, ChestX-Det, COCO, "
            "fpsm sim's boxes.csv or the sample's ground_truth.csv"
        )
        self.format_combo = QComboBox()
        for name in FORMATS:
            self.format_combo.addItem(name, name)
        self.clear_button = QPushButton("Clear")
        row.addWidget(self.load_button, 1)
        row.addWidget(self.format_combo)
        row.addWidget(self.clear_button)
        layout.addLayout(row)
        self.file_label = QLabel("No ground truth loaded.")
        self.file_label.setWordWrap(True)
        self.file_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.file_label)
        self.image_label = QLabel("")
        self.image_label.setWordWrap(True)
        layout.addWidget(self.image_label)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Map", "Pointing", "Energy in box"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setMinimumHeight(185)  # fused and three levels stay readable
        layout.addWidget(self.table, 1)
        self.load_button.clicked.connect(self.ask_and_load)
        self.clear_button.clicked.connect(lambda: state.set_ground_truth(None))
        for signal in (
            state.ground_truth_changed,
            state.image_changed,
            state.cams_changed,
            state.finding_changed,
            state.member_changed,
        ):
            signal.connect(self._on_state_changed)
        self._on_state_changed()

    def ask_and_load(self) -> None:
        """Ask for a box file and load it."""
        path, _ = QFileDialog.getOpenFileName(
            self, "Load ground-truth boxes", "", "Box files (*.csv *.csv.gz *.json);;All files (*)"
        )
        if path:
            self.load(path)

    def load(self, path: str | Path) -> bool:
        """Read a box file into the state (the format chosen in the combo); False on failure."""
        try:
            gt = load_ground_truth(path, str(self.format_combo.currentData()))
        except GroundTruthError as exc:
            self.failed.emit(str(exc))
            return False
        self._state.set_ground_truth(gt)
        self.loaded.emit(gt.summary())
        return True

    def _on_state_changed(self, *_: Any) -> None:
        s = self._state
        gt = s.ground_truth
        self.file_label.setText("No ground truth loaded." if gt is None else gt.summary())
        self.table.setRowCount(0)
        finding = s.selected_finding
        if gt is None or s.image is None:
            self.image_label.setText("")
            return
        boxes = image_boxes(s)
        if not boxes:
            self.image_label.setText(f"No box of {s.image.path.name} in this file.")
            return
        labels = sorted({b.label for b in boxes})
        text = f"{len(boxes)} box(es) on this image: {', '.join(labels)}."
        chosen, scores = finding_scores(s)
        if finding is not None and not chosen:
            text += f" None of {finding.label}: select a boxed finding to score its maps."
        elif finding is not None and not scores:
            text += f" The {finding.label} boxes lie outside the film: nothing to score."
        self.image_label.setText(text)
        self.table.setRowCount(len(scores))
        for i, score in enumerate(scores):
            name = "Fused" if score.level == FUSED else f"Level {score.level}"
            energy = "- (flat map)" if math.isnan(score.energy) else f"{score.energy:.1%}"
            cells = (name, "hit" if score.hit else "miss", energy)
            for j, cell in enumerate(cells):
                item = QTableWidgetItem(cell)
                if j == 1:
                    item.setForeground(QColor(theme.WARNING if not score.hit else "#7ee787"))
                self.table.setItem(i, j, item)
        if scores:
            self.scores_shown.emit()

    def rows(self) -> list[tuple[str, ...]]:
        """The table as text (for tests and scripts)."""
        out = []
        for i in range(self.table.rowCount()):
            cells = (self.table.item(i, j) for j in range(3))
            out.append(tuple(c.text() if c is not None else "" for c in cells))
        return out

"""The model in the loop: "Check with the model" and "Score selection", bound to the studio state.

:class:`CheckPanel` sends the composite on screen (original, composite, the edited patch's lesion
box and class) to ``fpsm_core.dadam.model_check.check_composition`` on the model thread. It shows,
per member and per pyramid level (and fused, and for the ensemble), the change of the pasted
class's probability and logit and the share of its CAM energy inside the pasted box, before and
after, and the per-level maps of the original beside the composite's. A check is for one composite
revision: after the first one, every change (a drag, a slider) re-checks once the hand rests, and a
result for an older composite is dropped.

:class:`ScorePanel` scores the gallery's selected patches (``fpsm_core.dadam.efficacy``) on the
model thread with progress and cancel, and stores the efficacy in the library.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.cam_display import blend_rgb
from viewer.patch_editor.qt_util import blocked
from viewer.patch_editor.studio.state import StudioState
from viewer.patch_editor.studio.workers import ModelWorker

if TYPE_CHECKING:
    from fpsm_core.dadam.model_check import CheckResult
    from viewer.patch_editor.state import EditorState

MAP_TILE = 124
COLUMNS = (
    "member",
    "level",
    "p before",
    "p after",
    "Δp",
    "Δlogit",
    "in-box before",
    "in-box after",
)


def _level_name(level: Any) -> str:
    return "fused" if level == "fused" else f"L{level}"


def _num(x: float, signed: bool = False, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if pct:
        return f"{100 * x:.1f} %"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def map_tile(
    grey: np.ndarray,
    cam: np.ndarray,
    box: tuple[float, float, float, float],
    image_shape: tuple[int, int] | None = None,
) -> QPixmap:
    """A map over the film, with the pasted box outlined, as a pixmap of the map's grid.

    ``grey`` may already be on the map's grid (then ``image_shape`` is the film's, for the box).
    """
    h, w = cam.shape
    small = grey if grey.shape == (h, w) else cv2.resize(grey, (w, h), interpolation=cv2.INTER_AREA)
    rgb = np.ascontiguousarray(blend_rgb(small, cam, "turbo", 0.55))
    img = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
    gh, gw = image_shape or grey.shape
    painter = QPainter(img)
    pen = QPen(QColor("#ffffff"))
    pen.setWidthF(1.0)
    pen.setStyle(Qt.PenStyle.DashLine)
    painter.setPen(pen)
    x0, y0, x1, y1 = box
    painter.drawRect(
        int(x0 * w / gw), int(y0 * h / gh), int((x1 - x0) * w / gw), int((y1 - y0) * h / gh)
    )
    painter.end()
    return QPixmap.fromImage(img).scaled(
        MAP_TILE,
        MAP_TILE,
        Qt.AspectRatioMode.KeepAspectRatio,
        Qt.TransformationMode.SmoothTransformation,
    )


class CheckPanel(QGroupBox):
    """The model check of the composite on screen.

    Signals:
        check_shown(CheckResult): a check of the current composite is on screen.
        check_failed(str): it could not be made (the sentence shown).
    """

    check_shown = Signal(object)
    check_failed = Signal(str)

    def __init__(
        self, state: StudioState, worker: ModelWorker, parent: QWidget | None = None
    ) -> None:
        super().__init__("Check with the model", parent)
        self.state = state
        self.worker = worker
        self.auto = False  # on after the first check: changes re-check
        self.button = QPushButton("Check with the model")
        self.status = QLabel(f"Model: {worker.model_path}")
        self.status.setWordWrap(True)
        self.member = QComboBox()
        self.member.addItem("ensemble")
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.maps = QWidget()
        self.maps_grid = QGridLayout(self.maps)
        self.maps_grid.setContentsMargins(0, 0, 0, 0)
        scroll = QScrollArea()
        scroll.setWidget(self.maps)
        scroll.setWidgetResizable(True)
        scroll.setMinimumHeight(MAP_TILE + 40)
        parts = QSplitter(Qt.Orientation.Vertical)
        parts.addWidget(self.table)
        parts.addWidget(scroll)
        parts.setSizes([180, 2 * MAP_TILE + 56])
        top = QHBoxLayout()
        top.addWidget(self.button)
        top.addWidget(QLabel("maps of"))
        top.addWidget(self.member, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(top)
        lay.addWidget(self.status)
        lay.addWidget(parts, 1)
        self.button.clicked.connect(self._on_button_clicked)
        self.member.currentTextChanged.connect(lambda _t: self._draw_maps())
        worker.check_finished.connect(self._on_worker_check_finished)
        worker.check_failed.connect(self._on_worker_check_failed)
        state.check_changed.connect(self._on_state_check_changed)
        self._pending = 0

    def _on_button_clicked(self) -> None:
        self.auto = True
        self.request_check()

    def request_check(self) -> bool:
        """Send the composite on screen to the model thread; False when there is nothing to check."""
        st = self.state
        comp, t = st.composition, st.target
        if comp is None or t is None or not comp.placements:
            st.say("Nothing to check: pick a target and place a patch first.", error=True)
            return False
        i = st.current if 0 <= st.current < len(comp.placements) else 0
        placement = comp.placements[i]
        original, composite, box, label = t.pixels, comp.image, placement.box, placement.label
        self._pending = st.revision
        self.status.setText(f"Checking {label} (patch {placement.patch_id}) with the model…")

        def job(service: Any) -> CheckResult:
            from fpsm_core.dadam.model_check import check_composition

            return check_composition(service, original, composite, box, label)

        self.worker.check(st.revision, job)
        return True

    def _on_worker_check_finished(self, revision: int, result: CheckResult) -> None:
        if not self.state.set_check(revision, result):
            return  # a check of a composite no longer on screen
        r = result.row()
        ms = result.timing_ms.get("forward", 0.0)
        self.status.setText(
            f"{result.label}: ensemble p {r.prob_before:.3f} → {r.prob_after:.3f} "
            f"({r.delta_prob:+.3f}); in-box CAM energy {_num(r.energy_before, pct=True)} → "
            f"{_num(r.energy_after, pct=True)}. {result.model.get('name', '')} on "
            f"{result.device}, {ms:.0f} ms."
        )

    def _on_worker_check_failed(self, revision: int, message: str) -> None:
        if revision != self.state.revision:
            return
        self.auto = False  # a bad model or image: do not retry on every drag
        self.status.setText(message)
        self.state.say(message, error=True)
        self.check_failed.emit(message)

    def _on_state_check_changed(self, result: CheckResult | None) -> None:
        if result is None:
            self.table.setRowCount(0)
            self._clear_maps()
            if self.auto:
                self.status.setText("The composite changed: re-checking when the hand rests…")
            return
        rows = result.rows
        self.table.setRowCount(len(rows))
        for i, r in enumerate(rows):
            values = (
                r.member,
                _level_name(r.level),
                _num(r.prob_before),
                _num(r.prob_after),
                _num(r.delta_prob, True),
                _num(r.delta_logit, True),
                _num(r.energy_before, pct=True),
                _num(r.energy_after, pct=True),
            )
            for c, text in enumerate(values):
                item = QTableWidgetItem(text)
                if c == 4 and not math.isnan(r.delta_prob):
                    item.setForeground(QColor("#81c784" if r.delta_prob > 0 else "#e57373"))
                self.table.setItem(i, c, item)
        names = ["ensemble", *result.members]
        with blocked(self.member):
            current = self.member.currentText()
            self.member.clear()
            self.member.addItems([n for n in names if n in result.maps])
            if current in names:
                self.member.setCurrentText(current)
        self._draw_maps()
        self.check_shown.emit(result)

    def value(self, member: str, level: Any, column: str) -> str:
        """The text of one cell (tests and scripts read the table like a user)."""
        c = COLUMNS.index(column)

        def text(i: int, j: int) -> str:
            item = self.table.item(i, j)
            return "" if item is None else item.text()

        for i in range(self.table.rowCount()):
            if (text(i, 0), text(i, 1)) == (member, _level_name(level)):
                return text(i, c)
        raise KeyError((member, level))

    def _clear_maps(self) -> None:
        while self.maps_grid.count():
            item = self.maps_grid.takeAt(0)
            w = item.widget() if item is not None else None
            if w is not None:
                w.deleteLater()

    def _draw_maps(self) -> None:
        self._clear_maps()
        result, t, comp = self.state.check, self.state.target, self.state.composition
        if result is None or t is None or comp is None:
            return
        maps = result.maps.get(self.member.currentText()) or result.maps.get("ensemble", {})
        self.maps_grid.addWidget(QLabel("original"), 1, 0)
        self.maps_grid.addWidget(QLabel("composite"), 2, 0)
        mh, mw = result.map_shape
        films = [  # the two films on the maps' grid, once for every level
            cv2.resize(g, (mw, mh), interpolation=cv2.INTER_AREA) for g in (t.pixels, comp.image)
        ]
        shape = (int(t.pixels.shape[0]), int(t.pixels.shape[1]))
        for col, (level, (before, after)) in enumerate(maps.items(), start=1):
            self.maps_grid.addWidget(QLabel(_level_name(level)), 0, col)
            for row, (grey, cam) in enumerate(((films[0], before), (films[1], after)), start=1):
                tile = QLabel()
                tile.setPixmap(map_tile(grey, cam, result.box, shape))
                self.maps_grid.addWidget(tile, row, col)

    def tiles(self) -> int:
        """How many map tiles are shown (original and composite, per level)."""
        n = 0
        for i in range(self.maps_grid.count()):
            item = self.maps_grid.itemAt(i)
            w = item.widget() if item is not None else None
            if isinstance(w, QLabel) and not w.pixmap().isNull():
                n += 1
        return n


class ScorePanel(QGroupBox):
    """Efficacy of the gallery's selected patches with the studio's model (progress, cancel).

    Signals:
        scored(object): the scores are in the library.
    """

    scored = Signal(object)

    def __init__(
        self,
        state: StudioState,
        worker: ModelWorker,
        editor: EditorState,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__("Patch efficacy", parent)
        self.state = state
        self.worker = worker
        self.editor = editor
        self.button = QPushButton("Score selection")
        self.per_patch = QSpinBox()
        self.per_patch.setRange(1, 256)
        self.per_patch.setValue(8)
        self.per_patch.setPrefix("N = ")
        self.per_patch.setToolTip("random valid compositions per patch (the seed is the studio's)")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.button)
        row.addWidget(self.per_patch)
        row.addWidget(self.cancel_button)
        row.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.status)
        self.cancel_button.clicked.connect(worker.cancel_score)
        worker.score_progress.connect(self._on_worker_score_progress)
        worker.score_finished.connect(self._on_worker_score_finished)
        worker.score_failed.connect(self._on_worker_score_failed)
        self.button.clicked.connect(self.score_selection)

    def score_selection(self) -> bool:
        """Score the gallery's selection (see :mod:`viewer.patch_editor.studio.scoring`)."""
        from viewer.patch_editor.studio.scoring import start_scoring

        return start_scoring(self)

    def started(self, n: int) -> None:
        self.button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, max(n, 1))
        self.progress.setValue(0)
        self.status.setText(f"Scoring {n} patch{'es' if n != 1 else ''}…")

    def _on_worker_score_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)

    def _on_worker_score_finished(self, value: Any) -> None:
        self.button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        from viewer.patch_editor.studio.scoring import describe_scores

        text = describe_scores(value)
        self.status.setText(text)
        self.state.say(text)
        session = self.editor.session
        if session is not None:  # another connection wrote the scores: read them again
            session.efficacy_changed()
        self.editor.library_edited.emit(None)
        self.editor.refresh()
        self.scored.emit(value)

    def _on_worker_score_failed(self, message: str) -> None:
        self.button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.status.setText(message)
        self.state.say(message, error=True)

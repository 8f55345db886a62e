"""The AI panel: ranked findings with evidence, and the controls of the CAM overlay.

Shows what commercial chest X-ray AI shows (findings ranked by probability, bars with each class's
threshold, heatmaps) and what it does not: the spread between ensemble members and each pyramid
level's share of the selected finding's logit (the level strip under the film shows that finding's
map at every level). A banner says so when the model is untrained or only a demo. Every control is
bound to one field of the :class:`~viewer.state.ViewerState`; the panel reads nothing else.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
)
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGraphicsOpacityEffect,
    QGroupBox,
    QLabel,
    QListView,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.explain import ENSEMBLE, FUSED, LevelShare, level_shares
from viewer import theme
from viewer.bind import Binding, bind_check, bind_combo, bind_slider, guard_wheel
from viewer.cam_display import COLORMAPS
from viewer.contours import OverlayStyleWidget
from viewer.prevalence import prevalence_tiers
from viewer.state import CASE_LABEL, ViewerState

if TYPE_CHECKING:
    from fpsm_core.inference import Finding, Result
    from viewer.workers import ModelInfo

FindingRole = Qt.ItemDataRole.UserRole + 1
TierRole = Qt.ItemDataRole.UserRole + 2
UrgentRole = Qt.ItemDataRole.UserRole + 3


class FindingsModel(QAbstractListModel):
    """The findings of one result, highest probability first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._findings: list[Finding] = []
        self._tiers: dict[str, str] = {}
        self._urgent: set[str] = set()

    def set_findings(
        self, findings: Sequence[Finding], tiers: dict[str, str], urgent: Sequence[str]
    ) -> None:
        self.beginResetModel()
        self._findings = list(findings)
        self._tiers = dict(tiers)
        self._urgent = set(urgent)
        self.endResetModel()

    def finding(self, row: int) -> Finding:
        return self._findings[row]

    def row_of(self, class_index: int) -> int | None:
        for row, f in enumerate(self._findings):
            if f.index == class_index:
                return row
        return None

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008
        return 0 if parent.isValid() else len(self._findings)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        f = self._findings[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return f.label
        if role == FindingRole:
            return f
        if role == TierRole:
            return self._tiers.get(f.label)
        if role == UrgentRole:
            return f.label in self._urgent
        if role == Qt.ItemDataRole.ToolTipRole:
            members = ", ".join(f"{p:.1%}" for p in f.member_probabilities)
            return (
                f"{f.label}: {f.probability:.1%} (threshold {f.threshold:.1%})\n"
                f"members: {members}  spread {f.member_spread:.1%}"
            )
        return None


class FindingDelegate(QStyledItemDelegate):
    """Paints a finding: name, prevalence badge, probability bar with threshold mark and spread."""

    ROW_HEIGHT = 24

    def sizeHint(self, option: QStyleOptionViewItem, index: Any) -> QSize:  # noqa: N802
        return QSize(option.rect.width(), self.ROW_HEIGHT)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Any) -> None:
        f = index.data(FindingRole)
        if f is None:
            return
        tier = index.data(TierRole)
        urgent = bool(index.data(UrgentRole))
        painter.save()
        rect = option.rect
        if option.state & QStyle.StateFlag.State_Selected:
            painter.fillRect(rect, QColor("#24475a"))
        name_w = int(rect.width() * 0.46)
        text_rect = QRect(rect.x() + 6, rect.y(), name_w - 40, rect.height())
        font = QFont(painter.font())
        font.setBold(f.above_threshold)
        painter.setFont(font)
        painter.setPen(QColor(theme.DANGER if urgent and f.above_threshold else theme.TEXT))
        elided = option.fontMetrics.elidedText(
            f.label, Qt.TextElideMode.ElideRight, text_rect.width()
        )
        painter.drawText(
            text_rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, elided
        )
        if tier:
            badge = QRectF(rect.x() + name_w - 30, rect.y() + 5, 26, rect.height() - 10)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(theme.BADGE[tier]))
            painter.drawRoundedRect(badge, 3, 3)
            small = QFont(font)
            small.setBold(False)
            small.setPointSizeF(max(6.0, font.pointSizeF() * 0.75))
            painter.setFont(small)
            painter.setPen(QColor("#e8e8e8"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, tier[0].upper())
            painter.setFont(font)
        bar = QRectF(
            rect.x() + name_w, rect.y() + 7, rect.width() - name_w - 58, rect.height() - 14
        )
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(theme.SURFACE_HIGH))
        painter.drawRect(bar)
        colour = theme.DANGER if urgent else theme.WARNING
        painter.setBrush(QColor(colour if f.above_threshold else "#4a6272"))
        painter.drawRect(QRectF(bar.x(), bar.y(), bar.width() * _unit(f.probability), bar.height()))
        # Spread across members: a whisker from the lowest to the highest member probability.
        if len(f.member_probabilities) > 1:
            lo, hi = min(f.member_probabilities), max(f.member_probabilities)
            y = bar.center().y()
            painter.setPen(QPen(QColor(theme.TEXT), 1))
            painter.drawLine(
                int(bar.x() + bar.width() * _unit(lo)),
                int(y),
                int(bar.x() + bar.width() * _unit(hi)),
                int(y),
            )
        tx = bar.x() + bar.width() * _unit(f.threshold)
        painter.setPen(QPen(QColor("#f0f0f0"), 2))
        painter.drawLine(int(tx), int(rect.y() + 3), int(tx), int(rect.bottom() - 3))
        painter.setPen(QColor(theme.TEXT))
        painter.setFont(font)
        painter.drawText(
            QRect(int(bar.right()) + 4, rect.y(), 52, rect.height()),
            Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
            f"{f.probability * 100:.1f}%",
        )
        painter.restore()


def _unit(x: float) -> float:
    return float(min(1.0, max(0.0, x)))


def case_line(findings: Sequence[Finding]) -> str:
    """The case-level line: "no finding" or "abnormal", with the No Finding score behind it.

    No Finding is a statement about the whole film, not one finding among others, so it is shown
    here rather than ranked (and bolded) beside the positives; when it is above its threshold
    while findings are too, the line says both rather than hide the contradiction.
    """
    case = next((f for f in findings if f.label == CASE_LABEL), None)
    positives = sum(f.above_threshold for f in findings if f.label != CASE_LABEL)
    if case is None:
        return ""
    score = f"No Finding {case.probability:.1%}, threshold {case.threshold:.1%}"
    if case.above_threshold and positives:
        return f"Case: unclear: {score} (above), yet {positives} finding(s) above their thresholds"
    if case.above_threshold:
        return f"Case: no finding ({score})"
    return f"Case: abnormal ({score}, below)"


class LevelShareWidget(QWidget):
    """Signed bars: each level's logit for the selected finding, per member.

    The value column is as wide as its widest number in the widget's own font (the numbers are
    never clipped: a clipped "+" reads as a minus); only when the widget itself is narrower than
    a number is it elided at the right, so the sign always shows.
    """

    LABEL_WIDTH = 44
    MIN_BAR = 60  # the bars keep at least this many pixels

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shares: list[LevelShare] = []
        self.setMinimumHeight(40)

    def set_shares(self, shares: Sequence[LevelShare]) -> None:
        self._shares = list(shares)
        members = {s.member for s in self._shares}
        self.setMinimumHeight(20 * len(self._shares) + 16 * len(members) + 4)
        self.setMinimumWidth(self.LABEL_WIDTH + self._value_width() + self.MIN_BAR)
        self.update()

    @property
    def shares(self) -> list[LevelShare]:
        return list(self._shares)

    @staticmethod
    def value_text(share: LevelShare) -> str:
        """The number shown for one level: its signed logit and signed share."""
        return f"{share.logit:+.2f} ({share.share:+.0%})"

    def _value_width(self) -> int:
        metrics = self.fontMetrics()
        widest = max(
            (metrics.horizontalAdvance(self.value_text(s)) for s in self._shares), default=0
        )
        return widest + 8

    def value_cells(self) -> list[tuple[str, QRect]]:
        """What each value row draws: (text as drawn, its rectangle), top to bottom."""
        width = self.width()
        room = max(0, width - self.LABEL_WIDTH - 8)
        value_w = min(self._value_width(), room)
        metrics = self.fontMetrics()
        cells = []
        y = 2
        member = None
        many = len({s.member for s in self._shares}) > 1
        for s in self._shares:
            if many and s.member != member:
                member = s.member
                y += 16
            rect = QRect(width - value_w, y, value_w - 4, 18)
            text = metrics.elidedText(self.value_text(s), Qt.TextElideMode.ElideRight, rect.width())
            cells.append((text, rect))
            y += 20
        return cells

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(theme.BACKGROUND))
        if not self._shares:
            painter.setPen(QColor(theme.TEXT_DIM))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "select a finding")
            return
        width = self.width()
        label_w = self.LABEL_WIDTH
        cells = self.value_cells()
        value_w = width - cells[0][1].x()
        mid = label_w + (width - label_w - value_w) / 2
        half = max(0.0, (width - label_w - value_w) / 2 - 4)
        y = 2
        member = None
        many = len({s.member for s in self._shares}) > 1
        for s, (text, rect) in zip(self._shares, cells, strict=True):
            if many and s.member != member:
                member = s.member
                painter.setPen(QColor(theme.TEXT_DIM))
                painter.drawText(QRect(4, y, width - 8, 16), Qt.AlignmentFlag.AlignLeft, s.member)
                y += 16
            painter.setPen(QColor(theme.TEXT))
            painter.drawText(QRect(4, y, label_w, 18), Qt.AlignmentFlag.AlignVCenter, f"L{s.level}")
            length = half * abs(s.share)
            colour = QColor(theme.WARNING if s.logit >= 0 else theme.ACCENT)
            x0 = mid if s.logit >= 0 else mid - length
            painter.fillRect(QRectF(x0, y + 4, length, 11), colour)
            painter.setPen(QPen(QColor(theme.BORDER), 1))
            painter.drawLine(int(mid), y, int(mid), y + 18)
            painter.setPen(QColor(theme.TEXT))
            painter.drawText(
                rect, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight, text
            )
            y += 20
        painter.end()


class AIPanel(QWidget):
    """Findings, their evidence and the CAM controls, bound to the viewer state.

    The findings list, the level, model (member) and colour-map choices, the opacity and threshold
    sliders and the heatmap check box each show one state field and set it when the user changes
    them; the details, the level shares and the status line follow the state.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.setMinimumWidth(340)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        layout.addWidget(self.banner)
        self.trust_banner = QLabel()
        self.trust_banner.setObjectName("trust_banner")
        self.trust_banner.setWordWrap(True)
        self.trust_banner.hide()
        layout.addWidget(self.trust_banner)
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.model_label)
        self.state_label = QLabel("")
        self.state_label.setWordWrap(True)
        self.state_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.state_label)

        self.case_label = QLabel("")
        self.case_label.setObjectName("caseLine")
        self.case_label.setWordWrap(True)
        layout.addWidget(self.case_label)
        self.findings_model = FindingsModel(self)
        self.findings_view = QListView()
        self.findings_view.setModel(self.findings_model)
        self.findings_view.setItemDelegate(FindingDelegate(self.findings_view))
        self.findings_view.setUniformItemSizes(True)
        self.findings_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.findings_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.findings_view.setMinimumHeight(12 * FindingDelegate.ROW_HEIGHT + 4)
        layout.addWidget(self.findings_view, stretch=3)

        self.detail_label = QLabel("")
        self.detail_label.setWordWrap(True)
        layout.addWidget(self.detail_label)
        shares_box = QGroupBox("Pyramid levels: share of the finding's logit")
        shares_layout = QVBoxLayout(shares_box)
        self.shares_widget = LevelShareWidget()
        shares_layout.addWidget(self.shares_widget)
        layout.addWidget(shares_box)

        cam_box = QGroupBox("Heatmap (per-level Grad-CAM)")
        form = QFormLayout(cam_box)
        self.overlay_check = QCheckBox("Show heatmap")
        form.addRow(self.overlay_check)
        self.style_widget = OverlayStyleWidget(state)  # heatmap | contours, one click
        form.addRow("Show as", self.style_widget)
        self.level_combo = QComboBox()
        form.addRow("Level", self.level_combo)
        self.member_combo = QComboBox()
        form.addRow("Model", self.member_combo)
        self.colormap_combo = QComboBox()
        for name in COLORMAPS:
            self.colormap_combo.addItem(name, name)
        form.addRow("Colour map", self.colormap_combo)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        form.addRow("Opacity", self.opacity_slider)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        form.addRow("Threshold", self.threshold_slider)
        layout.addWidget(cam_box)
        guard_wheel(
            self.level_combo,
            self.member_combo,
            self.colormap_combo,
            self.opacity_slider,
            self.threshold_slider,
        )

        model = self.findings_model
        self._finding_binding = Binding(
            self.findings_view,
            state,
            "finding",
            self._show_finding,
            self.findings_view.selectionModel().currentChanged,
            lambda current, _previous: (
                int(model.finding(current.row()).index) if current.isValid() else state.finding
            ),
        )
        self._level_binding = bind_combo(self.level_combo, state, "level")
        self._member_binding = bind_combo(self.member_combo, state, "member")
        bind_combo(self.colormap_combo, state, "colormap")
        bind_slider(self.opacity_slider, state, "opacity")
        bind_slider(self.threshold_slider, state, "threshold")
        bind_check(self.overlay_check, state, "overlay_visible")
        state.model_changed.connect(self._on_state_model_changed)
        state.result_changed.connect(self._on_state_result_changed)
        state.cams_changed.connect(self._on_state_levels_changed)
        state.member_changed.connect(self._on_state_levels_changed)
        state.finding_changed.connect(self._on_state_details_changed)
        state.member_changed.connect(self._on_state_details_changed)
        state.urgent_changed.connect(self._on_state_urgent_changed)

    # -- what the state says -----------------------------------------------------------------
    def _on_state_model_changed(self, info: ModelInfo | None) -> None:
        """The model's name and device; the banner when it is untrained or a demo."""
        if info is None:
            return
        self.model_label.setText(
            f"Model: {info.name}  ·  {info.device}  ·  torch threads {info.torch_threads}"
        )
        self.set_banner(info.untrained, info.disclaimer)

    def set_banner(self, untrained: bool, disclaimer: str) -> None:
        """Red banner for an untrained model; the model's disclaimer, quieter, otherwise."""
        if untrained:
            self.banner.setStyleSheet("")
            self.banner.setText(
                "UNTRAINED MODEL: random weights, the findings below mean nothing. "
                "Demo only, not for clinical use."
            )
            self.banner.show()
        elif disclaimer:
            self.banner.setStyleSheet(
                f"background: {theme.SURFACE_HIGH}; color: {theme.WARNING}; font-weight: normal;"
                f" border: 1px solid {theme.BORDER};"
            )
            self.banner.setText(disclaimer)
            self.banner.show()
        else:
            self.banner.hide()

    def set_state(self, text: str) -> None:
        """The status line (what the viewer is doing: loading, running the model...)."""
        self.state_label.setText(text)

    def _on_state_result_changed(self, result: Result | None) -> None:
        self.findings_view.selectionModel().blockSignals(True)
        try:
            self._fill_findings()
        finally:
            self.findings_view.selectionModel().blockSignals(False)
        self._finding_binding.refresh()
        self.member_combo.blockSignals(True)
        try:
            self.member_combo.clear()
            if result is not None:
                self.member_combo.addItem("Ensemble mean", ENSEMBLE)
                for i, name in enumerate(result.member_names):
                    self.member_combo.addItem(str(name), i)
            self.member_combo.setEnabled(result is not None and len(result.member_names) > 1)
        finally:
            self.member_combo.blockSignals(False)
        self._member_binding.refresh()
        self._show_trust(result)
        if result is None:
            self.detail_label.setText("")
            self.shares_widget.set_shares([])
            return
        self.set_banner(bool(result.untrained), str(result.model.get("disclaimer", "") or ""))
        timing = result.timing_ms.get("total", 0.0)
        above = sum(f.above_threshold for f in result.findings)
        self.state_label.setText(
            f"{above} finding(s) above threshold  ·  {timing:.0f} ms on {result.device}"
            + ("  ·  calibrated" if result.calibrated else "  ·  NOT calibrated")
            + ("" if self.state.cams is not None else "  ·  no heatmaps for this result")
        )
        self._on_state_details_changed()

    def _show_trust(self, result: Result | None) -> None:
        """The input verdict: an unmistakable banner and dimmed findings when it is flagged.

        The findings stay listed and selectable (a reader may still inspect them, and their
        heatmaps), but dimmed under a red banner naming every reason; a model without a gate
        says so quietly.
        """
        verdict = None if result is None else result.input
        flagged = verdict is not None and verdict.flagged
        if flagged:
            assert verdict is not None
            reasons = "".join(f"<br>• {html.escape(r.sentence)}" for r in verdict.reasons)
            self.trust_banner.setStyleSheet(
                f"background: {theme.DANGER}; color: white; padding: 6px; font-weight: bold;"
            )
            self.trust_banner.setText(
                "Outside the model's training distribution: findings not reliable."
                f"<span style='font-weight: normal'>{reasons}<br>"
                "The findings below are dimmed; they are still listed for inspection.</span>"
            )
            self.trust_banner.show()
        elif verdict is not None and verdict.in_distribution is None and result is not None:
            self.trust_banner.setStyleSheet(f"color: {theme.TEXT_DIM};")
            note = verdict.note or "the model has no input gate"
            self.trust_banner.setText(f"Input not checked against the training data: {note}.")
            self.trust_banner.show()
        else:
            self.trust_banner.hide()
        effect = self.findings_view.graphicsEffect()
        if flagged and effect is None:
            dim = QGraphicsOpacityEffect(self.findings_view)
            dim.setOpacity(0.4)
            self.findings_view.setGraphicsEffect(dim)
        elif not flagged and effect is not None:
            self.findings_view.setGraphicsEffect(None)  # type: ignore[arg-type]

    @property
    def findings_dimmed(self) -> bool:
        """True while the findings are dimmed under the out-of-distribution banner."""
        return self.findings_view.graphicsEffect() is not None

    def _fill_findings(self) -> None:
        result, info = self.state.result, self.state.model
        tiers = prevalence_tiers(info.train_counts if info is not None else None)
        findings = result.findings if result is not None else ()
        positives = [f for f in findings if f.label != CASE_LABEL]
        self.findings_model.set_findings(positives, tiers, self.state.urgent)
        self.case_label.setText(case_line(findings))

    def _on_state_urgent_changed(self, _urgent: tuple[str, ...]) -> None:
        self._fill_findings()
        self._finding_binding.refresh()

    def _on_state_levels_changed(self, *_: Any) -> None:
        """Offer the chosen member's levels (and fused)."""
        self.level_combo.blockSignals(True)
        try:
            self.level_combo.clear()
            for key in self.state.levels:
                label = "Fused (share-weighted)" if key == FUSED else f"Level {key}"
                self.level_combo.addItem(label, key)
            self.level_combo.setEnabled(bool(self.state.levels))
        finally:
            self.level_combo.blockSignals(False)
        self._level_binding.refresh()

    def _show_finding(self, class_index: int | None) -> None:
        row = None if class_index is None else self.findings_model.row_of(class_index)
        if row is None:
            self.findings_view.clearSelection()
        else:
            self.findings_view.setCurrentIndex(self.findings_model.index(row))

    def _on_state_details_changed(self, *_: Any) -> None:
        state, finding = self.state, self.state.selected_finding
        if state.result is None or finding is None:
            self.detail_label.setText("")
            self.shares_widget.set_shares([])
            return
        members = "  ".join(
            f"{n}: {p:.1%}"
            for n, p in zip(state.result.member_names, finding.member_probabilities, strict=True)
        )
        text = (
            f"<b>{finding.label}</b>  {finding.probability:.1%}  "
            f"(threshold {finding.threshold:.1%}, "
            f"{'above' if finding.above_threshold else 'below'})<br>"
            f"<span style='color:{theme.TEXT_DIM}'>members: {members}"
            f"  ·  spread {finding.member_spread:.1%}</span>"
        )
        weights = state.cams.fusion_weights(finding.index, state.member) if state.cams else None
        if weights:
            parts = "  ".join(f"L{lv} {w:.0%}" for lv, w in weights.items())
            text += f"<br><span style='color:{theme.TEXT_DIM}'>fused-map weights: {parts}</span>"
        self.detail_label.setText(text)
        self.shares_widget.set_shares(level_shares(state.result, finding.index))

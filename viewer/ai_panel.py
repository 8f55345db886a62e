"""The AI panel: ranked findings with evidence, and the controls of the CAM overlay.

Shows what commercial chest X-ray AI shows (findings ranked by probability, bars with each class's
threshold, heatmaps) and what it does not: the spread between ensemble members and each pyramid
level's share of the selected finding's logit, plus a grid of that finding's map at every level.
A banner says so when the model is untrained or only a demo.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGridLayout,
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

from viewer import theme
from viewer.cam_display import COLORMAPS, FUSED, LevelKey, LevelShare

FindingRole = Qt.ItemDataRole.UserRole + 1
TierRole = Qt.ItemDataRole.UserRole + 2
UrgentRole = Qt.ItemDataRole.UserRole + 3


class FindingsModel(QAbstractListModel):
    """The findings of one result, highest probability first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._findings: list[Any] = []
        self._tiers: dict[str, str] = {}
        self._urgent: set[str] = set()

    def set_findings(
        self, findings: Sequence[Any], tiers: dict[str, str], urgent: Sequence[str]
    ) -> None:
        self.beginResetModel()
        self._findings = list(findings)
        self._tiers = dict(tiers)
        self._urgent = set(urgent)
        self.endResetModel()

    def finding(self, row: int) -> Any:
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


class LevelShareWidget(QWidget):
    """Signed bars: each level's logit for the selected finding, per member."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._shares: list[LevelShare] = []
        self.setMinimumHeight(40)

    def set_shares(self, shares: Sequence[LevelShare]) -> None:
        self._shares = list(shares)
        members = {s.member for s in self._shares}
        self.setMinimumHeight(20 * len(self._shares) + 16 * len(members) + 4)
        self.update()

    @property
    def shares(self) -> list[LevelShare]:
        return list(self._shares)

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(theme.BACKGROUND))
        if not self._shares:
            painter.setPen(QColor(theme.TEXT_DIM))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter, "select a finding")
            return
        width = self.width()
        label_w, value_w = 44, 92
        mid = label_w + (width - label_w - value_w) / 2
        half = (width - label_w - value_w) / 2 - 4
        y = 2
        member = None
        many = len({s.member for s in self._shares}) > 1
        for s in self._shares:
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
                QRect(width - value_w, y, value_w - 4, 18),
                Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignRight,
                f"{s.logit:+.2f} ({s.share:+.0%})",
            )
            y += 20
        painter.end()


class LevelGridWidget(QWidget):
    """The selected finding's map at every level side by side; clicking a tile picks its level."""

    tile_clicked = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._layout = QGridLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._layout.setSpacing(4)
        self._tiles: list[tuple[LevelKey, QLabel, QLabel]] = []

    def set_tiles(self, tiles: Sequence[tuple[LevelKey, str, np.ndarray]]) -> None:
        """Tiles as (level key, title, (h, w, 3) uint8 RGB)."""
        for _, image_label, title_label in self._tiles:
            image_label.deleteLater()
            title_label.deleteLater()
        self._tiles = []
        for col, (key, title, rgb) in enumerate(tiles):
            rgb = np.ascontiguousarray(rgb)
            h, w = rgb.shape[:2]
            qimage = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            image_label = QLabel()
            image_label.setPixmap(QPixmap.fromImage(qimage))
            image_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            image_label.setCursor(Qt.CursorShape.PointingHandCursor)
            image_label.mousePressEvent = self._tile_press_handler(key)  # type: ignore[method-assign]
            title_label = QLabel(title)
            title_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            title_label.setStyleSheet(f"color: {theme.TEXT_DIM}; font-size: 8pt;")
            self._layout.addWidget(image_label, 0, col)
            self._layout.addWidget(title_label, 1, col)
            self._tiles.append((key, image_label, title_label))

    def _tile_press_handler(self, key: LevelKey) -> Any:
        def handler(_event: Any) -> None:
            self.tile_clicked.emit(key)

        return handler

    def tile_keys(self) -> list[LevelKey]:
        return [key for key, _, _ in self._tiles]

    def tile_titles(self) -> list[str]:
        return [t.text() for _, _, t in self._tiles]


class AIPanel(QWidget):
    """Findings, their evidence and the CAM controls.

    Signals:
        finding_selected(class_index): a finding was clicked (or chosen with the keyboard).
        level_changed(level): a paper level number or ``"fused"``.
        member_changed(member): a member index, or -1 for the ensemble.
        overlay_changed(): colour map, opacity, threshold or visibility changed.
    """

    finding_selected = Signal(int)
    level_changed = Signal(object)
    member_changed = Signal(int)
    overlay_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMinimumWidth(340)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)

        self.banner = QLabel()
        self.banner.setObjectName("banner")
        self.banner.setWordWrap(True)
        self.banner.hide()
        layout.addWidget(self.banner)
        self.model_label = QLabel("No model loaded")
        self.model_label.setWordWrap(True)
        self.model_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.model_label)
        self.state_label = QLabel("")
        self.state_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.state_label)

        self.findings_model = FindingsModel(self)
        self.findings_view = QListView()
        self.findings_view.setModel(self.findings_model)
        self.findings_view.setItemDelegate(FindingDelegate(self.findings_view))
        self.findings_view.setUniformItemSizes(True)
        self.findings_view.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.findings_view.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.findings_view.setMinimumHeight(12 * FindingDelegate.ROW_HEIGHT + 4)
        self.findings_view.selectionModel().currentChanged.connect(
            self._on_findings_current_changed
        )
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
        self.overlay_check.setChecked(True)
        form.addRow(self.overlay_check)
        self.level_combo = QComboBox()
        form.addRow("Level", self.level_combo)
        self.member_combo = QComboBox()
        form.addRow("Model", self.member_combo)
        self.colormap_combo = QComboBox()
        self.colormap_combo.addItems(COLORMAPS)
        form.addRow("Colour map", self.colormap_combo)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setValue(40)
        form.addRow("Opacity", self.opacity_slider)
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, 100)
        self.threshold_slider.setValue(25)
        form.addRow("Threshold", self.threshold_slider)
        layout.addWidget(cam_box)

        # Placed by the window (a strip under the film has room for every level side by side).
        self.level_grid = LevelGridWidget()

        self._result: Any = None
        self._levels: list[LevelKey] = []
        self._syncing = False
        self.level_combo.currentIndexChanged.connect(self._on_level_combo_changed)
        self.member_combo.currentIndexChanged.connect(self._on_member_combo_changed)
        self.colormap_combo.currentIndexChanged.connect(lambda _i: self.overlay_changed.emit())
        self.opacity_slider.valueChanged.connect(lambda _v: self.overlay_changed.emit())
        self.threshold_slider.valueChanged.connect(lambda _v: self.overlay_changed.emit())
        self.overlay_check.toggled.connect(lambda _b: self.overlay_changed.emit())
        self.level_grid.tile_clicked.connect(self.set_level)

    # -- model and result ------------------------------------------------------------------
    def set_model_info(self, info: Any) -> None:
        """Show the model's name and device; the banner when it is untrained or a demo."""
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
        self.state_label.setText(text)

    def set_result(
        self,
        result: Any,
        tiers: dict[str, str] | None = None,
        urgent: Sequence[str] = (),
        levels: Sequence[int] = (),
    ) -> None:
        """Show a result's findings; selects nothing (the window selects the top finding)."""
        self._result = result
        self.set_banner(bool(result.untrained), str(result.model.get("disclaimer", "") or ""))
        self.findings_model.set_findings(result.findings, tiers or {}, urgent)
        self._syncing = True
        try:
            self._fill_levels(levels)
            self.member_combo.clear()
            self.member_combo.addItem("Ensemble mean")
            for name in result.member_names:
                self.member_combo.addItem(str(name))
            self.member_combo.setEnabled(len(result.member_names) > 1)
        finally:
            self._syncing = False
        timing = result.timing_ms.get("total", 0.0)
        above = sum(f.above_threshold for f in result.findings)
        self.state_label.setText(
            f"{above} finding(s) above threshold  ·  {timing:.0f} ms on {result.device}"
            + ("" if self._levels else "  ·  no heatmaps for this result")
        )

    def set_levels(self, levels: Sequence[int]) -> None:
        """Offer these levels (and fused), keeping the current choice when it is still there."""
        self._syncing = True
        try:
            self._fill_levels(levels)
        finally:
            self._syncing = False

    def _fill_levels(self, levels: Sequence[int]) -> None:
        current = self.level
        self._levels = [FUSED, *levels] if levels else []
        self.level_combo.clear()
        for key in self._levels:
            self.level_combo.addItem("Fused (share-weighted)" if key == FUSED else f"Level {key}")
        if current in self._levels:
            self.level_combo.setCurrentIndex(self._levels.index(current))
        self.level_combo.setEnabled(bool(self._levels))

    def clear(self) -> None:
        self._result = None
        self.findings_model.set_findings([], {}, [])
        self.detail_label.setText("")
        self.shares_widget.set_shares([])
        self.level_grid.set_tiles([])

    @property
    def result(self) -> Any:
        return self._result

    # -- selection ---------------------------------------------------------------------------
    @property
    def selected_class(self) -> int | None:
        index = self.findings_view.currentIndex()
        if not index.isValid():
            return None
        return int(self.findings_model.finding(index.row()).index)

    def select_finding(self, class_index: int) -> None:
        row = self.findings_model.row_of(class_index)
        if row is not None:
            self.findings_view.setCurrentIndex(self.findings_model.index(row))

    def set_details(
        self, finding: Any, shares: Sequence[LevelShare], weights: dict[int, float] | None
    ) -> None:
        members = "  ".join(
            f"{n}: {p:.1%}"
            for n, p in zip(self._result.member_names, finding.member_probabilities, strict=True)
        )
        text = (
            f"<b>{finding.label}</b>  {finding.probability:.1%}  "
            f"(threshold {finding.threshold:.1%}, "
            f"{'above' if finding.above_threshold else 'below'})<br>"
            f"<span style='color:{theme.TEXT_DIM}'>members: {members}"
            f"  ·  spread {finding.member_spread:.1%}</span>"
        )
        if weights:
            parts = "  ".join(f"L{lv} {w:.0%}" for lv, w in weights.items())
            text += f"<br><span style='color:{theme.TEXT_DIM}'>fused-map weights: {parts}</span>"
        self.detail_label.setText(text)
        self.shares_widget.set_shares(shares)

    # -- CAM controls ------------------------------------------------------------------------
    @property
    def level(self) -> LevelKey:
        i = self.level_combo.currentIndex()
        return self._levels[i] if 0 <= i < len(self._levels) else FUSED

    def set_level(self, level: LevelKey) -> None:
        if level in self._levels:
            self.level_combo.setCurrentIndex(self._levels.index(level))

    def cycle_level(self, step: int) -> None:
        if self._levels:
            i = (self.level_combo.currentIndex() + step) % len(self._levels)
            self.level_combo.setCurrentIndex(i)

    @property
    def member(self) -> int:
        return self.member_combo.currentIndex() - 1 if self.member_combo.currentIndex() > 0 else -1

    @property
    def colormap(self) -> str:
        return self.colormap_combo.currentText() or COLORMAPS[0]

    def set_colormap(self, name: str) -> None:
        i = self.colormap_combo.findText(name)
        if i >= 0:
            self.colormap_combo.setCurrentIndex(i)

    @property
    def opacity(self) -> float:
        return self.opacity_slider.value() / 100.0

    @property
    def threshold(self) -> float:
        return self.threshold_slider.value() / 100.0

    @property
    def overlay_visible(self) -> bool:
        return self.overlay_check.isChecked()

    def _on_findings_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid():
            self.finding_selected.emit(int(self.findings_model.finding(current.row()).index))

    def _on_level_combo_changed(self, _index: int) -> None:
        if not self._syncing:
            self.level_changed.emit(self.level)

    def _on_member_combo_changed(self, _index: int) -> None:
        if not self._syncing:
            self.member_changed.emit(self.member)

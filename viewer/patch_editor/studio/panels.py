"""The studio's small widgets, each bound to the :class:`StudioState` (never to each other).

- :class:`TargetPanel`: a folder or a labels CSV of targets, listed with their labels.
- :class:`PatchPanel`: the placed patches; add the gallery's selection, the MixUp partner proposed
  from the co-occurrence matrix (editable), remove; size factor, alpha, feathering and intensity
  matching of the patch being edited.
- :class:`SettingsPanel`: mode, mm-consistent size, lung field policy, seed; before / after /
  difference.
- :class:`LabelVectorTable`: the target's label values beside the composite's (what training sees).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFont
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QRadioButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.labels import LABELS
from viewer.patch_editor.qt_util import blocked
from viewer.patch_editor.studio import model as sm
from viewer.patch_editor.studio.state import VIEWS, StudioState

MASK_FOLDER = "mask folder…"


class TargetPanel(QGroupBox):
    """Where targets come from (a folder, or a labels CSV with its labels) and which one is shown.

    Signals:
        source_requested(str): list the targets of this folder or CSV (the studio loads it).
        target_picked(TargetRef): load this target.
    """

    source_requested = Signal(str)
    target_picked = Signal(object)

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__("Target image", parent)
        self.state = state
        self.source = QLineEdit()
        self.source.setPlaceholderText("folder of images, or a labels CSV (CXR-LT layout)")
        self.open_button = QPushButton("List")
        self.browse_folder = QPushButton("Folder…")
        self.browse_csv = QPushButton("CSV…")
        self.normal_only = QCheckBox("normal only (CutMix)")
        self.list = QListWidget()
        self.list.setMinimumHeight(120)
        self.labels = QLabel("")
        self.labels.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.source, 1)
        row.addWidget(self.open_button)
        row.addWidget(self.browse_folder)
        row.addWidget(self.browse_csv)
        lay = QVBoxLayout(self)
        lay.addLayout(row)
        lay.addWidget(self.normal_only)
        lay.addWidget(self.list, 1)
        lay.addWidget(self.labels)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.browse_folder.clicked.connect(self._on_browse_folder_clicked)
        self.browse_csv.clicked.connect(self._on_browse_csv_clicked)
        self.source.returnPressed.connect(self._on_open_clicked)
        self.normal_only.toggled.connect(lambda _on: self._fill(self.state.targets))
        self.list.currentItemChanged.connect(self._on_list_current_changed)
        state.targets_changed.connect(self._fill)
        state.target_changed.connect(self._on_state_target_changed)

    def _on_browse_folder_clicked(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder of target images")
        if path:
            self.source.setText(path)
            self._on_open_clicked()

    def _on_browse_csv_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Labels CSV of the targets", "", "Labels CSV (*.csv *.csv.gz);;All files (*)"
        )
        if path:
            self.source.setText(path)
            self._on_open_clicked()

    def _on_open_clicked(self) -> None:
        text = self.source.text().strip()
        if text:
            self.source_requested.emit(text)

    def _fill(self, refs: list[sm.TargetRef]) -> None:
        with blocked(self.list):
            self.list.clear()
            for ref in refs:
                if (
                    self.normal_only.isChecked()
                    and ref.labelled
                    and ref.label_text() != "No Finding"
                ):
                    continue
                item = QListWidgetItem(f"{ref.name}   —   {ref.label_text()}")
                item.setData(Qt.ItemDataRole.UserRole, ref)
                self.list.addItem(item)

    def row_of(self, name: str) -> int:
        """The list row of the target named ``name`` (-1 when not listed)."""
        for i in range(self.list.count()):
            if self.list.item(i).data(Qt.ItemDataRole.UserRole).name == name:
                return i
        return -1

    def _on_list_current_changed(self, item: QListWidgetItem | None, _old: Any) -> None:
        if item is not None:
            self.target_picked.emit(item.data(Qt.ItemDataRole.UserRole))

    def _on_state_target_changed(self, target: sm.Target | None) -> None:
        if target is None:
            self.labels.setText("")
            return
        spacing = (
            f"{target.spacing[1]:.3f} mm/px" if target.spacing is not None else "spacing unknown"
        )
        h, w = target.pixels.shape
        self.labels.setText(
            f"<b>{target.ref.name}</b> ({w}x{h}, {spacing})<br>Labels: {target.ref.label_text()}"
        )


class PatchPanel(QGroupBox):
    """The patches on the target and the controls of the one being edited.

    A drag moves a patch many times a second; the row that shows its place is retitled at most
    every ``RETITLE_MS`` (repainting the list behind a styled group box cost about as much as
    the composite itself, per step). Adding, removing or picking a patch shows at once.

    Signals:
        add_selected(): add the gallery's selection.
        add_partner(str): add a patch of this class (the MixUp partner).
    """

    add_selected = Signal()
    add_partner = Signal(str)
    RETITLE_MS = 100

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__("Patches", parent)
        self.state = state
        self._retitle = QTimer(self)
        self._retitle.setSingleShot(True)
        self._retitle.setInterval(self.RETITLE_MS)
        self._retitle.timeout.connect(self._show_rows)
        self.list = QListWidget()
        self.list.setMaximumHeight(110)
        self.add_button = QPushButton("Add gallery selection")
        self.remove_button = QPushButton("Remove")
        self.partner = QComboBox()
        self.partner.setEditable(False)
        self.partner.addItem("")
        self.partner.addItems([x for x in LABELS if x != "No Finding"])
        self.partner_button = QPushButton("Add partner")
        self.partner_note = QLabel("")
        self.partner_note.setWordWrap(True)
        self.factor = QDoubleSpinBox()
        self.factor.setRange(0.1, 5.0)
        self.factor.setSingleStep(0.05)
        self.factor.setDecimals(2)
        self.alpha = QDoubleSpinBox()
        self.alpha.setRange(0.05, 1.0)
        self.alpha.setSingleStep(0.05)
        self.alpha.setDecimals(2)
        self.feather = QDoubleSpinBox()
        self.feather.setRange(0.0, 1.0)
        self.feather.setSingleStep(0.1)
        self.feather.setDecimals(2)
        self.match = QCheckBox("intensity matching")
        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        partner = QHBoxLayout()
        partner.addWidget(QLabel("MixUp partner"))
        partner.addWidget(self.partner, 1)
        partner.addWidget(self.partner_button)
        form = QFormLayout()
        form.addRow("size factor", self.factor)
        form.addRow("alpha", self.alpha)
        form.addRow("feathering", self.feather)
        form.addRow("", self.match)
        lay = QVBoxLayout(self)
        lay.addWidget(self.list)
        lay.addLayout(buttons)
        lay.addLayout(partner)
        lay.addWidget(self.partner_note)
        lay.addLayout(form)
        self.add_button.clicked.connect(self.add_selected.emit)
        self.remove_button.clicked.connect(lambda: state.remove_patch(state.current))
        self.partner_button.clicked.connect(self._on_partner_clicked)
        self.list.currentRowChanged.connect(self._on_list_row_changed)
        self._bind(self.factor, "factor")
        self._bind(self.alpha, "alpha")
        self._bind(self.feather, "feather")
        self.match.toggled.connect(lambda on: state.update_patch(state.current, match=bool(on)))
        state.patches_changed.connect(self._on_state_patches_changed)
        state.current_changed.connect(self._on_state_current_changed)
        state.partner_changed.connect(self._on_state_partner_changed)
        self._on_state_patches_changed(state.patches)

    def _bind(self, spin: QDoubleSpinBox, name: str) -> None:
        spin.valueChanged.connect(
            lambda v: self.state.update_patch(self.state.current, **{name: float(v)})
        )

    def _on_partner_clicked(self) -> None:
        label = self.partner.currentText()
        if label:
            self.add_partner.emit(label)

    def _on_list_row_changed(self, row: int) -> None:
        self.state.set_current(row)

    def _on_state_patches_changed(self, patches: tuple[sm.StudioPatch, ...]) -> None:
        if self.list.count() == len(patches):  # moved or edited: retitle soon, no rebuild
            if not self._retitle.isActive():
                self._retitle.start()
        else:
            self._retitle.stop()
            self._show_rows()
        self._show_current()

    def _show_rows(self) -> None:
        texts = [
            f"#{p.patch_id} {p.label}  at ({p.center[0]:.2f}, {p.center[1]:.2f})  alpha {p.alpha:.2f}"
            for p in self.state.patches
        ]
        with blocked(self.list):
            if self.list.count() == len(texts):
                for row, text in enumerate(texts):
                    item = self.list.item(row)
                    if item.text() != text:
                        item.setText(text)
            else:
                self.list.clear()
                self.list.addItems(texts)
            if self.list.currentRow() != self.state.current:
                self.list.setCurrentRow(self.state.current)

    def _on_state_current_changed(self, index: int) -> None:
        with blocked(self.list):
            self.list.setCurrentRow(index)
        self._show_current()

    def _show_current(self) -> None:
        i = self.state.current
        ok = 0 <= i < len(self.state.patches)
        for w in (self.factor, self.alpha, self.feather, self.match, self.remove_button):
            w.setEnabled(ok)
        if not ok:
            return
        p = self.state.patches[i]
        for spin, value in (
            (self.factor, p.factor),
            (self.alpha, p.alpha),
            (self.feather, p.feather),
        ):
            if spin.value() != round(value, spin.decimals()):
                with blocked(spin):
                    spin.setValue(value)
        if self.match.isChecked() != p.match:
            with blocked(self.match):
                self.match.setChecked(p.match)

    def _on_state_partner_changed(self, partner: str) -> None:
        with blocked(self.partner):
            self.partner.setCurrentText(partner)
        if partner:
            self.partner_note.setText(
                f"Most correlated with the edited patch's class: {partner} (from the labels CSV's "
                "co-occurrence matrix; pick another to change it)."
            )
        elif self.state.correlation is None:
            self.partner_note.setText(
                "No co-occurrence matrix: list targets from a labels CSV to get a proposal."
            )
        else:
            self.partner_note.setText("")


class SettingsPanel(QGroupBox):
    """Mode, mm-consistent size, lung policy and seed; the before / after / difference toggle."""

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__("Composition", parent)
        self.state = state
        self.mode = QComboBox()
        self.mode.addItem("CutMix (alpha 1)", sm.CUTMIX)
        self.mode.addItem("MixUp (alpha 0.6)", sm.MIXUP)
        self.mm = QCheckBox("size consistent in mm")
        self.lung = QComboBox()
        self.lung.addItems([*sm.LUNG_POLICIES, MASK_FOLDER])
        self.lung.setToolTip("the lung field lung findings are kept in (generate's --lung)")
        self.seed = QSpinBox()
        self.seed.setRange(0, 2**31 - 1)
        self.view_group = QButtonGroup(self)
        views = QHBoxLayout()
        self.view_buttons: dict[str, QRadioButton] = {}
        for name in VIEWS:
            b = QRadioButton(name)
            self.view_group.addButton(b)
            self.view_buttons[name] = b
            views.addWidget(b)
            b.toggled.connect(self._view_setter(name))
        form = QFormLayout(self)
        form.addRow("mode", self.mode)
        form.addRow("", self.mm)
        form.addRow("lung field", self.lung)
        form.addRow("seed", self.seed)
        form.addRow("show", views)
        self.mode.currentIndexChanged.connect(
            lambda _i: state.update_settings(mode=self.mode.currentData())
        )
        self.mm.toggled.connect(lambda on: state.update_settings(mm_consistent=bool(on)))
        self.lung.activated.connect(self._on_lung_activated)
        self.seed.valueChanged.connect(lambda v: state.update_settings(seed=int(v)))
        state.settings_changed.connect(self._show)
        state.view_changed.connect(self._show_view)
        self._show(state.settings)
        self._show_view(state.view)

    def _on_lung_activated(self, _index: int) -> None:
        text = self.lung.currentText()
        if text == MASK_FOLDER:
            text = QFileDialog.getExistingDirectory(self, "Folder of lung masks (<dicom_id>.png)")
            if not text:
                self._show(self.state.settings)
                return
        self.state.update_settings(lung=text)

    def _view_setter(self, name: str) -> Callable[[bool], None]:
        def on_toggled(on: bool) -> None:
            if on:
                self.state.set_view(name)

        return on_toggled

    def _show(self, s: sm.StudioSettings) -> None:
        for w, fn in (
            (self.mode, lambda: self.mode.setCurrentIndex(sm.MODES.index(s.mode))),
            (self.mm, lambda: self.mm.setChecked(s.mm_consistent)),
            (self.lung, lambda: self._show_lung(s.lung)),
            (self.seed, lambda: self.seed.setValue(s.seed)),
        ):
            with blocked(w):
                fn()

    def _show_lung(self, lung: str) -> None:
        if self.lung.findText(lung) < 0:  # a mask folder: listed above "mask folder…"
            self.lung.insertItem(self.lung.count() - 1, lung)
        self.lung.setCurrentText(lung)

    def _show_view(self, view: str) -> None:
        b = self.view_buttons[view]
        with blocked(b):
            b.setChecked(True)


class LabelVectorTable(QTableWidget):
    """The 26 labels: the target's values (soft ones as read) and the composite's row."""

    def __init__(self, state: StudioState, parent: QWidget | None = None) -> None:
        super().__init__(len(LABELS), 3, parent)
        self.studio = state  # not ``state``: QAbstractItemView.state() is Qt's
        self.setHorizontalHeaderLabels(["label", "target", "composite"])
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(20)
        self.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QTableWidget.SelectionMode.NoSelection)
        for i, name in enumerate(LABELS):
            self.setItem(i, 0, QTableWidgetItem(name))
            for c in (1, 2):
                item = QTableWidgetItem("")
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.setItem(i, c, item)
        state.labels_changed.connect(lambda _v: self._show())
        state.target_changed.connect(lambda _t: self._show())
        self._show()

    def cell(self, row: int, column: int) -> QTableWidgetItem:
        item = self.item(row, column)
        assert item is not None  # every cell is made in __init__
        return item

    def value(self, label: str, column: str = "composite") -> str:
        return self.cell(LABELS.index(label), 2 if column == "composite" else 1).text()

    def _show(self) -> None:
        t = self.studio.target
        target = t.ref.values if t is not None and t.ref.labelled else None
        comp = self.studio.labels
        bold = QFont()
        bold.setBold(True)
        dim = QBrush(QColor("#808080"))
        for i in range(len(LABELS)):
            tv = "" if target is None else _fmt(float(target[i]))
            cv = _fmt(float(comp[i])) if self.studio.recipe is not None else ""
            self.cell(i, 1).setText(tv)
            self.cell(i, 2).setText(cv)
            on = bool(comp[i] > 0) or (target is not None and bool(target[i] > 0))
            for c in range(3):
                item = self.cell(i, c)
                item.setFont(bold if comp[i] > 0 else QFont())
                item.setForeground(QBrush() if on else dim)


def _fmt(v: float) -> str:
    return "0" if v == 0 else ("1" if v == 1 else f"{v:.2f}")

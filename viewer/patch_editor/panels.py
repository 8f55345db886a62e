"""Small widgets of the patch editor, each bound to the state model and to nothing else.

- :class:`FilterBar`: label, state, data set, size range, reader agreement, free text, sort.
- :class:`CountsTable`: patches per label and state over the whole library, the long tail at a
  glance (sorted by total; double-click a label to filter by it).
- :class:`CurationPanel`: the current patch (preview, provenance), accept / reject / reset, rating,
  notes and tags; every button acts on the selection, and every change is written at once.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.labels import LABELS
from viewer import theme
from viewer.patch_editor.gallery import STATE_COLOURS, label_colour
from viewer.patch_editor.model import SORT_KEYS, STATES, EditorError, GalleryFilter
from viewer.patch_editor.qt_util import blocked
from viewer.patch_editor.state import EditorState

ALL = "all"


class FilterBar(QWidget):
    """The gallery's filter and sort, bound to ``state.filter`` both ways."""

    def __init__(self, state: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.label_combo = QComboBox()
        self.label_combo.addItems([ALL, *LABELS])
        self.state_combo = QComboBox()
        self.state_combo.addItems([ALL, *STATES])
        self.dataset_combo = QComboBox()
        self.dataset_combo.addItem(ALL)
        self.min_size = QDoubleSpinBox()
        self.max_size = QDoubleSpinBox()
        for box, tip in ((self.min_size, "smallest"), (self.max_size, "largest")):
            box.setRange(0, 10000)
            box.setDecimals(0)
            box.setSpecialValueText("any")
            box.setToolTip(f"{tip} larger lesion side (mm when the spacing is known, else px)")
        self.readers = QSpinBox()
        self.readers.setRange(1, 9)
        self.readers.setPrefix("≥")
        self.readers.setSuffix(" readers")
        self.readers.setToolTip("reader agreement: lesions marked by at least this many readers")
        self.text = QLineEdit()
        self.text.setPlaceholderText("text in notes / tags")
        self.text.setClearButtonEnabled(True)
        self.sort_combo = QComboBox()
        self.sort_combo.addItems(list(SORT_KEYS))
        self.descending = QCheckBox("desc")
        self.min_efficacy = QDoubleSpinBox()  # the studio's patch efficacy (issue 16)
        self.min_efficacy.setRange(-1.01, 1.0)
        self.min_efficacy.setSingleStep(0.01)
        self.min_efficacy.setDecimals(2)
        self.min_efficacy.setPrefix("eff ≥ ")
        self.min_efficacy.setSpecialValueText("eff: any")
        self.min_efficacy.setValue(-1.01)
        self.min_efficacy.setToolTip(
            "only patches whose efficacy (mean probability rise) is at least"
        )
        self.efficacy_model = QComboBox()
        self.efficacy_model.setToolTip("whose efficacy scores the gallery shows")
        self.efficacy_model.addItem("newest score", "")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        for text, widget in (
            ("Label", self.label_combo),
            ("State", self.state_combo),
            ("Data set", self.dataset_combo),
            ("Size", self.min_size),
            ("–", self.max_size),
            ("", self.readers),
            ("", self.text),
            ("Sort", self.sort_combo),
            ("", self.descending),
            ("", self.min_efficacy),
            ("", self.efficacy_model),
        ):
            if text:
                layout.addWidget(QLabel(text))
            layout.addWidget(widget)
        layout.setStretch(layout.indexOf(self.text), 1)

        self.label_combo.currentTextChanged.connect(
            lambda t: state.update_filter(labels=() if t == ALL else (t,))
        )
        self.state_combo.currentTextChanged.connect(
            lambda t: state.update_filter(states=() if t == ALL else (t,))
        )
        self.dataset_combo.currentTextChanged.connect(
            lambda t: state.update_filter(datasets=() if t in (ALL, "") else (t,))
        )
        self.min_size.valueChanged.connect(lambda v: state.update_filter(min_size=v or None))
        self.max_size.valueChanged.connect(lambda v: state.update_filter(max_size=v or None))
        self.readers.valueChanged.connect(lambda v: state.update_filter(min_readers=int(v)))
        self.text.textChanged.connect(lambda t: state.update_filter(text=t.strip()))
        self.sort_combo.currentTextChanged.connect(lambda t: state.update_filter(sort=t))
        self.descending.toggled.connect(lambda on: state.update_filter(descending=bool(on)))
        self.min_efficacy.valueChanged.connect(
            lambda v: state.update_filter(min_efficacy=None if v < -1.0 else float(v))
        )
        self.efficacy_model.currentIndexChanged.connect(
            lambda _i: state.update_filter(efficacy_model=self.efficacy_model.currentData() or "")
        )
        state.library_edited.connect(self._on_state_library_edited)
        state.filter_changed.connect(self._on_state_filter_changed)
        state.session_changed.connect(self._on_state_session_changed)

    def _on_state_session_changed(self, session: Any) -> None:
        names = []
        if session is not None:
            try:
                names = session.datasets()
            except EditorError:
                names = []
        with blocked(self.dataset_combo):
            self.dataset_combo.clear()
            self.dataset_combo.addItems([ALL, *names])
        self._fill_efficacy_models()

    def _on_state_library_edited(self, ids: Any) -> None:
        if ids is None:  # maybe new scores (or an undo): the scored models may have changed
            self._fill_efficacy_models()

    def _fill_efficacy_models(self) -> None:
        session = self.state.session
        models = session.efficacy_models() if session is not None else []
        with blocked(self.efficacy_model):
            current = self.efficacy_model.currentData()
            self.efficacy_model.clear()
            self.efficacy_model.addItem("newest score", "")
            for name, mid, n in models:
                self.efficacy_model.addItem(f"{name} ({mid[:8]}, {n})", mid)
            i = self.efficacy_model.findData(current)
            self.efficacy_model.setCurrentIndex(max(i, 0))
        self.efficacy_model.setVisible(bool(models))

    def _on_state_filter_changed(self, flt: GalleryFilter) -> None:
        def pick(combo: QComboBox, values: tuple[str, ...]) -> None:
            with blocked(combo):
                combo.setCurrentText(values[0] if values else ALL)

        pick(self.label_combo, flt.labels)
        pick(self.state_combo, flt.states)
        pick(self.dataset_combo, flt.datasets)
        for box, value in ((self.min_size, flt.min_size), (self.max_size, flt.max_size)):
            with blocked(box):
                box.setValue(value or 0)
        with blocked(self.readers):
            self.readers.setValue(flt.min_readers)
        if self.text.text().strip() != flt.text:
            with blocked(self.text):
                self.text.setText(flt.text)
        with blocked(self.sort_combo):
            self.sort_combo.setCurrentText(flt.sort)
        with blocked(self.descending):
            self.descending.setChecked(flt.descending)
        with blocked(self.min_efficacy):
            self.min_efficacy.setValue(-1.01 if flt.min_efficacy is None else flt.min_efficacy)


class CountsTable(QTableWidget):
    """Patches per label and state (whole library), largest first; an 'all' row at the top."""

    COLUMNS = ("Label", "Total", *STATES)

    def __init__(self, state: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(0, len(self.COLUMNS), parent)
        self.editor_state = state
        self.setHorizontalHeaderLabels(["Label", "All", "Unrev.", "Acc.", "Rej."])
        self.verticalHeader().hide()
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        header = self.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for c in range(1, len(self.COLUMNS)):
            header.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        self.verticalHeader().setDefaultSectionSize(20)
        self.counts: dict[str, dict[str, int]] = {}
        state.session_changed.connect(lambda _s: self.refresh())
        state.library_edited.connect(lambda _ids: self.refresh())
        self.cellDoubleClicked.connect(self._on_cell_double_clicked)

    def refresh(self) -> None:
        session = self.editor_state.session
        counts: dict[str, dict[str, int]] = {}
        if session is not None:
            try:
                counts = session.counts()
            except EditorError as exc:
                self.editor_state.say(str(exc), error=True)
        self.counts = counts
        rows = sorted(counts.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
        total = {s: sum(c.get(s, 0) for c in counts.values()) for s in STATES}
        self.setRowCount(len(rows) + 1)
        self._fill(0, "all", total, bold=True)
        for i, (label, by_state) in enumerate(rows, start=1):
            self._fill(i, label, by_state)

    def _fill(self, row: int, label: str, by_state: dict[str, int], bold: bool = False) -> None:
        values = [label, str(sum(by_state.values()))] + [str(by_state.get(s, 0)) for s in STATES]
        for col, text in enumerate(values):
            item = QTableWidgetItem(text)
            if col > 0:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            if col == 0 and not bold:
                item.setForeground(label_colour(label))
            elif col >= 2 and by_state.get(STATES[col - 2], 0):
                item.setForeground(QColor(STATE_COLOURS[STATES[col - 2]]).lighter(130))
            if bold:
                font = item.font()
                font.setBold(True)
                item.setFont(font)
            self.setItem(row, col, item)

    def count(self, label: str, state: str) -> int:
        """The count shown for a label ('all' for the whole library) and a state."""
        for row in range(self.rowCount()):
            item = self.item(row, 0)
            if item is not None and item.text() == label:
                cell = self.item(row, 2 + STATES.index(state))
                return int(cell.text()) if cell is not None else 0
        return 0

    def _on_cell_double_clicked(self, row: int, _col: int) -> None:
        item = self.item(row, 0)
        if item is not None:
            text = item.text()
            self.editor_state.update_filter(labels=() if text == "all" else (text,))


class CurationPanel(QWidget):
    """The current patch and the curation controls; buttons act on the selection."""

    def __init__(self, state: EditorState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.preview = QLabel()
        self.preview.setFixedSize(220, 220)
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setStyleSheet(f"background: {theme.BACKGROUND};")
        self.title = QLabel("No patch")
        self.title.setWordWrap(True)
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.details.setObjectName("hint")
        self.selection_label = QLabel("")
        self.accept_button = QPushButton("Accept (A)")
        self.reject_button = QPushButton("Reject (R)")
        self.reset_button = QPushButton("Reset (U)")
        self.source_button = QPushButton("Source (Space)")
        self.rating_buttons = [QPushButton(f"{i}★") for i in range(1, 6)]
        self.notes = QLineEdit()
        self.notes.setPlaceholderText("notes (Enter saves)")
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("add tags: a, b   (-a removes)")
        self.tags_label = QLabel("")
        self.tags_label.setWordWrap(True)

        layout = QVBoxLayout(self)
        layout.addWidget(self.preview, alignment=Qt.AlignmentFlag.AlignHCenter)
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addWidget(self.selection_label)
        grid = QGridLayout()
        grid.addWidget(self.accept_button, 0, 0)
        grid.addWidget(self.reject_button, 0, 1)
        grid.addWidget(self.reset_button, 1, 0)
        grid.addWidget(self.source_button, 1, 1)
        layout.addLayout(grid)
        stars = QHBoxLayout()
        for b in self.rating_buttons:
            b.setToolTip("rating (keys 1-5, 0 clears)")
            stars.addWidget(b)
        layout.addLayout(stars)
        form = QFormLayout()
        form.addRow("Notes", self.notes)
        form.addRow("Tags", self.tags)
        layout.addLayout(form)
        layout.addWidget(self.tags_label)
        layout.addStretch(1)

        self.accept_button.clicked.connect(lambda: state.set_state("accepted"))
        self.reject_button.clicked.connect(lambda: state.set_state("rejected"))
        self.reset_button.clicked.connect(lambda: state.set_state("unreviewed"))
        self.source_button.clicked.connect(lambda: state.open_source())
        for i, b in enumerate(self.rating_buttons, start=1):
            b.clicked.connect(lambda _c=False, r=i: state.set_rating(r))
        self.notes.returnPressed.connect(self._on_notes_return_pressed)
        self.tags.returnPressed.connect(self._on_tags_return_pressed)
        state.current_changed.connect(lambda _p: self.refresh())
        state.selection_changed.connect(lambda _s: self.refresh())
        state.library_edited.connect(lambda _ids: self.refresh())
        state.session_changed.connect(lambda _s: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        session, pid = self.state.session, self.state.current
        targets = self.state.targets()
        enabled = session is not None and bool(targets)
        for b in (self.accept_button, self.reject_button, self.reset_button):
            b.setEnabled(enabled)
        self.source_button.setEnabled(session is not None and pid is not None)
        can_rate = enabled and session is not None and session.has("set_rating")
        for b in self.rating_buttons:
            b.setEnabled(can_rate)
        self.notes.setEnabled(session is not None and pid is not None and session.has("set_notes"))
        self.tags.setEnabled(enabled and session is not None and session.has("add_tags"))
        n = len(self.state.selection)
        self.selection_label.setText(
            f"{n} selected: buttons and keys act on all of them" if n > 1 else ""
        )
        if session is None or pid is None:
            self.title.setText("No patch" if session is None else "Pick a patch")
            self.details.setText("")
            self.preview.clear()
            self.tags_label.setText("")
            return
        try:
            card = session.card(pid)
            prov = session.provenance(pid)
        except EditorError as exc:
            self.title.setText(str(exc))
            return
        self.title.setText(f"<b>{card.label}</b> · patch {card.id} · {card.state}")
        lines = [f"{card.size_text}, {card.readers} reader(s)"]
        for p in prov[:4]:
            reader = f" reader {p.reader}" if p.reader else ""
            lines.append(f"{p.dataset} {p.image_id}{reader}")
        if len(prov) > 4:
            lines.append(f"… {len(prov) - 4} more source boxes")
        if card.edited:
            lines.append("box edited in the editor")
        self.details.setText("\n".join(lines))
        with blocked(self.notes):
            self.notes.setText(card.notes)
        self.tags_label.setText("tags: " + ", ".join(card.tags) if card.tags else "")
        self._show_preview(card.file)

    def _show_preview(self, path: Any) -> None:
        img = QImage(str(path))
        if img.isNull():
            self.preview.setText("patch file missing")
            return
        pix = QPixmap.fromImage(img).scaled(
            self.preview.size(),
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        self.preview.setPixmap(pix)

    def _on_notes_return_pressed(self) -> None:
        self.state.set_notes(self.notes.text())

    def _on_tags_return_pressed(self) -> None:
        words = [w.strip() for w in self.tags.text().split(",") if w.strip()]
        add = [w for w in words if not w.startswith("-")]
        remove = [w[1:] for w in words if w.startswith("-") and len(w) > 1]
        if add:
            self.state.add_tags(add)
        if remove:
            self.state.remove_tags(remove)
        self.tags.clear()

"""The duplicates view: groups of patches the core considers one lesion, side by side.

The core finds the groups (``PatchLibrary.duplicate_groups``: the same source box from several
readers, near-identical crops); this view lists them, shows the chosen group's cards in a row with
the gallery's delegate, and offers the two one-step resolutions: *merge* (the core keeps one patch
and moves every provenance row onto it) and *reject all but one* (the card in focus is kept).
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QListWidget,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer.patch_editor.gallery import CARD_H, CardDelegate, GalleryModel, IdRole
from viewer.patch_editor.model import EditorError
from viewer.patch_editor.state import EditorState
from viewer.patch_editor.workers import THUMB_SIDE, ThumbnailLoader

# Cards of a group are shown large, side by side at one scale, so the crops can be compared by eye.
COMPARE_SIDE = 288


def _iou(a: Any, b: Any) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class _GroupState:
    """A stand-in state for the group strip: same session, its own ids (no filtering)."""

    def __init__(self, state: EditorState) -> None:
        self._state = state

    @property
    def session(self) -> Any:
        return self._state.session


class DuplicatesWidget(QWidget):
    """Duplicate groups on the left, the chosen group side by side on the right.

    Signals:
        groups_found(count): the groups were (re)computed.
    """

    groups_found = Signal(int)

    def __init__(
        self, state: EditorState, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.state = state
        self.groups: list[list[int]] = []
        self.group_list = QListWidget()
        self.group_list.setMinimumWidth(240)
        # Its own loader: the group's crops decoded large (the gallery's thumbnails stay small).
        self.loader = ThumbnailLoader(self, side=COMPARE_SIDE)
        self.model = GalleryModel(_GroupState(state), self.loader, self)  # type: ignore[arg-type]
        self.strip = QListView()
        self.strip.setViewMode(QListView.ViewMode.IconMode)
        self.strip.setFlow(QListView.Flow.LeftToRight)
        self.strip.setWrapping(True)
        self.strip.setResizeMode(QListView.ResizeMode.Adjust)
        self.strip.setMovement(QListView.Movement.Static)
        self.strip.setUniformItemSizes(True)
        self.strip.setModel(self.model)
        self.strip.setItemDelegate(CardDelegate(self.loader, self.strip))
        self.strip.setMinimumHeight(COMPARE_SIDE + CARD_H - THUMB_SIDE + 16)
        # What differs between the group's patches, one row each (box overlap against the first).
        self.table = QTableWidget(0, 8)
        self.table.setHorizontalHeaderLabels(
            ["patch", "data set", "readers", "state", "source box (px)", "size", "IoU to first",
             "same image"]
        )  # fmt: skip
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.find_button = QPushButton("Find duplicates")
        self.merge_button = QPushButton("Merge group")
        self.keep_button = QPushButton("Keep the card in focus, reject the others")
        self.hint = QLabel("")
        self.hint.setObjectName("hint")
        self.hint.setWordWrap(True)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.addWidget(self.strip, 3)
        rl.addWidget(self.table, 1)
        buttons = QHBoxLayout()
        for b in (self.merge_button, self.keep_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        rl.addLayout(buttons)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.addWidget(self.find_button)
        ll.addWidget(self.group_list, 1)
        ll.addWidget(self.hint)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(split)

        self.find_button.clicked.connect(self.find_groups)
        self.group_list.currentRowChanged.connect(self._on_group_list_current_row_changed)
        self.merge_button.clicked.connect(self._on_merge_clicked)
        self.keep_button.clicked.connect(self._on_keep_clicked)
        state.session_changed.connect(lambda _s: self._set_groups([]))
        self._update_buttons()

    def find_groups(self) -> None:
        session = self.state.session
        if session is None:
            return
        try:
            groups = session.duplicate_groups()
        except EditorError as exc:
            self.hint.setText(str(exc))
            self.state.say(str(exc), error=True)
            return
        self._set_groups(groups)

    def _set_groups(self, groups: list[list[int]]) -> None:
        self.groups = groups
        self.group_list.clear()
        session = self.state.session
        for i, group in enumerate(groups, start=1):
            label = ""
            if session is not None:
                try:
                    cards = [session.card(pid) for pid in group]
                    label = f"{cards[0].label}, {', '.join(sorted({c.dataset for c in cards}))}"
                except EditorError:
                    label = ""
            self.group_list.addItem(f"Group {i}: {len(group)} patches  {label}")
        self.hint.setText(
            f"{len(groups)} duplicate group(s)." if groups else "No duplicate groups found."
        )
        self.model.set_ids([])
        if groups:
            self.group_list.setCurrentRow(0)
        self._update_buttons()
        self.groups_found.emit(len(groups))

    def current_group(self) -> list[int]:
        row = self.group_list.currentRow()
        return self.groups[row] if 0 <= row < len(self.groups) else []

    def _on_group_list_current_row_changed(self, _row: int) -> None:
        group = self.current_group()
        self.loader.set_wanted(set(group))
        self.model.set_ids(group)
        if self.model.rowCount():
            self.strip.setCurrentIndex(self.model.index(0))
        self._fill_table(group)
        self._update_buttons()

    def _fill_table(self, group: list[int]) -> None:
        session = self.state.session
        self.table.setRowCount(0)
        if session is None or not group:
            return
        try:
            patches = [session.patch(pid) for pid in group]
        except EditorError as exc:
            self.state.say(str(exc), error=True)
            return
        first = patches[0]
        for p in patches:
            size = (
                f"{p.size_mm[0]:.0f}x{p.size_mm[1]:.0f} mm"
                if p.size_mm is not None
                else f"{p.box[2] - p.box[0]}x{p.box[3] - p.box[1]} px"
            )
            same = p.image_id == first.image_id  # one film, whichever data set listed it
            cells = [
                str(p.id),
                p.dataset,
                str(p.readers),
                p.state,
                "({:.0f}, {:.0f}, {:.0f}, {:.0f})".format(*p.source_box),
                size,
                f"{_iou(p.source_box, first.source_box):.2f}" if same else "-",
                "yes" if same else f"no ({p.image_id})",
            ]
            row = self.table.rowCount()
            self.table.insertRow(row)
            for col, text in enumerate(cells):
                self.table.setItem(row, col, QTableWidgetItem(text))

    def _update_buttons(self) -> None:
        ok = len(self.current_group()) > 1
        self.merge_button.setEnabled(ok)
        self.keep_button.setEnabled(ok)

    def _on_merge_clicked(self) -> None:
        group = self.current_group()
        if len(group) > 1 and self.state.merge(group) is not None:
            self.find_groups()

    def _on_keep_clicked(self) -> None:
        group = self.current_group()
        idx = self.strip.currentIndex()
        keep = idx.data(IdRole) if idx.isValid() else (group[0] if group else None)
        if keep is not None and len(group) > 1:
            self.state.reject_all_but(int(keep), group)
            self.model.refresh_ids(None)
            self._fill_table(group)

    def shutdown(self) -> None:
        self.loader.shutdown()

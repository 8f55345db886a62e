"""The worklist: studies and their images with thumbnails, and triage by urgent findings.

Folders are indexed by :func:`fpsm_core.io.index_folder` (on the load thread); single files join an
"Opened files" study. Triage runs the model over every image in the background and sorts studies
(and the images inside them) by urgency: the highest probability / threshold among the urgent
findings the user chose (:func:`viewer.workers.urgency`), so each finding is measured against its
own operating point; a score whose finding crossed its threshold is marked.
Thumbnails are asked of the service hub (``thumbnails_wanted``), which makes them on a thread of
their own so a long list never slows the image being read, and from the display decode for files
already opened.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QMimeData, QSize, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMenu,
    QProgressBar,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from viewer import theme
from viewer.display import THUMB_SIZE

if TYPE_CHECKING:
    from fpsm_core.io.studies import StudyIndex
    from viewer.workers import TriageItem

PathRole = Qt.ItemDataRole.UserRole + 1
ScoreRole = Qt.ItemDataRole.UserRole + 2
TitleRole = Qt.ItemDataRole.UserRole + 3
AboveRole = Qt.ItemDataRole.UserRole + 4
HumanRole = Qt.ItemDataRole.UserRole + 5  # outside what the model knows: a human reads it
NEEDS_HUMAN = "needs a human"
COL_NAME, COL_VIEW, COL_SCORE, COL_TOP = range(4)
NAME_WIDTH = THUMB_SIZE + 150  # the image column's width when there is room for it
# In a narrow dock (the panel's 320 px minimum) every column stays on screen: the name keeps at
# least ~14 characters beside its thumbnail (elided in the middle), the urgency its number, the
# top urgent finding at least its first word (elided at the end; the tooltip has it all).
NAME_MIN = THUMB_SIZE + 80
TOP_WIDTH, TOP_MIN = 150, 68
VIEW_WIDTH, SCORE_WIDTH = 32, 54
FLAG = "\u25b2 "  # marks a score whose finding crossed its threshold
NONE_ABOVE = "no urgent finding above its threshold"
URGENCY_RULE = (
    "Urgency = the highest probability / threshold among the urgent findings "
    "(1.00 = at its operating point; \u25b2 = above it)."
)
OPENED_FILES = "Opened files"


def _icon(rgb: np.ndarray) -> QIcon:
    rgb = np.ascontiguousarray(rgb)
    h, w = rgb.shape[:2]
    return QIcon(
        QPixmap.fromImage(QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy())
    )


class WorklistPanel(QWidget):
    """Studies and images, thumbnails, triage.

    Signals:
        image_activated(path): the user selected an image.
        triage_requested(), triage_cancel_requested()
        urgent_changed(labels): the urgent findings were edited.
        thumbnails_wanted(paths): files just listed that need a thumbnail (when enabled).
    """

    image_activated = Signal(str)
    triage_requested = Signal()
    triage_cancel_requested = Signal()
    urgent_changed = Signal(list)
    thumbnails_wanted = Signal(list)

    def __init__(self, parent: QWidget | None = None, *, thumbnails: bool = True) -> None:
        super().__init__(parent)
        self.setMinimumWidth(320)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        self.hint = QLabel(
            "No study open.\nDrop a DICOM / PNG file or a folder here,\n"
            "or use File > Open (Ctrl+O) / Open Folder (Ctrl+Shift+O)."
        )
        self.hint.setObjectName("hint")
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        layout.addWidget(self.hint)
        self.tree = WorklistTree()  # images drag onto a viewport (viewer/viewports.py)
        self.tree.setColumnCount(4)
        self.tree.setHeaderLabels(["Image", "View", "Urgency", "Top urgent finding"])
        self.tree.setIconSize(QSize(THUMB_SIZE, THUMB_SIZE))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setAlternatingRowColors(True)
        # The file name keeps a readable width (elided in the middle, where UID-named files
        # differ; the tooltip has the full path); the last column takes what is left, and a
        # narrow panel scrolls sideways rather than squeezing the names to nothing.
        self.tree.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        header = self.tree.header()
        header.setStretchLastSection(False)
        widths = ((COL_NAME, NAME_WIDTH), (COL_VIEW, VIEW_WIDTH), (COL_SCORE, SCORE_WIDTH))
        for col, width in (*widths, (COL_TOP, TOP_WIDTH)):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.Interactive)
            self.tree.setColumnWidth(col, width)
        self.tree.setItemDelegateForColumn(COL_TOP, _ElideRightDelegate(self.tree))
        self.tree.setHeaderLabels(["Image", "View", "Urgency", "Top urgent"])
        self.tree.setColumnHidden(COL_TOP, True)  # shown once triage has scored something
        layout.addWidget(self.tree, stretch=1)

        row = QHBoxLayout()
        self.triage_button = QPushButton("Triage")
        self.triage_button.setToolTip("Run the model over every image and sort by urgent findings")
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.urgent_button = QToolButton()
        self.urgent_button.setText("Urgent findings")
        self.urgent_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.urgent_menu = QMenu(self.urgent_button)
        self.urgent_button.setMenu(self.urgent_menu)
        row.addWidget(self.triage_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.urgent_button)
        layout.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("%v / %m triaged")
        layout.addWidget(self.progress)
        self.triage_label = QLabel("")
        self.triage_label.setStyleSheet(f"color: {theme.TEXT_DIM};")
        layout.addWidget(self.triage_label)

        self._items: dict[str, QTreeWidgetItem] = {}
        self._studies: dict[str, QTreeWidgetItem] = {}
        self._thumbnails = thumbnails
        self._wanted: list[str] = []
        self._triaged = 0
        self._urgent_actions: dict[str, QAction] = {}

        self.tree.currentItemChanged.connect(self._on_tree_current_item_changed)
        self.triage_button.clicked.connect(self.triage_requested)
        self.cancel_button.clicked.connect(self.triage_cancel_requested)
        self._update_hint()

    def resizeEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        super().resizeEvent(event)
        QTimer.singleShot(0, self._fit_columns)  # once the layout has resized the tree

    def _fit_columns(self) -> None:
        """Share the width: the image column takes what the others leave (never less than
        NAME_MIN) while the top urgent column is hidden; after triage, when both do not fit at
        their usual widths, the name and the top finding share the room down to NAME_MIN and
        TOP_MIN, so the urgency and its finding never hide behind a sideways scroll."""
        # View and Urgency as wide as their headers (never clipped to "Vie", "Urgenc").
        header = self.tree.header()
        metrics = header.fontMetrics()
        width = self.tree.viewport().width()
        view = max(VIEW_WIDTH, metrics.horizontalAdvance("View") + 14)
        score = max(SCORE_WIDTH, metrics.horizontalAdvance("Urgency") + 14)
        if width - view - score < NAME_MIN + TOP_MIN:  # too narrow: headers may clip, not data
            view, score = (
                VIEW_WIDTH,
                max(SCORE_WIDTH, metrics.horizontalAdvance("\u25b2 9.99") + 12),
            )
        room = width - view - score
        self.tree.setColumnWidth(COL_VIEW, view)
        self.tree.setColumnWidth(COL_SCORE, score)
        if self.tree.isColumnHidden(COL_TOP):
            self.tree.setColumnWidth(COL_NAME, max(NAME_MIN, room))
            return
        if room >= NAME_MIN + TOP_MIN:
            # The finding keeps its usual width while the name can stay at NAME_MIN or more;
            # below that the name stops at NAME_MIN and the finding takes the rest.
            name = min(max(NAME_MIN, room - TOP_WIDTH), room - TOP_MIN)
        else:  # a large font: both give up the same share, nothing scrolls
            name = round(room * NAME_MIN / (NAME_MIN + TOP_MIN))
        top = room - name
        self.tree.setColumnWidth(COL_NAME, name)
        self.tree.setColumnWidth(COL_TOP, top)

    # -- content -----------------------------------------------------------------------------
    def clear(self) -> None:
        self.tree.clear()
        self._items.clear()
        self._studies.clear()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.triage_label.setText("")
        self.tree.setColumnHidden(COL_TOP, True)
        self._update_hint()

    def set_index(self, index: StudyIndex) -> None:
        """Replace the list with an indexed folder (a ``StudyIndex``)."""
        self.clear()
        for patient in index.patients:
            for study in patient.studies:
                who = patient.patient_name or patient.patient_id or "unknown patient"
                title = " · ".join(
                    x
                    for x in (who.replace("^", " "), _date(study.study_date), study.description)
                    if x
                )
                key = f"study:{study.study_uid or title}"
                for img in study.images:
                    self._add_image(key, title, Path(img.path), img.view_position, img.error)
        placed = set(self._items)
        for err in index.errors:
            if str(err.path) not in placed:
                self._add_image("errors", "Unreadable files", Path(err.path), None, err.error)
        self.tree.expandAll()
        self._update_hint()
        self._reset_progress()
        self._ask_thumbnails()

    def add_files(self, paths: Iterable[str | Path]) -> None:
        """Add single files to the "Opened files" study (skipping ones already listed)."""
        for p in paths:
            path = Path(p)
            if str(path) not in self._items:
                self._add_image(OPENED_FILES, OPENED_FILES, path, None, None)
        self.tree.expandAll()
        self._update_hint()
        self._reset_progress()
        self._ask_thumbnails()

    def _ask_thumbnails(self) -> None:
        wanted, self._wanted = self._wanted, []
        if wanted:
            self.thumbnails_wanted.emit(wanted)

    def _reset_progress(self) -> None:
        self.progress.setRange(0, max(1, len(self._items)))
        self.progress.setValue(0)

    def _add_image(
        self, key: str, title: str, path: Path, view: str | None, error: str | None
    ) -> QTreeWidgetItem:
        study = self._studies.get(key)
        if study is None:
            study = QTreeWidgetItem([title])
            study.setData(COL_NAME, TitleRole, title)
            study.setToolTip(COL_NAME, title)
            study.setData(COL_SCORE, ScoreRole, -1.0)
            self.tree.addTopLevelItem(study)
            study.setFirstColumnSpanned(True)  # the title uses the whole row
            self._studies[key] = study
        item = QTreeWidgetItem([path.name, view or "", "", ""])
        item.setData(COL_NAME, PathRole, str(path))
        item.setToolTip(COL_NAME, error or str(path))
        if error:
            item.setForeground(COL_NAME, QBrush(QColor(theme.DANGER)))
        study.addChild(item)
        self._items[str(path)] = item
        if self._thumbnails and not error:
            self._wanted.append(str(path))
        return item

    def _study_items(self) -> list[QTreeWidgetItem]:
        items = (self.tree.topLevelItem(i) for i in range(self.tree.topLevelItemCount()))
        return [item for item in items if item is not None]

    def paths(self) -> list[str]:
        """Every image path, in list order."""
        return [
            str(child.data(COL_NAME, PathRole))
            for study in self._study_items()
            for child in _children(study)
        ]

    def study_titles(self) -> list[str]:
        return [study.text(COL_NAME) for study in self._study_items()]

    @property
    def current_path(self) -> str | None:
        item = self.tree.currentItem()
        return None if item is None else item.data(COL_NAME, PathRole)

    def select_path(self, path: str | Path) -> bool:
        item = self._items.get(str(path))
        if item is None:
            return False
        self.tree.setCurrentItem(item)
        return True

    def step(self, delta: int) -> None:
        """Select the next (1) or previous (-1) image."""
        paths = self.paths()
        if not paths:
            return
        current = self.current_path
        i = paths.index(current) if current in paths else -1
        self.select_path(paths[max(0, min(len(paths) - 1, i + delta))])

    def set_thumbnail(self, path: str | Path, rgb: np.ndarray | None) -> None:
        item = self._items.get(str(path))
        if item is not None and rgb is not None:
            item.setIcon(COL_NAME, _icon(rgb))

    def has_thumbnail(self, path: str | Path) -> bool:
        item = self._items.get(str(path))
        return item is not None and not item.icon(COL_NAME).isNull()

    def _update_hint(self) -> None:
        self.hint.setVisible(not self._items)

    # -- triage ------------------------------------------------------------------------------
    def set_urgent_choices(self, labels: Sequence[str], chosen: Sequence[str]) -> None:
        self.urgent_menu.clear()
        self._urgent_actions.clear()
        for label in labels:
            action = self.urgent_menu.addAction(label)
            action.setCheckable(True)
            action.setChecked(label in chosen)
            action.toggled.connect(lambda _on: self.urgent_changed.emit(self.urgent()))
            self._urgent_actions[label] = action

    def urgent(self) -> list[str]:
        return [label for label, a in self._urgent_actions.items() if a.isChecked()]

    def set_triage_running(self, running: bool) -> None:
        self.triage_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        if running:
            self._triaged = 0
            self.progress.setRange(0, max(1, len(self._items)))
            self.progress.setValue(0)
            self.triage_label.setText("Triage running…")

    def set_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)

    def set_triage_item(self, item: TriageItem) -> None:
        """Show one image's urgency (a ``TriageItem``)."""
        self._triaged += 1
        row = self._items.get(str(item.path))
        if row is None:
            return
        if item.error:
            row.setText(COL_SCORE, "error")
            row.setToolTip(COL_SCORE, item.error)
            row.setData(COL_SCORE, ScoreRole, -1.0)
            return
        score = -1.0 if item.score is None else float(item.score)
        row.setData(COL_SCORE, ScoreRole, score)
        row.setData(COL_SCORE, AboveRole, bool(item.above) and not item.needs_human)
        row.setData(COL_SCORE, HumanRole, bool(item.needs_human))
        row.setText(COL_SCORE, urgency_text(item))
        row.setText(COL_TOP, top_text(item))
        font = row.font(COL_SCORE)
        font.setBold(bool(item.above) or item.needs_human)
        colour = (
            theme.DANGER if item.needs_human else (theme.WARNING if item.above else theme.TEXT_DIM)
        )
        for col in (COL_SCORE, COL_TOP):
            row.setFont(col, font)
            row.setForeground(col, QBrush(QColor(colour)))
        if self.tree.isColumnHidden(COL_TOP):
            self.tree.setColumnHidden(COL_TOP, False)
            self._fit_columns()
        lines = [URGENCY_RULE]
        if item.needs_human:
            lines.append(
                "Outside the model's training distribution: findings not reliable; "
                "this image is not ranked."
            )
            lines.extend(item.input_reasons)
        for label, p in sorted(item.probabilities.items()):
            t = item.thresholds.get(label)
            lines.append(
                f"{label}: {p:.1%}"
                + ("" if t is None else f" (threshold {t:.1%})")
                + ("  above" if t is not None and p >= t else "")
            )
        row.setToolTip(COL_SCORE, "\n".join(lines))
        row.setToolTip(COL_TOP, "\n".join(lines))
        study = row.parent()
        if study is not None:
            best = max(_score(study), score)
            flagged = bool(study.data(COL_SCORE, AboveRole)) or (
                bool(item.above) and not item.needs_human
            )
            human = bool(study.data(COL_SCORE, HumanRole)) or item.needs_human
            study.setData(COL_SCORE, ScoreRole, best)
            study.setData(COL_SCORE, AboveRole, flagged)
            study.setData(COL_SCORE, HumanRole, human)
            base = study.data(COL_NAME, TitleRole)
            mark = FLAG if flagged else ""
            text = f"{mark}{best:.2f}  ·  {base}" if best >= 0 else base
            study.setText(COL_NAME, f"{NEEDS_HUMAN}  ·  {text}" if human else text)

    def triage_finished(self, cancelled: bool) -> None:
        done = self._triaged
        self.set_triage_running(False)
        self.triage_label.setText(
            f"Triage cancelled after {done} image(s)."
            if cancelled
            else f"Triage done: {done} image(s)."
        )
        self.sort_by_urgency()

    def sort_by_urgency(self) -> None:
        """The "needs a human" group first, then the most urgent study first, most urgent image
        first inside each study (images outside what the model knows are never ranked urgent)."""
        current = self.current_path
        self.tree.blockSignals(True)
        try:
            studies = self._study_items()
            self.tree.invisibleRootItem().takeChildren()
            studies.sort(key=_order)
            for study in studies:
                children = study.takeChildren()
                children.sort(key=_order)
                study.addChildren(children)
                self.tree.addTopLevelItem(study)
                study.setFirstColumnSpanned(True)
            self.tree.expandAll()
            if current:
                self.select_path(current)
        finally:
            self.tree.blockSignals(False)

    def urgency_order(self) -> list[tuple[str, float]]:
        """(path, score) in list order (score -1 when not triaged)."""
        return [(p, _score(self._items[p])) for p in self.paths()]

    def set_phi_hidden(self, hidden: bool) -> None:
        """Hide the list (its titles name patients and dates) while PHI is hidden on screen."""
        if not hasattr(self, "phi_label"):
            self.phi_label = QLabel("Worklist hidden with the patient identifiers (Ctrl+H).")
            self.phi_label.setObjectName("hint")
            self.phi_label.setWordWrap(True)
            self.phi_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
            layout = self.layout()
            if isinstance(layout, QVBoxLayout):
                layout.insertWidget(1, self.phi_label)
        self.phi_label.setVisible(hidden)
        self.tree.setVisible(not hidden)

    # -- events ------------------------------------------------------------------------------
    def _on_tree_current_item_changed(self, current: QTreeWidgetItem | None, _prev: Any) -> None:
        if current is None:
            return
        path = current.data(COL_NAME, PathRole)
        first = current.child(0) if path is None else None
        if first is not None:
            self.tree.setCurrentItem(first)
            return
        if path:
            self.image_activated.emit(path)


class _ElideRightDelegate(QStyledItemDelegate):
    """Elides a column's text at its end (the tree elides names in the middle)."""

    def initStyleOption(self, option: QStyleOptionViewItem, index: Any) -> None:  # noqa: N802
        super().initStyleOption(option, index)
        option.textElideMode = Qt.TextElideMode.ElideRight


class WorklistTree(QTreeWidget):
    """The worklist's tree: an image item drags out as its file's URL (onto a viewport)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)

    def mimeTypes(self) -> list[str]:  # noqa: N802 (Qt name)
        return ["text/uri-list"]

    def mimeData(self, items: Sequence[QTreeWidgetItem]) -> QMimeData:  # noqa: N802 (Qt name)
        data = QMimeData()
        paths = [item.data(COL_NAME, PathRole) for item in items]
        data.setUrls([QUrl.fromLocalFile(str(p)) for p in paths if p])
        return data


def urgency_text(item: TriageItem) -> str:
    """The urgency column: probability / threshold, marked when above the threshold."""
    if item.needs_human:
        return "?"
    if item.score is None:
        return ""
    return f"{FLAG if item.above else ''}{item.score:.2f}"


def top_text(item: TriageItem) -> str:
    """The top urgent finding with its probability and threshold, or that none is flagged."""
    if item.needs_human:
        return f"{NEEDS_HUMAN}: {item.input_reasons[0]}" if item.input_reasons else NEEDS_HUMAN
    if item.top_label is None:
        return ""
    if not item.above:
        return NONE_ABOVE
    p = item.probabilities.get(item.top_label, 0.0)
    t = item.thresholds.get(item.top_label)
    return f"{item.top_label} {p:.0%}" + ("" if t is None else f" \u2265 {t:.0%}")


def _children(item: QTreeWidgetItem) -> list[QTreeWidgetItem]:
    kids = (item.child(j) for j in range(item.childCount()))
    return [kid for kid in kids if kid is not None]


def _order(item: QTreeWidgetItem) -> tuple[int, float]:
    """Sort key: the "needs a human" group first, then by urgency, highest first."""
    return (0 if item.data(COL_SCORE, HumanRole) else 1, -_score(item))


def _score(item: QTreeWidgetItem) -> float:
    value = item.data(COL_SCORE, ScoreRole)
    return -1.0 if value is None else float(value)


def _date(value: str | None) -> str | None:
    if value and len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value

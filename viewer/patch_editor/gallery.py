"""The gallery: every listed patch as a thumbnail card, virtualised over a list of ids.

A ``QListView`` in icon mode over :class:`GalleryModel`, a ``QAbstractListModel`` that holds only
the ids of the current query. Cards are fetched from the session when a row is painted (cached
there) and thumbnails are decoded by :class:`viewer.patch_editor.workers.ThumbnailLoader` when a
card first shows, so opening 50,000 patches costs one id query and the cards on screen. Uniform item
sizes let the view lay out 50,000 rows without asking each one. Keys: A / R / U accept / reject /
reset, 1-5 rate (0 clears), Space or Enter open the source view, arrows move (Qt's own).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelectionModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QColor, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QStyle, QStyledItemDelegate, QWidget

from viewer import theme
from viewer.patch_editor.model import STATE_KEYS, EditorError, PatchCard
from viewer.patch_editor.state import EditorState
from viewer.patch_editor.workers import THUMB_SIDE, ThumbnailLoader

CARD_W = THUMB_SIDE + 20
CARD_H = THUMB_SIDE + 62
STATE_COLOURS = {"unreviewed": theme.BORDER, "accepted": theme.OK, "rejected": theme.DANGER}
CardRole = Qt.ItemDataRole.UserRole + 1
IdRole = Qt.ItemDataRole.UserRole + 2


# Rendered cards kept for repainting without drawing them again (one card is ~120 KB at 1x).
CARD_CACHE = 256


def label_colour(label: str) -> QColor:
    """A stable colour per CXR-LT class (boxes and card accents)."""
    return QColor(_label_rgb(label))


@lru_cache(maxsize=64)
def _label_rgb(label: str) -> int:
    from fpsm_core.labels import LABELS

    i = LABELS.index(label) if label in LABELS else abs(hash(label)) % 26
    return QColor.fromHsv(int(i * 360 / 26 * 7) % 360, 170, 235).rgb()


class GalleryModel(QAbstractListModel):
    """Rows are patch ids; data comes from the state's session, thumbnails from the loader."""

    def __init__(self, state: EditorState, loader: ThumbnailLoader, parent: QObject | None = None):
        super().__init__(parent)
        self.state = state
        self.loader = loader
        self._ids: list[int] = []
        self._rows: dict[int, int] = {}
        loader.thumbnail_ready.connect(self._on_loader_thumbnail)
        loader.thumbnail_failed.connect(lambda pid, _m: self._on_loader_thumbnail(pid))

    def set_ids(self, ids: list[int]) -> None:
        self.beginResetModel()
        self._ids = list(ids)
        self._rows = {pid: row for row, pid in enumerate(self._ids)}
        self.endResetModel()

    @property
    def ids(self) -> list[int]:
        return self._ids

    def row_of(self, patch_id: int) -> int | None:
        return self._rows.get(patch_id)

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: B008, N802
        return 0 if parent.isValid() else len(self._ids)

    def card(self, row: int) -> PatchCard | None:
        session = self.state.session
        if session is None or not 0 <= row < len(self._ids):
            return None
        try:
            return session.card(self._ids[row])
        except EditorError:
            return None  # the row was removed under us; the next refresh drops it

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = 0) -> Any:
        if not index.isValid():
            return None
        if role == IdRole:
            return self._ids[index.row()]
        if role in (CardRole, Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            card = self.card(index.row())
            if card is None or role == CardRole:
                return card
            if role == Qt.ItemDataRole.DisplayRole:
                return card.label
            tags = f"\ntags: {', '.join(card.tags)}" if card.tags else ""
            notes = f"\nnotes: {card.notes}" if card.notes else ""
            eff = f"\nefficacy: {card.efficacy_text}" if card.efficacy_text else ""
            return (
                f"patch {card.id}: {card.label}, {card.size_text}, {card.dataset}, "
                f"{card.readers} reader(s), {card.state}{tags}{notes}{eff}"
            )
        return None

    def refresh_ids(self, ids: Any) -> None:
        """Repaint these patches' cards (None: all)."""
        if not self._ids:
            return
        if ids is None:
            self.dataChanged.emit(self.index(0), self.index(len(self._ids) - 1))
            return
        for pid in ids:
            row = self._rows.get(int(pid))
            if row is not None:
                self.dataChanged.emit(self.index(row), self.index(row))

    def _on_loader_thumbnail(self, patch_id: int) -> None:
        row = self._rows.get(patch_id)
        if row is not None:
            idx = self.index(row)
            self.dataChanged.emit(idx, idx)


class CardDelegate(QStyledItemDelegate):
    """Paints a card: thumbnail with its lesion box, label, size, data set, state, rating.

    A card is drawn once into a pixmap and repainted from it while nothing it shows has changed
    (the key is the card's content, its selection, and whether its thumbnail has arrived): a
    scroll step then costs one blit per card instead of a dozen text and shape draws.
    """

    def __init__(self, loader: ThumbnailLoader, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loader = loader
        self.side = loader.side  # the thumbnail square; the card is this plus its text lines
        self._cards: OrderedDict[tuple[Any, ...], QPixmap] = OrderedDict()
        self.cache_size = CARD_CACHE  # 0 draws every card on every paint (the benchmark's baseline)
        self.drawn = 0  # cards drawn afresh (the rest came from the cache)

    def sizeHint(self, option: Any, index: Any) -> QSize:  # noqa: N802 (Qt name)
        return QSize(self.side + CARD_W - THUMB_SIDE, self.side + CARD_H - THUMB_SIDE)

    def forget(self) -> None:
        """Drop every rendered card (after the theme or the thumbnails changed wholesale)."""
        self._cards.clear()

    def paint(self, painter: QPainter, option: Any, index: Any) -> None:
        card: PatchCard | None = index.data(CardRole)
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        rect: QRect = option.rect
        if card is None:
            painter.fillRect(rect.adjusted(3, 3, -3, -3), QColor(theme.SURFACE))
            return
        img = self.loader.get(card.id, card.file)
        failed = img is None and self.loader.error(card.id) is not None
        dpr = painter.device().devicePixelRatioF() if painter.device() is not None else 1.0
        key = (
            card,
            selected,
            None if img is None else img.cacheKey(),
            failed,
            rect.width(),
            rect.height(),
            dpr,
        )
        pix = self._cards.get(key)
        if pix is None:
            pix = QPixmap(rect.size() * dpr)
            pix.setDevicePixelRatio(dpr)
            pix.fill(Qt.GlobalColor.transparent)
            p = QPainter(pix)
            p.setFont(painter.font())
            try:
                self._draw(p, QRect(0, 0, rect.width(), rect.height()), card, selected, img, failed)
            finally:
                p.end()
            self._cards[key] = pix
            self.drawn += 1
            while len(self._cards) > self.cache_size:
                self._cards.popitem(last=False)
        else:
            self._cards.move_to_end(key)
        painter.drawPixmap(rect.topLeft(), pix)

    def _draw(
        self,
        painter: QPainter,
        cell: QRect,
        card: PatchCard,
        selected: bool,
        img: Any,
        failed: bool,
    ) -> None:
        r = cell.adjusted(3, 3, -3, -3)
        painter.save()
        painter.fillRect(r, QColor("#24475a" if selected else theme.SURFACE))
        pen = QPen(QColor(STATE_COLOURS.get(card.state, theme.BORDER)))
        pen.setWidth(3 if card.state != "unreviewed" else 1)
        painter.setPen(pen)
        painter.drawRect(r)
        side = self.side
        thumb_rect = QRect(r.x() + 7, r.y() + 5, side, side)
        if img is not None:
            w, h = img.width(), img.height()
            target = QRect(thumb_rect.x() + (side - w) // 2, thumb_rect.y() + (side - h) // 2, w, h)
            painter.drawImage(target, img)
            cw, ch = card.crop_size
            sx, sy = w / max(cw, 1), h / max(ch, 1)
            x0, y0, x1, y1 = card.box
            box_pen = QPen(label_colour(card.label))
            box_pen.setStyle(Qt.PenStyle.DashLine)
            painter.setPen(box_pen)
            painter.drawRect(
                QRect(
                    target.x() + round(x0 * sx),
                    target.y() + round(y0 * sy),
                    max(1, round((x1 - x0) * sx)),
                    max(1, round((y1 - y0) * sy)),
                )
            )
        else:
            painter.setPen(QColor(theme.TEXT_DIM))
            text = "missing file" if failed else "…"
            painter.drawText(thumb_rect, Qt.AlignmentFlag.AlignCenter, text)
        fm = painter.fontMetrics()
        if card.efficacy is not None:  # the studio's score (issue 16), top right of the thumbnail
            badge = f"{card.efficacy:+.2f}"
            bw = fm.horizontalAdvance(badge) + 6
            brect = QRect(thumb_rect.right() - bw, thumb_rect.y(), bw, fm.height())
            painter.fillRect(brect, QColor(0, 0, 0, 170))
            painter.setPen(QColor(theme.OK if card.efficacy > 0 else theme.DANGER))
            painter.drawText(brect, Qt.AlignmentFlag.AlignCenter, badge)
        y = thumb_rect.bottom() + 4
        line = fm.height()
        painter.setPen(label_colour(card.label))
        width = r.width() - 10
        painter.drawText(
            QRect(r.x() + 5, y, width, line),
            Qt.AlignmentFlag.AlignLeft,
            fm.elidedText(card.label, Qt.TextElideMode.ElideRight, width),
        )
        painter.setPen(QColor(theme.TEXT))
        stars = "★" * (card.rating or 0)
        painter.drawText(
            QRect(r.x() + 5, y + line, width, line),
            Qt.AlignmentFlag.AlignLeft,
            fm.elidedText(f"{card.size_text} {stars}", Qt.TextElideMode.ElideRight, width),
        )
        painter.setPen(QColor(theme.TEXT_DIM))
        state = {"unreviewed": "·", "accepted": "✓", "rejected": "✗"}.get(card.state, "?")
        painter.drawText(
            QRect(r.x() + 5, y + 2 * line, width, line),
            Qt.AlignmentFlag.AlignLeft,
            fm.elidedText(f"{state} {card.dataset}", Qt.TextElideMode.ElideRight, width),
        )
        painter.restore()


class GalleryView(QListView):
    """The virtualised thumbnail grid, with the curation keys.

    Signals:
        key_state(str): A / R / U pressed (accepted / rejected / unreviewed).
        key_rating(int): 0-5 pressed.
        open_requested(): Space or Enter pressed.
    """

    key_state = Signal(str)
    key_rating = Signal(int)
    open_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setWrapping(True)
        self.setUniformItemSizes(True)  # 50k rows laid out without asking each one
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(2000)
        self.setSpacing(2)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(CARD_H // 4)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 (Qt name)
        mods = event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        text = event.text().lower()
        if mods == Qt.KeyboardModifier.NoModifier:
            if text in STATE_KEYS:
                self.key_state.emit(STATE_KEYS[text])
                return
            if text in {"0", "1", "2", "3", "4", "5"}:
                self.key_rating.emit(int(text))
                return
            if event.key() in (Qt.Key.Key_Space, Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self.open_requested.emit()
                return
        super().keyPressEvent(event)


class GalleryWidget(QWidget):
    """The gallery bound to the state: ids, current patch and selection go both ways."""

    def __init__(
        self, state: EditorState, loader: ThumbnailLoader, parent: QWidget | None = None
    ) -> None:
        from PySide6.QtWidgets import QVBoxLayout

        super().__init__(parent)
        self.state = state
        self.loader = loader
        self.model = GalleryModel(state, loader, self)
        self.view = GalleryView(self)
        self.view.setModel(self.model)
        self.delegate = CardDelegate(loader, self.view)
        self.view.setItemDelegate(self.delegate)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.view)
        self._syncing = False
        self._wanted_timer = QTimer(self)
        self._wanted_timer.setSingleShot(True)
        self._wanted_timer.setInterval(0)
        self._wanted_timer.timeout.connect(self._update_wanted)

        state.ids_changed.connect(self._on_state_ids_changed)
        state.library_edited.connect(self._on_state_library_edited)
        state.current_changed.connect(self._on_state_current_changed)
        self.view.key_state.connect(lambda s: state.set_state(s))
        self.view.key_rating.connect(lambda r: state.set_rating(r or None))
        self.view.open_requested.connect(lambda: state.open_source())
        self.view.verticalScrollBar().valueChanged.connect(self._on_scroll_value_changed)
        self._connect_selection()

    def _connect_selection(self) -> None:
        sel = self.view.selectionModel()
        sel.currentChanged.connect(self._on_view_current_changed)
        sel.selectionChanged.connect(self._on_view_selection_changed)

    def visible_ids(self) -> set[int]:
        """Ids whose cards are on screen (plus one row of margin either side)."""
        vp = self.view.viewport().rect()
        first = self.view.indexAt(_pt(4, 4))
        last = self.view.indexAt(_pt(vp.right() - 4, vp.bottom() - 4))
        n = self.model.rowCount()
        if n == 0:
            return set()
        per_row = max(1, vp.width() // (CARD_W + 4))
        a = first.row() if first.isValid() else 0
        b = last.row() if last.isValid() else min(n - 1, a + per_row * (vp.height() // CARD_H + 1))
        a, b = max(0, a - per_row), min(n - 1, b + 2 * per_row)
        return set(self.model.ids[a : b + 1])

    def _on_scroll_value_changed(self, _value: int) -> None:
        # Fetch the cards about to be painted in one query, before the repaint asks one by one.
        session = self.state.session
        if session is not None:
            try:
                session.prefetch(self.visible_ids())
            except EditorError as exc:
                self.state.say(str(exc), error=True)
        self._wanted_timer.start()

    def _update_wanted(self) -> None:
        self.loader.set_wanted(self.visible_ids())

    # -- state -> view ----------------------------------------------------------------------
    def _on_state_ids_changed(self, ids: list[int]) -> None:
        current = self.state.current
        selection = set(self.state.selection)
        self._syncing = True
        try:
            self.model.set_ids(ids)
            self._connect_selection()
            sm = self.view.selectionModel()
            if selection:
                for pid in selection:
                    row = self.model.row_of(pid)
                    if row is not None:
                        sm.select(self.model.index(row), QItemSelectionModel.SelectionFlag.Select)
            row = self.model.row_of(current) if current is not None else None
            if row is not None:
                sm.setCurrentIndex(
                    self.model.index(row), QItemSelectionModel.SelectionFlag.NoUpdate
                )
        finally:
            self._syncing = False
        if current is not None and self.model.row_of(current) is None:
            self.state.set_current(None)
        kept = [pid for pid in self.state.selection if self.model.row_of(pid) is not None]
        self.state.set_selection(kept)
        self._wanted_timer.start()

    def _on_state_library_edited(self, ids: Any) -> None:
        if ids is None:
            self.loader.forget(None)
        self.model.refresh_ids(ids)

    def _on_state_current_changed(self, patch_id: int | None) -> None:
        if self._syncing or patch_id is None:
            return
        row = self.model.row_of(patch_id)
        cur = self.view.currentIndex()
        if row is not None and (not cur.isValid() or cur.row() != row):
            self._syncing = True
            try:
                self.view.setCurrentIndex(self.model.index(row))
            finally:
                self._syncing = False

    # -- view -> state -----------------------------------------------------------------------
    def _on_view_current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._syncing:
            self.state.set_current(current.data(IdRole) if current.isValid() else None)

    def _on_view_selection_changed(self, *_: Any) -> None:
        if self._syncing:
            return
        rows = sorted(i.row() for i in self.view.selectionModel().selectedIndexes())
        self.state.set_selection([self.model.ids[r] for r in rows])

    def select_rows(self, rows: range | list[int]) -> None:
        """Select these rows (for batch actions and the benchmark)."""
        from PySide6.QtCore import QItemSelection

        sel = QItemSelection()
        ordered = sorted(rows)
        start = prev = ordered[0] if ordered else 0
        for r in ordered[1:] + [None]:  # contiguous runs: one range each
            if r is not None and r == prev + 1:
                prev = r
                continue
            if ordered:
                sel.select(self.model.index(start), self.model.index(prev))
            if r is not None:
                start = prev = r
        self.view.selectionModel().select(sel, QItemSelectionModel.SelectionFlag.ClearAndSelect)

    def index_rect(self, patch_id: int) -> QRect:
        """Where a patch's card is in the viewport (for tests and screenshots)."""
        row = self.model.row_of(patch_id)
        return self.view.visualRect(self.model.index(row)) if row is not None else QRect()


def _pt(x: int, y: int) -> Any:
    from PySide6.QtCore import QPoint

    return QPoint(x, y)

"""Multi-frame films: step through frames (Ctrl+wheel, Ctrl+PgUp/PgDn), cine at a chosen rate.

``fpsm_core.io.load_image(path, frame=k)`` decodes one frame of a multi-frame DICOM (the header
gives ``n_frames``); each step loads the next frame through the viewports' own loader
(:class:`~viewer.viewport_workers.ViewportServices`), off the GUI thread, and the viewport keeps
its orientation, zoom and window across frames. The corner text counts frames ("frame 3/12").
Cine plays at the rate chosen (frames per second; by default the file's FrameTime or CineRate,
else :data:`DEFAULT_FPS`) and never queues: a tick while the last frame is still loading is
skipped, so a slow decoder lowers the rate instead of piling up work. Findings follow the frame
shown: once stepping settles (and when cine stops), the model runs on that frame.

Frames already decoded are kept in a :class:`FrameCache` on the loader's thread, least recently
shown out first, within :data:`FRAME_CACHE_BYTES` (pixels and display pyramid counted): stepping
back, or cine's second loop over a short run, shows a frame without decoding it again.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal

if TYPE_CHECKING:
    from viewer.viewports import Viewport, ViewportGrid
    from viewer.workers import LoadedImage

DEFAULT_FPS = 10.0
SETTLE_MS = 250  # findings run once the reader stops on a frame this long
# 256 MiB: about 150 frames of 512x512 angiography, four of a 3000x3000 film (60 MiB a frame).
FRAME_CACHE_BYTES = 256 * 1024 * 1024

FrameKey = tuple[str, int, int, int]


def loaded_nbytes(loaded: LoadedImage) -> int:
    """The memory a decoded frame holds: its pixels and its display pyramid."""
    pixels = getattr(loaded.image.pixels, "nbytes", 0)
    return int(pixels + sum(level.nbytes for level in loaded.pyramid.levels))


class FrameCache:
    """Decoded frames of multi-frame films, bounded in bytes, least recently used out first.

    Keys name the file as it is on disk (path, frame, modification time, size), so a file
    rewritten in place is decoded again. Not thread-safe: one thread (the loader's) owns it.

    Args:
        max_bytes: the most the kept frames may hold; a frame larger than this is not kept.
    """

    def __init__(self, max_bytes: int = FRAME_CACHE_BYTES) -> None:
        self.max_bytes = int(max_bytes)
        self._items: OrderedDict[FrameKey, tuple[LoadedImage, int]] = OrderedDict()
        self.nbytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def key(path: str | Path, frame: int) -> FrameKey | None:
        """The key of a frame of a file; None when the file cannot be looked at."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (str(Path(path).absolute()), int(frame), st.st_mtime_ns, st.st_size)

    def get(self, key: FrameKey | None) -> LoadedImage | None:
        item = self._items.get(key) if key is not None else None
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)  # type: ignore[arg-type]
        self.hits += 1
        return item[0]

    def put(self, key: FrameKey | None, loaded: LoadedImage) -> None:
        if key is None:
            return
        size = loaded_nbytes(loaded)
        old = self._items.pop(key, None)
        if old is not None:
            self.nbytes -= old[1]
        if size > self.max_bytes:
            return
        self._items[key] = (loaded, size)
        self.nbytes += size
        while self.nbytes > self.max_bytes:
            _key, (_loaded, dropped) = self._items.popitem(last=False)
            self.nbytes -= dropped


class FrameController(QObject):
    """Frames of the active viewport's film.

    Signals:
        frame_requested(index, frame): a frame was asked for (viewport index, frame index).
        cine_changed(running)
        infer_requested(index): the shown frame of viewport ``index`` wants its findings.
    """

    frame_requested = Signal(int, int)
    cine_changed = Signal(bool)
    infer_requested = Signal(int)

    def __init__(self, grid: ViewportGrid) -> None:
        super().__init__(grid)
        self.grid = grid
        self.fps: float | None = None  # None: the file's own rate
        self._pending: set[int] = set()
        self._filtered: set[int] = set()
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._on_timer_timeout)
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(SETTLE_MS)
        self._settle.timeout.connect(self._on_settle_timeout)
        self._settle_index = 0
        self._cine_index = 0
        grid.frame_shown.connect(self._on_grid_frame_shown)
        grid.room.layout_changed.connect(self._install_filters)
        self._install_filters()

    @property
    def running(self) -> bool:
        return self._timer.isActive()

    def _install_filters(self, *_: object) -> None:
        for viewport in self.grid.viewports:
            if viewport.index not in self._filtered:
                viewport.view.graphics.viewport().installEventFilter(self)
                self._filtered.add(viewport.index)

    def frames_of(self, viewport: Viewport) -> tuple[int, int] | None:
        """(frame shown, frames) of a viewport's film; None when it has one frame or none."""
        loaded = viewport.state.image
        if loaded is None or loaded.image.n_frames <= 1:
            return None
        return (loaded.image.frame, loaded.image.n_frames)

    def step(self, delta: int, *, wrap: bool = False) -> bool:
        """Show the frame ``delta`` away in the active viewport; False when not multi-frame."""
        viewport = self.grid.active
        frames = self.frames_of(viewport)
        if frames is None:
            self.grid.status.emit("This film has one frame.")
            return False
        current, total = frames
        target = (current + delta) % total if wrap else max(0, min(total - 1, current + delta))
        if target == current and not wrap:
            return False
        return self.show_frame(viewport, target)

    def go_to(self, frame: int) -> bool:
        viewport = self.grid.active
        frames = self.frames_of(viewport)
        if frames is None:
            return False
        return self.show_frame(viewport, max(0, min(frames[1] - 1, int(frame))))

    def show_frame(self, viewport: Viewport, frame: int) -> bool:
        path = viewport.path
        if path is None:
            return False
        self._pending.add(viewport.index)
        self.grid.open_in(viewport.index, path, frame=frame)
        self.frame_requested.emit(viewport.index, frame)
        return True

    def interval_ms(self) -> int:
        """The cine interval: the chosen rate, else the file's, else :data:`DEFAULT_FPS`."""
        if self.fps:
            return max(10, round(1000.0 / self.fps))
        header = self.grid.active.header
        if header is not None and header.frame_ms:
            return max(10, round(header.frame_ms))
        return round(1000.0 / DEFAULT_FPS)

    def set_fps(self, fps: float | None) -> None:
        self.fps = fps if fps and fps > 0 else None
        if self.running:
            self._timer.setInterval(self.interval_ms())

    def toggle_cine(self) -> bool:
        """Start or stop cine in the active viewport; returns whether it now runs."""
        if self.running:
            self.stop_cine()
            return False
        if self.frames_of(self.grid.active) is None:
            self.grid.status.emit("Cine needs a multi-frame film.")
            return False
        self._cine_index = self.grid.active.index
        self._timer.start(self.interval_ms())
        self.cine_changed.emit(True)
        return True

    def stop_cine(self) -> None:
        if self.running:
            self._timer.stop()
            self.cine_changed.emit(False)
            self._settle_index = self._cine_index
            self._settle.start()

    def _on_timer_timeout(self) -> None:
        if self._cine_index in self._pending:
            return  # the last frame is still decoding: skip a tick rather than queue
        viewport = self.grid.viewports[self._cine_index]
        frames = self.frames_of(viewport)
        if frames is None:
            self.stop_cine()
            return
        self.show_frame(viewport, (frames[0] + 1) % frames[1])

    def _on_grid_frame_shown(self, index: int) -> None:
        self._pending.discard(index)
        if not self.running:
            self._settle_index = index
            self._settle.start()

    def _on_settle_timeout(self) -> None:
        self.infer_requested.emit(self._settle_index)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() == QEvent.Type.Wheel:
            wheel = event
            mods = wheel.modifiers()  # type: ignore[attr-defined]
            if mods & Qt.KeyboardModifier.ControlModifier:
                for viewport in self.grid.viewports:
                    if viewport.view.graphics.viewport() is watched:
                        self.grid.room.set_active(viewport.index)
                dy = wheel.angleDelta().y()  # type: ignore[attr-defined]
                if dy:
                    self.step(-1 if dy > 0 else 1)
                return True
        return False

"""The patch editor's workers: thumbnails, source images and imports, all off the GUI thread.

- :class:`ThumbnailLoader` decodes patch PNGs on a background thread into small ``QImage`` s kept in
  an LRU cache. Requests go into a last-in-first-out queue and the gallery says which ids are on
  screen (:meth:`ThumbnailLoader.set_wanted`); a queued request for a thumbnail scrolled away is
  dropped before it is decoded, so a fast scroll through 50,000 patches decodes only what stops on
  screen.
- :class:`SourceLoader` loads a source image through ``fpsm_core.io`` and builds its display
  pyramid (``viewer.display``); each request has an id and a result for an older request is dropped.
- :class:`ImportWorker` runs ``fpsm_core.dadam.import_boxes`` (the same import as ``fpsm dadam
  import``) with progress and cancel; the import commits image by image, so a cancelled or killed
  import is finished by running it again.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QThread, Signal, Slot
from PySide6.QtGui import QImage

from viewer import display

THUMB_SIDE = 112
THUMB_CACHE = 4000


def thumbnail_array(path: Path, side: int = THUMB_SIDE) -> np.ndarray:
    """A patch PNG decoded and shrunk to fit ``side`` (area mean), as (h, w) uint8.

    Raises:
        OSError: the file is missing or not an image.
    """
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE) if data is not None and data.size else None
    if img is None:
        raise OSError(f"patch file '{path}' is missing or unreadable")
    h, w = img.shape
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(img)


def to_qimage(grey: np.ndarray) -> QImage:
    """An owning QImage copy of a (h, w) uint8 array."""
    h, w = grey.shape
    return QImage(grey.data, w, h, w, QImage.Format.Format_Grayscale8).copy()


class _ThumbnailThread(QThread):
    """The decode loop: newest request first, requests no longer on screen dropped."""

    decoded = Signal(int, object, str)

    def __init__(self, loader: ThumbnailLoader) -> None:
        super().__init__()
        self.setObjectName("fpsm-thumbnails")
        self._loader = loader

    def run(self) -> None:
        lo = self._loader
        while True:
            with lo._cond:
                while not lo._queue and not lo._stop:
                    lo._cond.wait()
                if lo._stop:
                    return
                patch_id, path = lo._queue.pop()  # newest first: what the user looks at now
                lo._queued.discard(patch_id)
                if lo._wanted is not None and patch_id not in lo._wanted:
                    lo.dropped += 1
                    continue
            try:
                grey: np.ndarray | None = thumbnail_array(path, lo.side)
                error = ""
            except OSError as exc:
                grey, error = None, str(exc)
            lo.decoded += 1
            self.decoded.emit(patch_id, grey, error)


class ThumbnailLoader(QObject):
    """Decodes thumbnails on one background thread; an LRU cache on the GUI side.

    Signals:
        thumbnail_ready(patch_id): the thumbnail is now in the cache.
        thumbnail_failed(patch_id, message): the patch file could not be read.
    """

    thumbnail_ready = Signal(int)
    thumbnail_failed = Signal(int, str)

    def __init__(self, parent: QObject | None = None, side: int = THUMB_SIDE) -> None:
        super().__init__(parent)
        self.side = side
        self._cache: OrderedDict[int, QImage] = OrderedDict()
        self._failed: dict[int, str] = {}
        self._queue: deque[tuple[int, Path]] = deque()
        self._queued: set[int] = set()
        self._wanted: set[int] | None = None
        self._cond = threading.Condition()
        self._stop = False
        self.decoded = 0
        self.dropped = 0
        self._thread = _ThumbnailThread(self)
        self._thread.decoded.connect(self._on_decoded)
        self._thread.start()

    @property
    def decode_thread(self) -> QThread:
        return self._thread

    # -- GUI thread ---------------------------------------------------------------------------
    def get(self, patch_id: int, path: Path) -> QImage | None:
        """The cached thumbnail, or None after queueing its decode."""
        img = self._cache.get(patch_id)
        if img is not None:
            self._cache.move_to_end(patch_id)
            return img
        if patch_id not in self._failed:
            with self._cond:
                if patch_id not in self._queued:
                    self._queued.add(patch_id)
                    self._queue.append((patch_id, path))
                    self._cond.notify()
        return None

    def error(self, patch_id: int) -> str | None:
        return self._failed.get(patch_id)

    def set_wanted(self, ids: set[int] | None) -> None:
        """The ids on screen now; queued decodes of any other id are dropped (None: keep all)."""
        with self._cond:
            self._wanted = None if ids is None else set(ids)

    def forget(self, ids: Any = None) -> None:
        """Drop cached thumbnails (after a re-cut); None drops all."""
        if ids is None:
            self._cache.clear()
            self._failed.clear()
            return
        for i in ids:
            self._cache.pop(int(i), None)
            self._failed.pop(int(i), None)

    def pending(self) -> int:
        with self._cond:
            return len(self._queue)

    def shutdown(self) -> None:
        with self._cond:
            self._stop = True
            self._queue.clear()
            self._cond.notify_all()
        self._thread.wait(10000)

    def _on_decoded(self, patch_id: int, grey: Any, error: str) -> None:
        if error:
            self._failed[patch_id] = error
            self.thumbnail_failed.emit(patch_id, error)
            return
        self._cache[patch_id] = to_qimage(grey)
        if len(self._cache) > THUMB_CACHE:
            self._cache.popitem(last=False)
        self.thumbnail_ready.emit(patch_id)


@dataclass(frozen=True, eq=False)
class LoadedSource:
    """A source image ready to show: the ``XRayImage``, its display pyramid, the request."""

    patch_id: int
    path: Path
    image: Any
    pyramid: display.DisplayPyramid
    load_ms: float


class _SourceWorker(QObject):
    loaded = Signal(int, object)
    failed = Signal(int, str)

    def __init__(self, latest: list[int]) -> None:
        super().__init__()
        self._latest = latest

    @Slot(int, int, str, str, object)
    def load(self, request_id: int, patch_id: int, path: str, image_id: str, folders: Any) -> None:
        if request_id != self._latest[0]:
            return  # a newer request is queued behind this one
        from fpsm_core.io import ImageLoadError, load_image

        t0 = time.perf_counter()
        try:
            found = find_source(path, image_id, folders)
            if found is None:
                where = f"The source image '{path}'" if path else f"Patch {patch_id}'s source image"
                look = (
                    f" nor under {', '.join(str(f) for f in folders)}"
                    if folders
                    else " (open the editor with --images DIR to look for it elsewhere)"
                )
                self.failed.emit(
                    request_id,
                    f"{where} is no longer there{look}; the patch itself is unchanged.",
                )
                return
            path = str(found)
            image = load_image(path)
            pixels = image.pixels if image.pixels.ndim == 2 else image.pixels.mean(axis=2)
            pyramid = display.build_pyramid(pixels)
        except ImageLoadError as exc:
            self.failed.emit(request_id, str(exc))
            return
        except (OSError, ValueError, MemoryError) as exc:
            self.failed.emit(request_id, f"Cannot load the source image '{path}': {exc}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.failed.emit(request_id, f"Unexpected error loading '{path}': {exc}")
            return
        ms = (time.perf_counter() - t0) * 1e3
        self.loaded.emit(request_id, LoadedSource(patch_id, Path(path), image, pyramid, ms))


def find_source(path: str, image_id: str, folders: Sequence[Path] | None) -> Path | None:
    """The source image file: where the library recorded it, else under the ``--images`` folders.

    A library outlives the folder layout it was imported from (data sets get moved to another
    disk); the recorded path is tried first, then each folder given with ``--images`` through
    the importer's own lookup (the box file's image id, flat or nested as NIH's ``images_0xx/``),
    then by the recorded file name. Nothing outside those folders is read (symlinks and ``..``
    are refused by the finder).
    """
    from fpsm_core.dadam.importer import ImageFinder

    if path and Path(path).is_file():
        return Path(path)
    for folder in folders or ():
        finder = _finders.setdefault(str(folder), ImageFinder(folder))
        for key in (image_id, Path(path).name if path else ""):
            if key:
                hit = finder.find(key)
                if hit is not None:
                    return hit
    return None


# One finder per folder for the editor's life: its file index is built on the first miss only.
_finders: dict[str, Any] = {}


class SourceLoader(QObject):
    """Loads source images on a worker thread; only the newest request's result comes out.

    Signals:
        source_loaded(LoadedSource), source_failed(patch_id, message)
    """

    source_loaded = Signal(object)
    source_failed = Signal(int, str)
    _requested = Signal(int, int, str, str, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._latest = [0]
        self._patch = 0
        self.dropped = 0
        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-patch-source")
        self._worker = _SourceWorker(self._latest)
        self._worker.moveToThread(self._thread)
        self._requested.connect(self._worker.load)
        self._worker.loaded.connect(self._on_worker_loaded)
        self._worker.failed.connect(self._on_worker_failed)
        self._thread.start()

    def request(
        self, patch_id: int, path: str, image_id: str = "", folders: Sequence[Path] = ()
    ) -> int:
        """Load a patch's source image (``folders``: where to look when it has moved)."""
        self._latest[0] += 1
        self._patch = patch_id
        self._requested.emit(self._latest[0], patch_id, path, image_id, list(folders))
        return self._latest[0]

    def shutdown(self) -> None:
        self._latest[0] += 1
        self._thread.quit()
        self._thread.wait(30000)

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    def _on_worker_loaded(self, request_id: int, loaded: LoadedSource) -> None:
        if request_id != self._latest[0]:
            self.dropped += 1
            return
        self.source_loaded.emit(loaded)

    def _on_worker_failed(self, request_id: int, message: str) -> None:
        if request_id == self._latest[0]:
            self.source_failed.emit(self._patch, message)


@dataclass(frozen=True)
class ImportRequest:
    """What the new-library dialog asks for: the same options as ``fpsm dadam import``."""

    library: Path
    boxes: Path
    images: Path
    format: str = "fpsm"
    dataset: str | None = None
    readers: str = "mean"


class _Cancelled(Exception):
    pass


class ImportWorker(QObject):
    """Runs one import at a time on its own thread, with progress and cancel.

    Signals:
        progressed(done, total): images done so far.
        finished(summary, cancelled): the import ended (cancelled: stopped between two images).
        failed(message): the box file, the images folder or the library could not be used.
    """

    progressed = Signal(int, int)
    finished = Signal(str, bool)
    failed = Signal(str)
    _requested = Signal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(None)
        self.cancel_event = threading.Event()
        self.running = False
        self._thread = QThread(parent)
        self._thread.setObjectName("fpsm-patch-import")
        self.moveToThread(self._thread)
        self._requested.connect(self._run)
        self._thread.start()

    def start(self, request: ImportRequest) -> None:
        self.cancel_event.clear()
        self.running = True
        self._requested.emit(request)

    def cancel(self) -> None:
        self.cancel_event.set()

    def shutdown(self) -> None:
        self.cancel_event.set()
        self._thread.quit()
        self._thread.wait(60000)

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    @Slot(object)
    def _run(self, req: ImportRequest) -> None:
        from fpsm_core.dadam import DadamError, PatchLibrary, import_boxes, read_boxes

        def progress(done: int, total: int) -> None:
            self.progressed.emit(done, total)
            if self.cancel_event.is_set():
                raise _Cancelled  # between two images: the last one is committed

        try:
            if not req.images.is_dir():
                raise DadamError(req.images, "images folder not found")
            boxes = read_boxes(req.boxes, req.format, readers=req.readers)
            with PatchLibrary(req.library) as lib:
                try:
                    report = import_boxes(
                        lib, boxes, req.images, dataset=req.dataset, progress=progress
                    )
                except _Cancelled:
                    self.running = False
                    self.finished.emit(
                        f"Import cancelled; {len(lib)} patches in the library so far. "
                        "Run it again to finish (boxes already imported are skipped).",
                        True,
                    )
                    return
            self.running = False
            self.finished.emit(" ".join(report.summary().split()), False)
        except (DadamError, OSError) as exc:
            self.running = False
            self.failed.emit(" ".join(str(exc).split()))
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.running = False
            self.failed.emit(f"Unexpected error during the import: {exc}")

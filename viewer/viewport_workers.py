"""Off-thread work for the viewports beside the main film: loading films, frames, headers, findings.

The main film keeps the :class:`~viewer.workers.ServiceHub`'s one-image-at-a-time requests (a new
image there makes the old one stale); the other viewports and the frames of a multi-frame film have
their own requests, keyed by viewport, so hanging a prior never cancels the film being read.
:class:`ViewportLoader` decodes on its own thread. :class:`ViewportInference` lives on the hub's
inference thread and uses the model that thread already owns (one owner per model, no copy, no
cross-thread use); its requests queue behind the main film's. Stale answers (a viewport that has
been given another film since) are dropped by request id, here and in the receiver.
"""

from __future__ import annotations

import time
import traceback
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from fpsm_core.errors import FpsmError, one_sentence
from viewer import display
from viewer.frames import FrameCache
from viewer.workers import LoadedImage

if TYPE_CHECKING:
    from fpsm_core.io.image import XRayImage
    from viewer.workers import ServiceHub


class _Ids:
    """The newest request id per key (GUI thread writes, worker reads: atomic under the GIL)."""

    def __init__(self) -> None:
        self.latest: dict[str, int] = {}
        self._next = 0

    def next(self, key: str) -> int:
        self._next += 1
        self.latest[key] = self._next
        return self._next

    def is_stale(self, key: str, request_id: int) -> bool:
        return self.latest.get(key) != request_id


def _message(exc: Exception, path: str) -> str:
    if isinstance(exc, FpsmError):
        return str(exc)
    if not isinstance(exc, OSError | ValueError | MemoryError):
        traceback.print_exception(exc)
    return f"Cannot load '{path}': {one_sentence(exc)}"


class ViewportLoader(QObject):
    """Decodes films and frames, reads headers (on its own thread).

    The frames of multi-frame films it decoded are kept in :attr:`frames`
    (:class:`~viewer.frames.FrameCache`): a frame asked for again is not decoded again.
    """

    loaded = Signal(str, int, object)  # key, request id, LoadedImage
    header_read = Signal(str, int, object)  # key, request id, FilmHeader
    failed = Signal(str, int, str)

    def __init__(self, ids: _Ids) -> None:
        super().__init__()
        self._ids = ids
        self.frames = FrameCache()

    @Slot(str, int, str, int)
    def load(self, key: str, request_id: int, path: str, frame: int) -> None:
        if self._ids.is_stale(key, request_id):
            return
        from fpsm_core.io import load_image

        cache_key = FrameCache.key(path, frame)
        cached = self.frames.get(cache_key)
        if cached is not None:
            self.loaded.emit(key, request_id, cached)
            return
        t0 = time.perf_counter()
        try:
            image = load_image(path, frame=frame)
            pyramid = display.build_pyramid(image.pixels)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            self.failed.emit(key, request_id, _message(exc, path))
            return
        ms = (time.perf_counter() - t0) * 1e3
        loaded = LoadedImage(Path(path), image, pyramid, ms)
        if image.n_frames > 1:
            self.frames.put(cache_key, loaded)
        self.loaded.emit(key, request_id, loaded)

    @Slot(str, int, str)
    def read_header(self, key: str, request_id: int, path: str) -> None:
        from fpsm_core.io.film_header import FilmHeader, read_film_header

        try:
            header = read_film_header(path)
        except Exception as exc:  # noqa: BLE001 - an unreadable header is an empty one
            if not isinstance(exc, FpsmError | OSError | ValueError):
                traceback.print_exception(exc)
            header = FilmHeader()
        self.header_read.emit(key, request_id, header)


class ViewportInference(QObject):
    """Runs findings for a viewport's film with the model the hub's inference thread owns."""

    result_ready = Signal(str, int, object)
    failed = Signal(str, int, str)

    def __init__(self, ids: _Ids, owner: Any) -> None:
        super().__init__()
        self._ids = ids
        # The hub's InferenceWorker (same thread, its service), weakly: the hub owns it.
        self._owner = weakref.ref(owner)

    @Slot(str, int, object)
    def infer(self, key: str, request_id: int, image: XRayImage) -> None:
        if self._ids.is_stale(key, request_id):
            return
        owner = self._owner()
        service = None if owner is None else owner.service
        if owner is None or service is None:
            self.failed.emit(key, request_id, "No model is loaded, so there are no findings.")
            return
        try:
            result = service.predict([image], cams=owner.cams_available)[0]
        except Exception as exc:  # noqa: BLE001 - shown as a message, never a crash
            traceback.print_exc()
            where = getattr(image, "path", "?")
            self.failed.emit(key, request_id, f"Inference failed on '{where}': {one_sentence(exc)}")
            return
        self.result_ready.emit(key, request_id, result)


class ViewportServices(QObject):
    """The viewports' loader thread and their inference requests (GUI-thread API).

    Signals mirror the workers' (key, request id, payload); only current requests arrive.
    """

    loaded = Signal(str, int, object)
    header_read = Signal(str, int, object)
    result_ready = Signal(str, int, object)
    failed = Signal(str, int, str)

    _load = Signal(str, int, str, int)
    _header = Signal(str, int, str)
    _infer = Signal(str, int, object)

    def __init__(self, hub: ServiceHub | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._stopped = False
        self._ids = _Ids()
        self._header_ids = _Ids()
        self._infer_ids = _Ids()
        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-viewports")
        self.loader = ViewportLoader(self._ids)
        self.loader.moveToThread(self._thread)
        self._thread.start()
        self._load.connect(self.loader.load)
        self._header.connect(self.loader.read_header)
        self.loader.loaded.connect(self._on_loader_loaded)
        self.loader.header_read.connect(self._on_loader_header_read)
        self.loader.failed.connect(self._on_worker_failed)
        self.inference: ViewportInference | None = None
        if hub is not None:
            owner = hub.inference_worker
            self.inference = ViewportInference(self._infer_ids, owner)
            self.inference.moveToThread(owner.thread())
            self._infer.connect(self.inference.infer)
            self.inference.result_ready.connect(self._on_inference_result_ready)
            self.inference.failed.connect(self._on_worker_failed)

    def request_load(self, key: str, path: str | Path, frame: int = 0) -> int:
        request_id = self._ids.next(key)
        if self._stopped:
            return request_id
        self._infer_ids.next(key)  # the old film's findings are no longer wanted
        self._load.emit(key, request_id, str(path), int(frame))
        return request_id

    def request_header(self, key: str, path: str | Path) -> int:
        request_id = self._header_ids.next(key)
        if self._stopped:
            return request_id
        self._header.emit(key, request_id, str(path))
        return request_id

    def request_inference(self, key: str, image: XRayImage) -> int | None:
        if self.inference is None or self._stopped:
            return None
        request_id = self._infer_ids.next(key)
        self._infer.emit(key, request_id, image)
        return request_id

    def cancel(self, key: str) -> None:
        self._ids.next(key)
        self._infer_ids.next(key)

    def shutdown(self) -> None:
        """Stop the loader thread; the workers are deleted in their own threads.

        Called before the hub stops its threads: the inference helper lives on the hub's
        inference thread, and a deferred delete there runs when that thread finishes, so no
        Qt object of this module outlives its thread or dies on the GUI thread's collector.
        """
        if self._stopped:
            return  # a window can be closed twice (a test's teardown closes it again)
        self._stopped = True
        for ids in (self._ids, self._infer_ids, self._header_ids):
            for key in list(ids.latest):
                ids.next(key)
        if self.inference is not None:
            self.inference.deleteLater()
        self.loader.deleteLater()
        self._thread.quit()
        self._thread.wait(30000)

    def _on_loader_loaded(self, key: str, request_id: int, loaded: LoadedImage) -> None:
        if not self._ids.is_stale(key, request_id):
            self.loaded.emit(key, request_id, loaded)

    def _on_loader_header_read(self, key: str, request_id: int, header: object) -> None:
        if not self._header_ids.is_stale(key, request_id):
            self.header_read.emit(key, request_id, header)

    def _on_inference_result_ready(self, key: str, request_id: int, result: object) -> None:
        if not self._infer_ids.is_stale(key, request_id):
            self.result_ready.emit(key, request_id, result)

    def _on_worker_failed(self, key: str, request_id: int, message: str) -> None:
        stale = self._ids.is_stale(key, request_id) and self._infer_ids.is_stale(key, request_id)
        if not stale:
            self.failed.emit(key, request_id, message)

"""Thin Qt workers that run the `fpsm_core` services off the GUI thread, each owning what it uses.

Four threads, each with one worker object (napari's pattern: the service is synchronous and
thread-agnostic, the worker only moves its calls and results across threads), and nothing shared
between them but frozen messages:

- *load*: folder indexing, image decoding, the display pyramid and the thumbnail made from it, so
  opening a 40 MB DICOM never blocks the event loop;
- *inference*: owns the model for the image on screen: loads it, runs one-image inference with CAMs;
- *triage*: owns its own copy of the model, loaded from the same checkpoint on its own thread the
  first time triage runs (and dropped when the model changes), for batch inference over the
  worklist with progress and a cancel flag checked between batches. Borrowing the inference
  thread's model would leave two threads driving one object whose owner may replace it mid-run;
- *thumbnails*: decodes worklist files for their thumbnails only, skipping any file the load
  thread has already decoded for display (its thumbnail came with the pyramid).

The first model waits for the first film: the hub sends the start-up model request to the
inference thread only once the image or folder asked for at start-up is answered (shown, indexed
or failed), or after ``FIRST_MODEL_HOLD_MS`` while a folder is still being indexed, so the window
and the film appear before torch and timm are imported (they are imported there, by the worker
that loads the model, and nowhere on the way to the first film); the findings follow when the
model is ready.

Every request carries an id. The :class:`ServiceHub` (GUI thread) remembers the latest id of each
kind; a worker skips requests that are no longer the latest before it starts them, and the hub
drops any result whose id is stale, so results for an image no longer shown never reach a widget.
Failures of every kind come back on one signal, ``failed(kind, request_id, message)``, the message
one sentence for the user. Widgets never call torch: they get plain results through the hub.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

from fpsm_core.errors import FpsmError, one_sentence
from viewer import display

if TYPE_CHECKING:
    from fpsm_core.inference import InferenceService, Result
    from fpsm_core.io.image import XRayImage
    from fpsm_core.io.studies import StudyIndex
    from fpsm_core.model.ensemble import Ensemble

# The kinds of ``failed``: what was asked for when it went wrong.
IMAGE = "image"
FOLDER = "folder"
MODEL = "model"
INFERENCE = "inference"
TRIAGE = "triage"

# The first model waits for the first film (issue 21): importing torch and timm and building the
# model take seconds of both cores and hundreds of MiB, so the worker that loads the model starts
# only once the image (or folder) asked for at start-up is on screen or failed, or after this long
# if no film is being decoded by then (a folder still being indexed).
FIRST_MODEL_HOLD_MS = 5000


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image ready to show: the `XRayImage`, its display pyramid, its thumbnail, load time."""

    path: Path
    image: XRayImage
    pyramid: display.DisplayPyramid
    load_ms: float
    thumbnail: np.ndarray | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What the GUI needs to know about the loaded model (no tensors)."""

    name: str
    identity: dict[str, Any]
    labels: tuple[str, ...]
    thresholds: tuple[float, ...]
    untrained: bool
    disclaimer: str
    train_counts: dict[str, int] | None
    device: str
    torch_threads: int


@dataclass(frozen=True)
class TriageItem:
    """One triaged image: its urgency score and top urgent finding, or the error.

    Attributes:
        score: the urgency (see :func:`urgency`): probability over threshold of the top urgent
            finding, 1.0 or more when it is above its operating point; None when not scored.
        above: whether the top urgent finding is above its threshold.
        thresholds: each urgent label's operating point.
        needs_human: the input is outside what the model knows (``Result.input.flagged``): its
            findings are not ranked as urgent; the worklist puts it in a "needs a human" group.
        input_reasons: the verdict's reasons, one sentence each.
    """

    path: Path
    score: float | None
    top_label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    above: bool = False
    needs_human: bool = False
    input_reasons: tuple[str, ...] = ()


def urgency(
    probabilities: Mapping[str, float], thresholds: Mapping[str, float]
) -> tuple[float | None, str | None, bool]:
    """Rank an image by its urgent findings, each measured against its own operating point.

    The rule: urgency = max over the urgent labels of probability / threshold. Raw probabilities
    cannot be compared across labels whose thresholds differ (0.80 is below a 0.92 operating point
    but well above a 0.74 one); divided by its threshold, a finding scores 1.0 exactly at its
    operating point, above 1.0 when the model flags it, and images sort by how far their most
    urgent finding has gone towards (or past) its flag.

    Args:
        probabilities: probability of each urgent label.
        thresholds: each label's threshold (operating point), in (0, 1).

    Returns:
        (score, top label, whether the top label is above its threshold); (None, None, False)
        when there is no urgent label.
    """
    if not probabilities:
        return None, None, False
    ratios = {
        label: p / max(float(thresholds.get(label, 0.5)), 1e-6)
        for label, p in probabilities.items()
    }
    top = max(ratios, key=ratios.__getitem__)
    return ratios[top], top, probabilities[top] >= thresholds.get(top, 0.5)


def default_torch_threads() -> int:
    """Leave one core to the GUI: torch's intra-op pool gets the others (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


class _Latest:
    """The newest request id of one kind; reads and writes are atomic under the GIL."""

    def __init__(self) -> None:
        self.value = 0

    def is_stale(self, request_id: int) -> bool:
        return request_id != self.value

    def next(self) -> int:
        self.value += 1
        return self.value


def _release_memory() -> None:
    from fpsm_core.pipeline.allocator import release_memory

    release_memory()


def _drop_cuda_library_pages() -> None:
    """Without a CUDA device, unmap the CUDA libraries' clean pages torch's import touched.

    ~280 MiB of RSS with the CUDA build of torch; see :mod:`fpsm_core.pipeline.cuda_pages`.
    """
    from fpsm_core.pipeline.cuda_pages import drop_cuda_library_pages

    drop_cuda_library_pages()


def _file_message(exc: Exception, path: str, verb: str, doing: str) -> str:
    """One sentence for a file that could not be read; an unexpected error keeps its traceback."""
    if isinstance(exc, FpsmError):  # a user's file: its own one sentence
        return str(exc)
    if isinstance(exc, OSError | ValueError | MemoryError):
        return f"Cannot {verb} '{path}': {one_sentence(exc)}"
    traceback.print_exception(exc)  # a bug: keep the traceback, tell the user
    return f"Unexpected error while {doing} '{path}': {one_sentence(exc)}"


def _load_service(
    model: Ensemble | str | Path | None, device: str, threads: int
) -> InferenceService:
    """An inference service of one image per pass, for the calling thread to own."""
    import torch

    from fpsm_core.inference import InferenceService

    torch.set_num_threads(threads)
    return InferenceService(model, device=device, batch_size=1)


def _model_message(model: object, exc: BaseException) -> str:
    if not isinstance(exc, FpsmError | ValueError | OSError | RuntimeError):
        traceback.print_exception(exc)
    text = one_sentence(exc)
    where = str(model) if model is not None else "the bundled model"
    return text if where in text else f"Cannot load the model {where}: {text}"


class LoadWorker(QObject):
    """Indexes folders and loads images (with their display pyramid) on the load thread."""

    image_loaded = Signal(int, object)
    folder_indexed = Signal(int, object)
    failed = Signal(str, int, str)

    def __init__(self, latest: _Latest, index_cache: Any = None) -> None:
        super().__init__()
        self._latest = latest
        self._index_cache = index_cache

    @Slot(int, str)
    def load(self, request_id: int, path: str) -> None:
        if self._latest.is_stale(request_id):
            return
        from fpsm_core.io import load_image

        t0 = time.perf_counter()
        try:
            image = load_image(path)
            pyramid = display.build_pyramid(image.pixels)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            self.failed.emit(IMAGE, request_id, _file_message(exc, path, "load", "loading"))
            return
        thumbnail = display.pyramid_thumbnail(pyramid, image.window, image.voi_function)
        ms = (time.perf_counter() - t0) * 1e3
        self.image_loaded.emit(request_id, LoadedImage(Path(path), image, pyramid, ms, thumbnail))

    @Slot(int, str)
    def index(self, request_id: int, path: str) -> None:
        from fpsm_core.io import index_folder

        try:
            result = index_folder(path, cache=self._index_cache)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one sentence
            self.failed.emit(FOLDER, request_id, _file_message(exc, path, "index", "indexing"))
            return
        self.folder_indexed.emit(request_id, result)


class InferenceWorker(QObject):
    """Owns the on-screen model: loads it and runs one-image inference with CAMs."""

    model_loaded = Signal(int, object)
    result_ready = Signal(int, object)
    inference_started = Signal(int)
    failed = Signal(str, int, str)

    def __init__(self, latest: _Latest, latest_model: _Latest, threads: int) -> None:
        super().__init__()
        self._latest = latest
        self._latest_model = latest_model
        self._threads = threads
        self.service: InferenceService | None = None
        self.cams_available = True

    @Slot(int, object, str)
    def load_model(self, request_id: int, model: Any, device: str) -> None:
        if self._latest_model.is_stale(request_id):
            return
        # Load the new model beside the working one and swap only on success: a file that is
        # not a checkpoint must not leave the session without a model.
        try:
            service = _load_service(model, device, self._threads)
        except Exception as exc:  # noqa: BLE001 - any failure becomes the one-sentence message
            self.failed.emit(MODEL, request_id, _model_message(model, exc))
            return
        self.service = service
        description = self.service.ensemble.describe()
        counts = description.train_positives
        self.model_loaded.emit(
            request_id,
            ModelInfo(
                name=description.name,
                identity=self.service.identity(),
                labels=description.labels,
                thresholds=description.thresholds,
                untrained=description.untrained,
                disclaimer=description.disclaimer,
                train_counts=dict(counts) if counts is not None else None,
                device=str(self.service.device),
                torch_threads=self._threads,
            ),
        )
        _drop_cuda_library_pages()
        _release_memory()  # the loading's scratch (and any model it replaced) leaves the arena

    @Slot(int, object)
    def infer(self, request_id: int, image: XRayImage) -> None:
        if self._latest.is_stale(request_id):
            return
        if self.service is None:
            self.failed.emit(INFERENCE, request_id, "No model is loaded, so there are no findings.")
            return
        self.inference_started.emit(request_id)
        try:
            try:
                result = self.service.predict([image], cams=self.cams_available)[0]
            except ImportError:
                # CAM engine missing from this install: findings still work.
                self.cams_available = False
                result = self.service.predict([image], cams=False)[0]
        except Exception as exc:  # noqa: BLE001 - shown as a message, never a crash
            traceback.print_exc()
            where = getattr(image, "path", "?")
            self.failed.emit(
                INFERENCE, request_id, f"Inference failed on '{where}': {one_sentence(exc)}"
            )
            return
        self.result_ready.emit(request_id, result)
        _release_memory()  # the forward's freed activations stay resident in this thread's arena


class TriageWorker(QObject):
    """Batch inference over a list of files with its own model, ranking each by urgent findings."""

    progressed = Signal(int, int)
    item_ready = Signal(int, object)
    finished = Signal(int, bool)
    failed = Signal(str, int, str)

    def __init__(self, threads: int) -> None:
        super().__init__()
        self._threads = threads
        self.cancel_event = threading.Event()
        self.service: InferenceService | None = None
        self._model_key: tuple[str | None, str] | None = None

    @Slot()
    def release_model(self) -> None:
        """Drop this thread's model (the viewer switched models)."""
        self.service, self._model_key = None, None

    def _service_for(self, model: Any, device: str) -> InferenceService:
        key = (None if model is None else str(model), device)
        if self.service is None or self._model_key != key:
            self.release_model()
            self.service = _load_service(model, device, self._threads)
            self._model_key = key
        return self.service

    @Slot(int, object, str, list, list)
    def run(
        self, run_id: int, model: Any, device: str, paths: list[str], urgent: list[str]
    ) -> None:
        try:
            service = self._service_for(model, device)
        except Exception as exc:  # noqa: BLE001 - reported, the app keeps working
            self.failed.emit(TRIAGE, run_id, f"Triage cannot run: {_model_message(model, exc)}")
            self.finished.emit(run_id, True)
            return
        from fpsm_core.inference import LoadFailure

        wanted = [label for label in urgent if label in service.labels]
        thresholds = {
            label: float(service.ensemble.thresholds[service.labels.index(label)])
            for label in wanted
        }
        from fpsm_core.pipeline import plan_run, run_pipeline

        # The batch pipeline of `fpsm infer`: files decode in worker processes while this thread
        # runs the model; the torch threads stay what the viewer set.
        plan = plan_run(service.device.type, len(paths), threads=self._threads)
        cancelled = False
        try:
            for item in run_pipeline(
                service,
                paths,
                plan,
                progress=lambda done, total: self.progressed.emit(done, total),
                cancel=self.cancel_event.is_set,
            ):
                if isinstance(item, LoadFailure):
                    self.item_ready.emit(
                        run_id, TriageItem(Path(item.path), None, None, {}, item.error)
                    )
                    continue
                probs = {
                    label: float(item.probabilities[service.labels.index(label)])
                    for label in wanted
                }
                score, top, above = urgency(probs, thresholds)
                self.item_ready.emit(
                    run_id,
                    TriageItem(
                        Path(item.path or ""),
                        score,
                        top,
                        probs,
                        thresholds={label: thresholds[label] for label in wanted},
                        above=above,
                        needs_human=item.input.flagged,
                        input_reasons=tuple(r.sentence for r in item.input.reasons),
                    ),
                )
            cancelled = self.cancel_event.is_set()
        except Exception as exc:  # noqa: BLE001 - reported, the app keeps working
            traceback.print_exc()
            self.failed.emit(TRIAGE, run_id, f"Triage stopped: {one_sentence(exc)}")
            cancelled = True
        self.finished.emit(run_id, cancelled)


class ThumbnailWorker(QObject):
    """Decodes worklist files for their thumbnails, unless the load thread already made one."""

    made = Signal(int, str, object)

    def __init__(self, latest: _Latest, done: set[str]) -> None:
        super().__init__()
        self._latest = latest
        self._done = done  # paths with a thumbnail; the hub adds to it (GIL-atomic set ops)

    @Slot(int, str)
    def make(self, generation: int, path: str) -> None:
        if self._latest.is_stale(generation) or path in self._done:
            return
        from fpsm_core.io import load_image

        try:
            image = load_image(path)
            rgb = display.image_thumbnail(image.pixels, image.window, image.voi_function)
        except (FpsmError, OSError, MemoryError):
            rgb = None  # an unreadable file keeps its name and its error, not a picture
        self.made.emit(generation, path, rgb)


class ServiceHub(QObject):
    """Owns the worker threads; the GUI talks to it and hears back only about current requests.

    Signals:
        image_loaded(request_id, LoadedImage), folder_indexed(request_id, StudyIndex)
        model_loaded(ModelInfo), result_ready(request_id, Result)
        triage_progressed(done, total), triage_item_ready(TriageItem), triage_finished(cancelled)
        thumbnail_ready(path, (h, w, 3) uint8 RGB or None)
        failed(kind, request_id, message): kind is ``image``, ``folder``, ``model``,
            ``inference`` or ``triage``; only failures of current requests arrive.
    """

    image_loaded = Signal(int, object)
    folder_indexed = Signal(int, object)
    model_loaded = Signal(object)
    result_ready = Signal(int, object)
    triage_progressed = Signal(int, int)
    triage_item_ready = Signal(object)
    triage_finished = Signal(bool)
    thumbnail_ready = Signal(str, object)
    failed = Signal(str, int, str)

    _load_requested = Signal(int, str)
    _index_requested = Signal(int, str)
    _model_requested = Signal(int, object, str)
    _inference_requested = Signal(int, object)
    _triage_requested = Signal(int, object, str, list, list)
    _triage_model_released = Signal()
    _thumbnail_requested = Signal(int, str)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        torch_threads: int | None = None,
        index_cache: Any = None,
        hold_first_model: bool = True,
    ) -> None:
        super().__init__(parent)
        self._hold_first_model = hold_first_model
        self._held_model: tuple[int, Any, str] | None = None
        self._outstanding: set[str] = set()  # IMAGE / FOLDER requests not yet answered
        self._latest = {
            kind: _Latest() for kind in (IMAGE, FOLDER, MODEL, INFERENCE, TRIAGE, "thumbnail")
        }
        self._thumbnailed: set[str] = set()
        self._model: tuple[Any, str] = (None, "auto")
        self._requested_models: dict[int, tuple[Any, str]] = {}
        self.dropped = 0
        self.model_info: ModelInfo | None = None
        self.triage_running = False
        self._threads: list[QThread] = []

        threads = torch_threads or default_torch_threads()
        self.load_worker = LoadWorker(self._latest[IMAGE], index_cache)
        self.inference_worker = InferenceWorker(
            self._latest[INFERENCE], self._latest[MODEL], threads
        )
        self.triage_worker = TriageWorker(threads)
        self.thumbnail_worker = ThumbnailWorker(self._latest["thumbnail"], self._thumbnailed)
        for name, worker in (
            ("fpsm-load", self.load_worker),
            ("fpsm-inference", self.inference_worker),
            ("fpsm-triage", self.triage_worker),
            ("fpsm-thumbnails", self.thumbnail_worker),
        ):
            thread = QThread(self)
            thread.setObjectName(name)
            worker.moveToThread(thread)
            thread.start()
            self._threads.append(thread)

        self._load_requested.connect(self.load_worker.load)
        self._index_requested.connect(self.load_worker.index)
        self._model_requested.connect(self.inference_worker.load_model)
        self._inference_requested.connect(self.inference_worker.infer)
        self._triage_requested.connect(self.triage_worker.run)
        self._triage_model_released.connect(self.triage_worker.release_model)
        self._thumbnail_requested.connect(self.thumbnail_worker.make)

        for worker in (self.load_worker, self.inference_worker, self.triage_worker):
            worker.failed.connect(self._on_worker_failed)
        self.load_worker.image_loaded.connect(self._on_load_worker_image_loaded)
        self.load_worker.folder_indexed.connect(self._on_load_worker_folder_indexed)
        self.inference_worker.model_loaded.connect(self._on_inference_worker_model_loaded)
        self.inference_worker.result_ready.connect(self._on_inference_worker_result_ready)
        self.triage_worker.progressed.connect(self.triage_progressed)
        self.triage_worker.item_ready.connect(self._on_triage_worker_item_ready)
        self.triage_worker.finished.connect(self._on_triage_worker_finished)
        self.thumbnail_worker.made.connect(self._on_thumbnail_worker_made)

    # -- requests (GUI thread) ---------------------------------------------------------------
    def load_model(self, model: Any, device: str = "auto") -> int:
        """Load a model for the image on screen; triage loads its own copy when it next runs.

        The working model stays in use (for inference and triage) until the new one has loaded;
        if it fails to load, ``failed(model, ...)`` says why and nothing else changes.
        """
        request_id = self._latest[MODEL].next()
        self._requested_models[request_id] = (model, device)
        if self._hold_first_model:
            self._hold_first_model = False
            self._held_model = (request_id, model, device)
            QTimer.singleShot(0, self, self._release_model_if_idle)
            QTimer.singleShot(FIRST_MODEL_HOLD_MS, self, self._release_model_unless_decoding)
            return request_id
        if self._held_model is not None:  # replaced before it was sent: never load it
            self._requested_models.pop(self._held_model[0], None)
            self._held_model = None
        self._model_requested.emit(request_id, model, device)
        return request_id

    @property
    def model_held(self) -> bool:
        """Whether the first model is still waiting for the first film."""
        return self._held_model is not None

    def _release_model(self) -> None:
        held, self._held_model = self._held_model, None
        if held is not None:
            self._model_requested.emit(*held)

    def _release_model_unless_decoding(self) -> None:
        # A slow folder index does not hold the model back; a film being decoded does (it is
        # bounded, and on a loaded machine the model's imports would only slow it down).
        if IMAGE not in self._outstanding:
            self._release_model()

    def _release_model_if_idle(self) -> None:
        if not self._outstanding:
            self._release_model()

    def _answered(self, kind: str) -> None:
        """The latest request of ``kind`` is answered; a held model goes once the loop is idle."""
        self._outstanding.discard(kind)
        if self._held_model is not None and not self._outstanding:
            # On the next turn of the event loop, after the film has been painted.
            QTimer.singleShot(0, self, self._release_model_if_idle)

    def request_image(self, path: str | Path) -> int:
        """Load an image for display; any earlier image request becomes stale."""
        self._latest[INFERENCE].next()  # the old image's inference is no longer wanted
        request_id = self._latest[IMAGE].next()
        self._outstanding.add(IMAGE)
        self._load_requested.emit(request_id, str(path))
        return request_id

    def request_index(self, path: str | Path) -> int:
        request_id = self._latest[FOLDER].next()
        self._outstanding.add(FOLDER)
        self._index_requested.emit(request_id, str(path))
        return request_id

    def request_inference(self, image: XRayImage) -> int:
        """Infer on a loaded image; any earlier inference request becomes stale."""
        request_id = self._latest[INFERENCE].next()
        self._inference_requested.emit(request_id, image)
        return request_id

    def cancel_inference(self) -> None:
        """Forget the current inference: it is skipped if queued, dropped if running."""
        self._latest[INFERENCE].next()

    @property
    def current_inference_id(self) -> int:
        return self._latest[INFERENCE].value

    def request_thumbnails(self, paths: Sequence[str | Path]) -> None:
        """Thumbnails for worklist files (``thumbnail_ready`` per file, skipped when known)."""
        generation = self._latest["thumbnail"].value
        for path in paths:
            if str(path) not in self._thumbnailed:
                self._thumbnail_requested.emit(generation, str(path))

    def cancel_thumbnails(self) -> None:
        """Forget queued thumbnails (the worklist was replaced); later requests decode again."""
        self._latest["thumbnail"].next()
        self._thumbnailed.clear()

    def start_triage(self, paths: Sequence[str | Path], urgent: Sequence[str]) -> int:
        run_id = self._latest[TRIAGE].next()
        self.triage_worker.cancel_event.clear()
        self.triage_running = True
        model, device = self._model
        self._triage_requested.emit(run_id, model, device, [str(p) for p in paths], list(urgent))
        return run_id

    def cancel_triage(self) -> None:
        self.triage_worker.cancel_event.set()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop the threads (a running forward pass finishes first)."""
        self._held_model = None
        self.triage_worker.cancel_event.set()
        for kind in (IMAGE, INFERENCE, "thumbnail"):
            self._latest[kind].next()
        for thread in self._threads:
            thread.quit()
        for thread in self._threads:
            thread.wait(timeout_ms)
        self._threads.clear()

    # -- results (GUI thread) -----------------------------------------------------------------
    def _on_worker_failed(self, kind: str, request_id: int, message: str) -> None:
        if kind == MODEL:
            self._requested_models.pop(request_id, None)
        if not self._latest[kind].is_stale(request_id):
            self.failed.emit(kind, request_id, message)
            if kind in (IMAGE, FOLDER):
                self._answered(kind)

    def _on_load_worker_image_loaded(self, request_id: int, loaded: LoadedImage) -> None:
        if loaded.thumbnail is not None:
            # Decoded anyway: the worklist gets its thumbnail even if the image is no longer wanted.
            self._thumbnailed.add(str(loaded.path))
            self.thumbnail_ready.emit(str(loaded.path), loaded.thumbnail)
        if self._latest[IMAGE].is_stale(request_id):
            self.dropped += 1
            return
        self.image_loaded.emit(request_id, loaded)
        self._answered(IMAGE)

    def _on_load_worker_folder_indexed(self, request_id: int, index: StudyIndex) -> None:
        if not self._latest[FOLDER].is_stale(request_id):
            self.folder_indexed.emit(request_id, index)  # the window asks for its first image
            self._answered(FOLDER)

    def _on_inference_worker_model_loaded(self, request_id: int, info: ModelInfo) -> None:
        requested = self._requested_models.pop(request_id, None)
        if not self._latest[MODEL].is_stale(request_id) and requested is not None:
            self.model_info = info
            self._model = requested
            self._triage_model_released.emit()
            self.model_loaded.emit(info)

    def _on_inference_worker_result_ready(self, request_id: int, result: Result) -> None:
        if self._latest[INFERENCE].is_stale(request_id):
            self.dropped += 1
            return
        self.result_ready.emit(request_id, result)

    def _on_triage_worker_item_ready(self, run_id: int, item: TriageItem) -> None:
        if not self._latest[TRIAGE].is_stale(run_id):
            self.triage_item_ready.emit(item)

    def _on_triage_worker_finished(self, run_id: int, cancelled: bool) -> None:
        if not self._latest[TRIAGE].is_stale(run_id):
            self.triage_running = False
            self.triage_finished.emit(cancelled)

    def _on_thumbnail_worker_made(self, generation: int, path: str, rgb: np.ndarray | None) -> None:
        if self._latest["thumbnail"].is_stale(generation) or path in self._thumbnailed:
            return
        self._thumbnailed.add(path)
        self.thumbnail_ready.emit(path, rgb)

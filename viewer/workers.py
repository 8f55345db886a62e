"""Thin Qt workers that run the `fpsm_core` services off the GUI thread.

Three threads, each with one worker object (napari's pattern: the service is synchronous and
thread-agnostic, the worker only moves its calls and results across threads):

- *load*: folder indexing, image decoding and the display pyramid, so opening a 40 MB DICOM never
  blocks the event loop;
- *inference*: model loading and one-image inference with CAMs, for what is on screen;
- *triage*: batch inference over the worklist, with progress and a cancel flag checked between
  batches.

Every request carries an id. The :class:`ServiceHub` (GUI thread) remembers the latest id of each
kind; a worker skips requests that are no longer the latest before it starts them, and the hub
drops any result whose id is stale, so results for an image no longer shown never reach a widget.
Widgets never call torch: they get plain results through the hub's signals.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from viewer import display


@dataclass(frozen=True, eq=False)
class LoadedImage:
    """An image ready to show: the `XRayImage`, its display pyramid and how long loading took."""

    path: Path
    image: Any
    pyramid: display.DisplayPyramid
    load_ms: float


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
    """One triaged image: its urgency score and top urgent finding, or the error."""

    path: Path
    score: float | None
    top_label: str | None
    probabilities: dict[str, float] = field(default_factory=dict)
    error: str | None = None


def one_sentence(exc: BaseException) -> str:
    """The message a user sees: the exception's own sentence, else its type."""
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


def default_torch_threads() -> int:
    """Leave one core to the GUI: torch's intra-op pool gets the others (at least one)."""
    return max(1, (os.cpu_count() or 2) - 1)


class _Latest:
    """The newest request id of one kind; reads and writes are atomic under the GIL."""

    def __init__(self) -> None:
        self.value = 0

    def is_stale(self, request_id: int) -> bool:
        return request_id != self.value


class LoadWorker(QObject):
    """Indexes folders and loads images (with their display pyramid) on the load thread."""

    image_loaded = Signal(int, object)
    image_failed = Signal(int, str)
    folder_indexed = Signal(int, object)
    folder_failed = Signal(int, str)

    def __init__(self, latest: _Latest, index_cache: Any = None) -> None:
        super().__init__()
        self._latest = latest
        self._index_cache = index_cache

    @Slot(int, str)
    def load(self, request_id: int, path: str) -> None:
        if self._latest.is_stale(request_id):
            return
        from fpsm_core.io import ImageLoadError, load_image

        t0 = time.perf_counter()
        try:
            image = load_image(path)
            pyramid = display.build_pyramid(image.pixels)
        except ImageLoadError as exc:
            self.image_failed.emit(request_id, str(exc))
            return
        except (OSError, ValueError, MemoryError) as exc:
            self.image_failed.emit(request_id, f"Cannot load '{path}': {one_sentence(exc)}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.image_failed.emit(
                request_id, f"Unexpected error while loading '{path}': {one_sentence(exc)}"
            )
            return
        ms = (time.perf_counter() - t0) * 1e3
        self.image_loaded.emit(request_id, LoadedImage(Path(path), image, pyramid, ms))

    @Slot(int, str)
    def index(self, request_id: int, path: str) -> None:
        from fpsm_core.io import ImageLoadError, index_folder

        try:
            result = index_folder(path, cache=self._index_cache)
        except ImageLoadError as exc:
            self.folder_failed.emit(request_id, str(exc))
            return
        except (OSError, ValueError) as exc:
            self.folder_failed.emit(request_id, f"Cannot index '{path}': {one_sentence(exc)}")
            return
        except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
            traceback.print_exc()
            self.folder_failed.emit(
                request_id, f"Unexpected error while indexing '{path}': {one_sentence(exc)}"
            )
            return
        self.folder_indexed.emit(request_id, result)


class InferenceWorker(QObject):
    """Loads the model and runs one-image inference with CAMs on the inference thread."""

    model_loaded = Signal(object)
    model_failed = Signal(str)
    result_ready = Signal(int, object)
    inference_failed = Signal(int, str)
    inference_started = Signal(int)

    def __init__(self, latest: _Latest, threads: int) -> None:
        super().__init__()
        self._latest = latest
        self._threads = threads
        self.service: Any = None
        self.cams_available = True

    @Slot(object, str)
    def load_model(self, model: Any, device: str) -> None:
        try:
            import torch

            from fpsm_core.inference import InferenceService

            torch.set_num_threads(self._threads)
            self.service = InferenceService(model, device=device, batch_size=1)
        except Exception as exc:  # noqa: BLE001 - any failure becomes the one-sentence message
            if not isinstance(exc, (ValueError, OSError, RuntimeError)):
                traceback.print_exc()
            self.service = None
            self.model_failed.emit(_model_message(model, exc))
            return
        ens = self.service.ensemble
        counts = _train_counts(ens)
        self.model_loaded.emit(
            ModelInfo(
                name=str(ens.name),
                identity=self.service.identity(),
                labels=tuple(ens.labels),
                thresholds=tuple(float(t) for t in ens.thresholds),
                untrained=bool(ens.untrained),
                disclaimer=str(ens.disclaimer or ""),
                train_counts=counts,
                device=str(self.service.device),
                torch_threads=self._threads,
            )
        )

    @Slot(int, object)
    def infer(self, request_id: int, image: Any) -> None:
        if self._latest.is_stale(request_id):
            return
        if self.service is None:
            self.inference_failed.emit(request_id, "No model is loaded, so there are no findings.")
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
            self.inference_failed.emit(
                request_id,
                f"Inference failed on '{getattr(image, 'path', '?')}': {one_sentence(exc)}",
            )
            return
        self.result_ready.emit(request_id, result)


class TriageWorker(QObject):
    """Batch inference over a list of files, ranking each by its urgent findings."""

    progressed = Signal(int, int)
    item_ready = Signal(int, object)
    finished = Signal(int, bool)

    def __init__(self, hub: ServiceHub) -> None:
        super().__init__()
        self._hub = hub
        self.cancel_event = threading.Event()

    @Slot(int, list, list)
    def run(self, run_id: int, paths: list[str], urgent: list[str]) -> None:
        service = self._hub.inference_worker.service
        if service is None:
            self.finished.emit(run_id, True)
            return
        from fpsm_core.inference import LoadFailure

        wanted = [label for label in urgent if label in service.labels]
        cancelled = False
        try:
            for item in service.predict_paths(
                paths,
                cams=False,
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
                top = max(probs, key=probs.__getitem__) if probs else None
                self.item_ready.emit(
                    run_id,
                    TriageItem(Path(item.path or ""), probs[top] if top else None, top, probs),
                )
            cancelled = self.cancel_event.is_set()
        except Exception as exc:  # noqa: BLE001 - reported, the app keeps working
            traceback.print_exc()
            self.item_ready.emit(
                run_id, TriageItem(Path(""), None, None, {}, f"Triage stopped: {one_sentence(exc)}")
            )
            cancelled = True
        self.finished.emit(run_id, cancelled)


def _train_counts(ensemble: Any) -> dict[str, int] | None:
    """Training positives per label from the members' provenance (first member that has them).

    ``fpsm train`` records them as ``train_positives``; ``train_counts`` is accepted too.
    """
    for member in ensemble.members:
        provenance = dict(getattr(member.meta, "provenance", {}) or {})
        counts = provenance.get("train_counts") or provenance.get("train_positives")
        if isinstance(counts, dict) and counts:
            try:
                return {str(k): int(v) for k, v in counts.items()}
            except (TypeError, ValueError):
                return None
    return None


def _model_message(model: Any, exc: BaseException) -> str:
    text = one_sentence(exc)
    where = str(model) if model is not None else "the bundled model"
    return text if where in text else f"Cannot load the model {where}: {text}"


class ServiceHub(QObject):
    """Owns the worker threads; the GUI talks to it and hears back only about current requests.

    Signals:
        image_loaded(request_id, LoadedImage), image_failed(request_id, message)
        folder_indexed(request_id, StudyIndex), folder_failed(request_id, message)
        model_loaded(ModelInfo), model_failed(message)
        result_ready(request_id, Result), inference_failed(request_id, message)
        triage_progressed(done, total), triage_item_ready(TriageItem), triage_finished(cancelled)
    """

    image_loaded = Signal(int, object)
    image_failed = Signal(int, str)
    folder_indexed = Signal(int, object)
    folder_failed = Signal(int, str)
    model_loaded = Signal(object)
    model_failed = Signal(str)
    result_ready = Signal(int, object)
    inference_failed = Signal(int, str)
    triage_progressed = Signal(int, int)
    triage_item_ready = Signal(object)
    triage_finished = Signal(bool)

    _load_requested = Signal(int, str)
    _index_requested = Signal(int, str)
    _model_requested = Signal(object, str)
    _inference_requested = Signal(int, object)
    _triage_requested = Signal(int, list, list)

    def __init__(
        self,
        parent: QObject | None = None,
        *,
        torch_threads: int | None = None,
        index_cache: Any = None,
    ) -> None:
        super().__init__(parent)
        self._image_latest = _Latest()
        self._inference_latest = _Latest()
        self._index_latest = _Latest()
        self._triage_run = 0
        self.dropped = 0
        self.model_info: ModelInfo | None = None
        self.triage_running = False
        self._threads: list[QThread] = []

        self.load_worker = LoadWorker(self._image_latest, index_cache)
        self.inference_worker = InferenceWorker(
            self._inference_latest, torch_threads or default_torch_threads()
        )
        self.triage_worker = TriageWorker(self)
        for name, worker in (
            ("fpsm-load", self.load_worker),
            ("fpsm-inference", self.inference_worker),
            ("fpsm-triage", self.triage_worker),
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

        self.load_worker.image_loaded.connect(self._on_load_worker_image_loaded)
        self.load_worker.image_failed.connect(self._on_load_worker_image_failed)
        self.load_worker.folder_indexed.connect(self._on_load_worker_folder_indexed)
        self.load_worker.folder_failed.connect(self._on_load_worker_folder_failed)
        self.inference_worker.model_loaded.connect(self._on_inference_worker_model_loaded)
        self.inference_worker.model_failed.connect(self.model_failed)
        self.inference_worker.result_ready.connect(self._on_inference_worker_result_ready)
        self.inference_worker.inference_failed.connect(self._on_inference_worker_inference_failed)
        self.triage_worker.progressed.connect(self.triage_progressed)
        self.triage_worker.item_ready.connect(self._on_triage_worker_item_ready)
        self.triage_worker.finished.connect(self._on_triage_worker_finished)

    # -- requests (GUI thread) ---------------------------------------------------------------
    def load_model(self, model: Any, device: str = "auto") -> None:
        self.model_info = None
        self._model_requested.emit(model, device)

    def request_image(self, path: str | Path) -> int:
        """Load an image for display; any earlier image request becomes stale."""
        self._image_latest.value += 1
        self._inference_latest.value += 1  # the old image's inference is no longer wanted
        self._load_requested.emit(self._image_latest.value, str(path))
        return self._image_latest.value

    def request_index(self, path: str | Path) -> int:
        self._index_latest.value += 1
        self._index_requested.emit(self._index_latest.value, str(path))
        return self._index_latest.value

    def request_inference(self, image: Any) -> int:
        """Infer on a loaded image; any earlier inference request becomes stale."""
        self._inference_latest.value += 1
        self._inference_requested.emit(self._inference_latest.value, image)
        return self._inference_latest.value

    def cancel_inference(self) -> None:
        """Forget the current inference: it is skipped if queued, dropped if running."""
        self._inference_latest.value += 1

    @property
    def current_inference_id(self) -> int:
        return self._inference_latest.value

    def start_triage(self, paths: Sequence[str | Path], urgent: Sequence[str]) -> int:
        self._triage_run += 1
        self.triage_worker.cancel_event.clear()
        self.triage_running = True
        self._triage_requested.emit(self._triage_run, [str(p) for p in paths], list(urgent))
        return self._triage_run

    def cancel_triage(self) -> None:
        self.triage_worker.cancel_event.set()

    def shutdown(self, timeout_ms: int = 30000) -> None:
        """Stop the threads (a running forward pass finishes first)."""
        self.triage_worker.cancel_event.set()
        self._image_latest.value += 1
        self._inference_latest.value += 1
        for thread in self._threads:
            thread.quit()
        for thread in self._threads:
            thread.wait(timeout_ms)
        self._threads.clear()

    # -- results (GUI thread) -----------------------------------------------------------------
    def _on_load_worker_image_loaded(self, request_id: int, loaded: LoadedImage) -> None:
        if self._image_latest.is_stale(request_id):
            self.dropped += 1
            return
        self.image_loaded.emit(request_id, loaded)

    def _on_load_worker_image_failed(self, request_id: int, message: str) -> None:
        if not self._image_latest.is_stale(request_id):
            self.image_failed.emit(request_id, message)

    def _on_load_worker_folder_indexed(self, request_id: int, index: Any) -> None:
        if not self._index_latest.is_stale(request_id):
            self.folder_indexed.emit(request_id, index)

    def _on_load_worker_folder_failed(self, request_id: int, message: str) -> None:
        if not self._index_latest.is_stale(request_id):
            self.folder_failed.emit(request_id, message)

    def _on_inference_worker_model_loaded(self, info: ModelInfo) -> None:
        self.model_info = info
        self.model_loaded.emit(info)

    def _on_inference_worker_result_ready(self, request_id: int, result: Any) -> None:
        if self._inference_latest.is_stale(request_id):
            self.dropped += 1
            return
        self.result_ready.emit(request_id, result)

    def _on_inference_worker_inference_failed(self, request_id: int, message: str) -> None:
        if not self._inference_latest.is_stale(request_id):
            self.inference_failed.emit(request_id, message)

    def _on_triage_worker_item_ready(self, run_id: int, item: TriageItem) -> None:
        if run_id == self._triage_run:
            self.triage_item_ready.emit(item)

    def _on_triage_worker_finished(self, run_id: int, cancelled: bool) -> None:
        if run_id == self._triage_run:
            self.triage_running = False
            self.triage_finished.emit(cancelled)

"""The studio's workers: file loading, the model check and patch scoring, off the GUI thread.

- :class:`JobRunner` runs plain functions (list a folder or a labels CSV, load a target, read a
  generated image's recipe) on one thread. Requests are numbered per kind; a result for a request
  that a newer one of the same kind replaced is dropped, so clicking through targets quickly shows
  only the last one.
- :class:`ModelWorker` owns the model on its own thread (loaded there on first use, from the
  editor's ``--model``, default the bundled demo ensemble) and runs ``check_composition`` for a
  composite's revision, and the efficacy score of a selection with progress and cancel. The GUI
  thread never waits on torch; a bad model path is one sentence.

Failures are one signal with the sentence: a user's problem (:class:`fpsm_core.errors.FpsmError`)
as it is, a bug with its traceback printed and a short sentence shown.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from fpsm_core.errors import FpsmError, one_sentence


def run_safely(fn: Callable[[], Any]) -> tuple[Any, str]:
    """(value, "") or (None, one sentence)."""
    try:
        return fn(), ""
    except FpsmError as exc:
        return None, str(exc)
    except (OSError, ValueError, KeyError, MemoryError) as exc:
        return None, f"{type(exc).__name__}: {one_sentence(exc)}"
    except Exception as exc:  # noqa: BLE001 - a bug: keep the traceback, tell the user
        traceback.print_exc()
        return None, f"Internal error ({type(exc).__name__}): {one_sentence(exc)}"


class _JobWorker(QObject):
    done = Signal(str, int, object, str)

    def __init__(self, latest: dict[str, int], lock: threading.Lock) -> None:
        super().__init__()
        self._latest = latest
        self._lock = lock

    @Slot(str, int, object)
    def run(self, kind: str, request: int, fn: Any) -> None:
        with self._lock:
            if self._latest.get(kind) != request:
                return  # replaced before it started
        value, error = run_safely(fn)
        self.done.emit(kind, request, value, error)


class JobRunner(QObject):
    """Runs functions on one worker thread; only the newest request of each kind reports.

    Signals:
        finished(kind, value): the newest ``kind`` request returned ``value``.
        failed(kind, message): the newest ``kind`` request failed (one sentence).
    """

    finished = Signal(str, object)
    failed = Signal(str, str)
    _requested = Signal(str, int, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._latest: dict[str, int] = {}
        self._lock = threading.Lock()
        self.dropped = 0
        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-studio-jobs")
        self._worker = _JobWorker(self._latest, self._lock)
        self._worker.moveToThread(self._thread)
        self._requested.connect(self._worker.run)
        self._worker.done.connect(self._on_worker_done)
        self._thread.start()

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    def request(self, kind: str, fn: Callable[[], Any]) -> int:
        with self._lock:
            n = self._latest.get(kind, 0) + 1
            self._latest[kind] = n
        self._requested.emit(kind, n, fn)
        return n

    def _on_worker_done(self, kind: str, request: int, value: Any, error: str) -> None:
        if self._latest.get(kind) != request:
            self.dropped += 1
            return
        if error:
            self.failed.emit(kind, error)
        else:
            self.finished.emit(kind, value)

    def shutdown(self) -> None:
        self._thread.quit()
        self._thread.wait(10000)


class _ModelThreadWorker(QObject):
    checked = Signal(int, object, str)
    scored = Signal(int, object, str)
    progressed = Signal(int, int, int)

    def __init__(self, owner: ModelWorker) -> None:
        super().__init__()
        self._owner = owner
        self._model: Any = None
        self._model_key: str | None = None

    def model(self) -> Any:
        """The model's inference service, made on this thread on first use (one owner per model)."""
        path = self._owner.model_path
        if self._model is None or self._model_key != path:
            from fpsm_core.dadam.model_check import as_service

            self._model = as_service(path, "auto")
            self._model_key = path
        return self._model

    @Slot(int, object)
    def check(self, revision: int, job: Any) -> None:
        if revision != self._owner.latest_check:
            return
        value, error = run_safely(lambda: job(self.model()))
        self.checked.emit(revision, value, error)

    @Slot(int, object)
    def score(self, request: int, job: Any) -> None:
        cancel = self._owner.cancel_event

        def progress(done: int, total: int) -> None:
            self.progressed.emit(request, done, total)

        value, error = run_safely(lambda: job(self.model(), progress, cancel.is_set))
        self.scored.emit(request, value, error)


class ModelWorker(QObject):
    """The model's thread: checks of composites and scores of patch selections.

    Args:
        model_path: Checkpoint ``.json`` or ensemble folder (default: the bundled demo ensemble).

    Signals:
        check_finished(revision, CheckResult): the check of a composite revision.
        check_failed(revision, message): it could not be made (bad model, bad image...).
        score_progress(done, total), score_finished(value), score_failed(message).
    """

    check_finished = Signal(int, object)
    check_failed = Signal(int, str)
    score_progress = Signal(int, int)
    score_finished = Signal(object)
    score_failed = Signal(str)
    _check_requested = Signal(int, object)
    _score_requested = Signal(int, object)

    def __init__(self, model_path: str | Path | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        from fpsm_core.resources import default_model_path

        self.model_path = str(model_path) if model_path else str(default_model_path())
        self.latest_check = 0
        self.latest_score = 0
        self.cancel_event = threading.Event()
        self.scoring = False
        self._thread = QThread(self)
        self._thread.setObjectName("fpsm-studio-model")
        self._worker = _ModelThreadWorker(self)
        self._worker.moveToThread(self._thread)
        self._check_requested.connect(self._worker.check)
        self._score_requested.connect(self._worker.score)
        self._worker.checked.connect(self._on_worker_checked)
        self._worker.scored.connect(self._on_worker_scored)
        self._worker.progressed.connect(self._on_worker_progressed)
        self._thread.start()

    @property
    def worker_thread(self) -> QThread:
        return self._thread

    def check(self, revision: int, job: Callable[[Any], Any]) -> None:
        """Run ``job(ensemble)`` for a composite revision; an older pending check is skipped."""
        self.latest_check = revision
        self._check_requested.emit(revision, job)

    def score(
        self, job: Callable[[Any, Callable[[int, int], None], Callable[[], bool]], Any]
    ) -> int:
        """Run ``job(ensemble, progress, cancelled)``; returns the request number."""
        self.latest_score += 1
        self.cancel_event.clear()
        self.scoring = True
        self._score_requested.emit(self.latest_score, job)
        return self.latest_score

    def cancel_score(self) -> None:
        self.cancel_event.set()

    def _on_worker_checked(self, revision: int, value: Any, error: str) -> None:
        if revision != self.latest_check:
            return
        if error:
            self.check_failed.emit(revision, error)
        else:
            self.check_finished.emit(revision, value)

    def _on_worker_scored(self, request: int, value: Any, error: str) -> None:
        if request != self.latest_score:
            return
        self.scoring = False
        if error:
            self.score_failed.emit(error)
        else:
            self.score_finished.emit(value)

    def _on_worker_progressed(self, request: int, done: int, total: int) -> None:
        if request == self.latest_score:
            self.score_progress.emit(done, total)

    def shutdown(self) -> None:
        self.cancel_event.set()
        self._thread.quit()
        self._thread.wait(60000)

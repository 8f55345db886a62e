"""The viewer's logic for one window: requests to the service hub, answers into the state.

3D Slicer's Logic beside its Widget: no widgets here. :class:`ViewerSession` opens images, loads
models and runs inference through the :class:`~viewer.workers.ServiceHub`, puts each answer into
the :class:`~viewer.state.ViewerState` (the film, the AI panel and the level strip follow it), and
says what happened as signals the window shows: ``activity`` for the AI panel's status line,
``status`` and ``error`` (one sentence) for the status bar. Failures of every kind arrive here on
the hub's one ``failed`` signal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Signal

from fpsm_core.explain import ResultCams
from viewer import workers
from viewer.state import ViewerState
from viewer.workers import LoadedImage, ModelInfo, ServiceHub

if TYPE_CHECKING:
    from fpsm_core.inference import Result


class ViewerSession(QObject):
    """Drives the hub for one window's state.

    Signals:
        image_shown(path): the first pixels of a newly opened image are on screen.
        result_shown(Result): the findings of the image on screen are in the state.
        model_ready(ModelInfo): a model is loaded.
        activity(text): what the viewer is doing (the AI panel's status line).
        status(text), error(text): for the status bar.

    Attributes:
        current_path: the image last asked for (shown, or still loading).
        timings: milliseconds of the last open: ``load_ms``, ``first_pixel_ms``, ``findings_ms``,
            ``inference_ms``.
    """

    image_shown = Signal(str)
    result_shown = Signal(object)
    model_ready = Signal(object)
    activity = Signal(str)
    status = Signal(str)
    error = Signal(str)

    def __init__(self, state: ViewerState, hub: ServiceHub, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.hub = hub
        self.current_path: str | None = None
        self.timings: dict[str, float] = {}
        self._t_open = self._t_infer = 0.0
        self._pending_inference = False
        hub.image_loaded.connect(self._on_hub_image_loaded)
        hub.model_loaded.connect(self._on_hub_model_loaded)
        hub.result_ready.connect(self._on_hub_result_ready)
        hub.failed.connect(self._on_hub_failed)

    # -- requests ----------------------------------------------------------------------------
    def open_image(self, path: str) -> None:
        self.current_path = path
        self.state.show_result(None)
        self._t_open = time.perf_counter()
        self.activity.emit("Loading the image…")
        self.status.emit(f"Loading {Path(path).name}…")
        self.hub.request_image(path)

    def load_model(self, model: str | Path | None, device: str = "auto") -> None:
        """Switch models; the image on screen is analysed again when the new one is ready.

        The working model (and the findings on screen) stay until the new one has loaded, so a
        file that is not a model costs nothing but a message.
        """
        self.activity.emit("Loading the model…")
        self._pending_inference = self.state.image is not None
        self.hub.load_model(model, device)

    def rerun(self) -> None:
        if self.state.image is not None and self.state.model is not None:
            self._request_inference()

    def cancel_inference(self) -> None:
        """Forget the running inference, if the image on screen has no findings yet."""
        if self.state.result is None and self.state.image is not None:
            self.hub.cancel_inference()
            self.activity.emit("Inference cancelled (Ctrl+R runs it again).")

    def start_triage(self, paths: list[str]) -> bool:
        """Rank the worklist by its urgent findings; False (and an error) when it cannot run."""
        if self.state.model is None:
            self.error.emit("The model is not loaded yet, so triage cannot run.")
            return False
        if not paths:
            self.error.emit("The worklist is empty: open a folder first.")
            return False
        if self.hub.triage_running:
            return False
        self.hub.start_triage(paths, self.state.urgent)
        return True

    def _request_inference(self) -> None:
        if self.state.image is None:
            return
        self._pending_inference = False
        self._t_infer = time.perf_counter()
        self.activity.emit("Running the model…")
        self.hub.request_inference(self.state.image.image)

    # -- answers -----------------------------------------------------------------------------
    def _on_hub_image_loaded(self, _request_id: int, loaded: LoadedImage) -> None:
        self.state.set_image(loaded)
        self.timings["load_ms"] = loaded.load_ms
        self.timings["first_pixel_ms"] = (time.perf_counter() - self._t_open) * 1e3
        image = loaded.image
        notes = "; ".join(image.warnings)
        self.status.emit(
            f"{loaded.path.name}  {image.shape[1]}x{image.shape[0]}  "
            f"{image.photometric}  loaded in {loaded.load_ms:.0f} ms"
            + (f"  ·  {notes}" if notes else "")
        )
        self.image_shown.emit(str(loaded.path))
        if self.state.model is not None:
            self._request_inference()
        else:
            self._pending_inference = True

    def _on_hub_model_loaded(self, info: ModelInfo) -> None:
        self.state.set_model(info)
        self.activity.emit("Model ready.")
        self.model_ready.emit(info)
        if self._pending_inference:
            self._request_inference()

    def _on_hub_result_ready(self, _request_id: int, result: Result) -> None:
        try:
            cams = ResultCams(result) if result.cams is not None else None
        except Exception as exc:  # noqa: BLE001 - a CAM problem must not hide the findings
            cams = None
            self.error.emit(f"Heatmaps unavailable for this image: {exc}")
        self.state.show_result(result, cams)
        self.timings["findings_ms"] = (time.perf_counter() - self._t_open) * 1e3
        self.timings["inference_ms"] = (time.perf_counter() - self._t_infer) * 1e3
        self.result_shown.emit(result)

    def _on_hub_failed(self, kind: str, _request_id: int, message: str) -> None:
        if kind == workers.IMAGE:
            self.state.show_result(None)
            self.state.set_image(None)
            self.activity.emit("No image.")
        elif kind == workers.MODEL:
            self._pending_inference = False
            kept = self.state.model
            if kept is None:
                self.activity.emit("No model: findings unavailable.")
            else:
                message = f"{message.rstrip('.')}; still using the model {kept.name}."
                self.activity.emit(f"Model {kept.name} kept.")
        elif kind == workers.INFERENCE:
            self.activity.emit("Inference failed.")
        self.error.emit(message)

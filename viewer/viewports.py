"""Several viewports: 1x1, 1x2, 2x2 layouts of film views, priors and PA + lateral hung together.

A :class:`Viewport` wraps one :class:`~viewer.image_view.ImageViewWidget` with its own
:class:`~viewer.state.ViewerState` (its film, findings and overlay), corner text and orientation
markers. The first viewport is the main window's film and state (the AI panel, the level strip
and the session follow it); the others load through
:class:`~viewer.viewport_workers.ViewportServices` and get their own findings from the same model,
drawn on their own film. :class:`ViewportGrid` lays them out as the
:class:`~viewer.state.ReadingRoomState` says, highlights the active one, keeps them linked
(:mod:`viewer.view_links`), accepts worklist items dropped on a viewport, finds the open study's
priors in the study index and shows how the findings changed between two hung films.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QCheckBox,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from fpsm_core.compare import score_changes
from fpsm_core.explain import ResultCams
from fpsm_core.io import studies
from viewer.contours import ContourBinding
from viewer.corner_text import CornerText, format_date
from viewer.film_binding import FilmBinding
from viewer.ground_truth import GroundTruthBinding
from viewer.image_view import ImageViewWidget
from viewer.orientation import OrientationMarkers
from viewer.overlay_link import OverlayLink
from viewer.state import LAYOUTS, ReadingRoomState, ViewerState
from viewer.view_links import ViewLinker

if TYPE_CHECKING:
    from fpsm_core.inference import Result
    from fpsm_core.io.film_header import FilmHeader
    from fpsm_core.io.studies import StudyIndex
    from viewer.viewport_workers import ViewportServices
    from viewer.workers import LoadedImage, ModelInfo

MAX_VIEWPORTS = 4
# The active viewport's frame. Painted, not a style sheet: a style sheet set on every change of
# the active viewport re-polished the film view inside it, whose sizes then settled later.
ACTIVE_COLOUR = "#4fc3f7"
BORDER_PX = 2
DEFAULT_HANGING = ("PA", "AP", "LL", "RL", "LAT")


def paths_from_mime(mime: Any) -> list[str]:
    """Local file paths of a drag's data (worklist items and files from the desktop)."""
    if not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]


class Viewport(QFrame):
    """One film view with its own state, corner text and orientation markers.

    Signals:
        activated(index): the user pressed the mouse in it.
        dropped(index, path): a file was dropped on it.
        film_changed(index): its film (or its header) changed.
    """

    activated = Signal(int)
    dropped = Signal(int, str)
    film_changed = Signal(int)

    def __init__(
        self,
        index: int,
        state: ViewerState,
        view: ImageViewWidget | None,
        corners: Mapping[str, Sequence[str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setObjectName("viewport")
        self.index = index
        self.key = f"viewport{index}"
        self.state = state
        self.view = view if view is not None else ImageViewWidget()
        # The first viewport is the window's film: the window binds its heatmap and contours.
        self.binding = FilmBinding(state, self.view) if view is None else None
        self.contours = ContourBinding(state, self.view) if view is None else None
        self.gt_boxes = GroundTruthBinding(state, self.view) if view is None else None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(BORDER_PX, BORDER_PX, BORDER_PX, BORDER_PX)
        layout.addWidget(self.view)
        self.corners = CornerText(self.view, corners)
        self.markers = OrientationMarkers(self.view)
        self.header: FilmHeader | None = None
        self.frame: tuple[int, int] | None = None
        self.active = False
        self.view.graphics.viewport().installEventFilter(self)
        self.view.graphics.viewport().setAcceptDrops(True)

    @property
    def path(self) -> str | None:
        loaded = self.state.image
        return None if loaded is None else str(loaded.path)

    def set_header(self, header: FilmHeader | None) -> None:
        self.header = header
        self.corners.set_header(header)
        self.markers.set_header(header)
        self.film_changed.emit(self.index)

    def set_frame(self, frame: tuple[int, int] | None) -> None:
        self.frame = frame
        self.corners.set_frame(frame)

    def set_active(self, active: bool) -> None:
        """Framed in the accent colour while keys and the AI panel act on this viewport."""
        if bool(active) != self.active:
            self.active = bool(active)
            self.update()

    def paintEvent(self, event: Any) -> None:  # noqa: N802 (Qt name)
        super().paintEvent(event)
        if self.active:
            painter = QPainter(self)
            pen = QPen(QColor(ACTIVE_COLOUR))
            pen.setWidth(BORDER_PX)
            pen.setJoinStyle(Qt.PenJoinStyle.MiterJoin)
            painter.setPen(pen)
            half = BORDER_PX // 2
            painter.drawRect(self.rect().adjusted(half, half, -half, -half))
            painter.end()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        kind = event.type()
        if kind == QEvent.Type.MouseButtonPress:
            self.activated.emit(self.index)
        elif kind in (QEvent.Type.DragEnter, QEvent.Type.DragMove):
            if paths_from_mime(event.mimeData()):  # type: ignore[attr-defined]
                event.acceptProposedAction()  # type: ignore[attr-defined]
                return True
        elif kind == QEvent.Type.Drop:
            paths = paths_from_mime(event.mimeData())  # type: ignore[attr-defined]
            if paths:
                event.acceptProposedAction()  # type: ignore[attr-defined]
                self.activated.emit(self.index)
                self.dropped.emit(self.index, paths[0])
                return True
        return False


class ViewportGrid(QWidget):
    """The viewports of one window and the reading-room bar above them.

    Args:
        state: the main window's state (the first viewport's).
        view: the main window's film view (the first viewport).
        services: loader and inference for the other viewports.
        open_main: opens a path in the first viewport (the window's session).
        corners: the corner text fields per corner.

    Signals:
        film_loaded(index): a viewport's film is on screen (with its header).
        viewport_added(index): a viewport (and its state) was made.
        frame_shown(index): a film (or a frame of it) came from the viewports' loader.
        main_infer_requested(): the first viewport's frame wants findings (the session runs them).
        result_shown(index): a viewport's findings are in its state.
        error(message): one sentence for the status bar.
        status(message)
    """

    film_loaded = Signal(int)
    viewport_added = Signal(int)
    frame_shown = Signal(int)
    main_infer_requested = Signal()
    result_shown = Signal(int)
    error = Signal(str)
    status = Signal(str)

    def __init__(
        self,
        state: ViewerState,
        view: ImageViewWidget,
        services: ViewportServices,
        open_main: Callable[[str], None],
        corners: Mapping[str, Sequence[str]],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.room = ReadingRoomState(self)
        self.services = services
        # Weakly: a bound method of the window would tie the window's wrapper into a cycle.
        self._open_main_ref = weakref.WeakMethod(open_main) if inspect.ismethod(open_main) else None
        self._open_main_fn = None if inspect.ismethod(open_main) else open_main
        self._corners = dict(corners)
        self.index: StudyIndex | None = None
        self.hanging: tuple[str, ...] = DEFAULT_HANGING
        self.model: ModelInfo | None = None
        self.linker = ViewLinker(self)
        self._requests: dict[str, int] = {}
        self.viewports: list[Viewport] = []
        self.prior: tuple[str, str] | None = None  # (path, study date) of the prior hung

        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.setSpacing(2)
        self.bar = QWidget()
        bar = QHBoxLayout(self.bar)
        bar.setContentsMargins(4, 2, 4, 2)
        self.layout_buttons: dict[str, QPushButton] = {}
        for name in ("1x1", "1x2", "2x2"):
            button = QPushButton(name)
            button.setCheckable(True)
            button.setToolTip(f"Show {name} viewports")
            button.clicked.connect(lambda _c=False, n=name: self.room.set_layout(n))
            bar.addWidget(button)
            self.layout_buttons[name] = button
        self.link_box = QCheckBox("Link W/L, zoom, pan")
        self.link_box.setChecked(self.room.linked)
        self.link_box.toggled.connect(self.room.set_linked)
        bar.addWidget(self.link_box)
        self.prior_button = QPushButton("Compare with prior")
        self.prior_button.setToolTip("Hang the same patient's previous study on the right")
        self.prior_button.clicked.connect(self.compare_with_prior)
        bar.addWidget(self.prior_button)
        self.views_button = QPushButton("PA + lateral")
        self.views_button.setToolTip("Hang the other views of this study beside it")
        self.views_button.clicked.connect(self.hang_study_views)
        bar.addWidget(self.views_button)
        self.change_label = QLabel("")
        self.change_label.setObjectName("scoreChanges")
        self.change_label.setWordWrap(True)
        bar.addWidget(self.change_label, 1)
        outer.addWidget(self.bar)
        self.grid = QGridLayout()
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(2)
        outer.addLayout(self.grid, 1)

        first = Viewport(0, state, view, self._corners)
        self._add(first)
        self.overlays = OverlayLink(self)  # one overlay look while linked (viewer/overlay_link.py)
        state.image_changed.connect(lambda loaded: self._on_state_image_changed(first, loaded))
        state.result_changed.connect(lambda _r: self._update_changes())
        # One box file for every viewport: each draws the boxes of its own film.
        state.ground_truth_changed.connect(self._on_main_ground_truth_changed)
        services.loaded.connect(self._on_services_loaded)
        services.header_read.connect(self._on_services_header_read)
        services.result_ready.connect(self._on_services_result_ready)
        services.failed.connect(self._on_services_failed)
        self.room.layout_changed.connect(self._on_room_layout_changed)
        self.room.active_changed.connect(self._on_room_active_changed)
        self.room.linked_changed.connect(self._on_room_linked_changed)
        self.room.phi_hidden_changed.connect(self._on_room_phi_hidden_changed)
        self._on_room_layout_changed(self.room.layout)
        self._on_room_active_changed(0)

    def _open_main(self, path: str) -> None:
        fn = self._open_main_ref() if self._open_main_ref is not None else self._open_main_fn
        if fn is not None:
            fn(path)

    # -- viewports --------------------------------------------------------------------------
    def _add(self, viewport: Viewport) -> None:
        viewport.activated.connect(self.room.set_active)
        viewport.dropped.connect(self._on_viewport_dropped)
        viewport.corners.set_phi_hidden(self.room.phi_hidden)
        self.viewports.append(viewport)
        self.viewport_added.emit(viewport.index)

    def _ensure(self, count: int) -> None:
        while len(self.viewports) < min(count, MAX_VIEWPORTS):
            state = ViewerState(self)
            state.set_model(self.model)
            state.set_ground_truth(self.viewports[0].state.ground_truth)
            viewport = Viewport(len(self.viewports), state, None, self._corners)
            state.image_changed.connect(
                lambda loaded, v=viewport: self._on_state_image_changed(v, loaded)
            )
            state.result_changed.connect(lambda _r: self._update_changes())
            self._add(viewport)

    def _on_main_ground_truth_changed(self, ground_truth: Any) -> None:
        for viewport in self.viewports[1:]:
            viewport.state.set_ground_truth(ground_truth)

    @property
    def active(self) -> Viewport:
        return self.viewports[self.room.active]

    def shown(self) -> list[Viewport]:
        """The viewports of the current layout, in reading order."""
        return self.viewports[: self.room.cells]

    def set_layout(self, layout: str) -> None:
        self.room.set_layout(layout)

    def set_model(self, info: ModelInfo | None) -> None:
        self.model = info
        for viewport in self.viewports[1:]:
            viewport.state.set_model(info)
            if info is not None and viewport.state.image is not None:
                self._infer(viewport)

    def set_index(self, index: StudyIndex) -> None:
        self.index = index
        self._update_buttons()

    def set_corners(self, corners: Mapping[str, Sequence[str]]) -> None:
        self._corners = dict(corners)
        for viewport in self.viewports:
            viewport.corners.set_corners(corners)

    # -- opening ----------------------------------------------------------------------------
    def open_in(self, index: int, path: str | Path, frame: int = 0) -> None:
        """Show a file in viewport ``index`` (the first: through the window's session).

        ``frame`` > 0 (or a frame of the film already shown) loads through the viewports' own
        loader, for the first viewport too, so stepping frames never re-opens the study.
        """
        if index >= self.room.cells:
            needed = "2x2" if index >= 2 else "1x2"
            self.room.set_layout(needed)
        self._ensure(index + 1)
        viewport = self.viewports[index]
        if index == 0 and frame == 0 and viewport.path != str(Path(path)):
            self._open_main(str(path))
            return
        self._requests[viewport.key] = self.services.request_load(viewport.key, path, frame)

    def hang(self, paths: Sequence[str | Path], layout: str | None = None) -> None:
        """Hang files left to right, top to bottom (the layout grows to fit, up to 2x2)."""
        paths = list(paths)[:MAX_VIEWPORTS]
        if layout is None:
            layout = "1x1" if len(paths) <= 1 else "1x2" if len(paths) == 2 else "2x2"
        self.room.set_layout(layout)
        for i, path in enumerate(paths[: self.room.cells]):
            main_shows = i == 0 and self.viewports[0].path == str(Path(path))
            if not main_shows:
                self.open_in(i, path)

    def compare_with_prior(self) -> bool:
        """Current study left, the newest prior (same view) right; False when there is none."""
        current = self.viewports[0].path
        if current is None:
            self.error.emit("Open a study first to compare it with a prior.")
            return False
        if self.index is None:
            self.error.emit("Priors are found in a study index: open the patient's folder.")
            return False
        priors = studies.prior_studies(self.index, current)
        if not priors:
            self.error.emit("No earlier study of this patient in the open folder.")
            return False
        here = studies.locate(self.index, current)
        view = here.image.view_position if here is not None else None
        image = studies.best_match(priors[0], view)
        if image is None:
            self.error.emit("The prior study has no readable image.")
            return False
        self.room.set_layout("1x2")
        self.open_in(1, image.path)
        self.prior = (str(image.path), priors[0].study_date or "")
        count = f"{len(priors)} prior stud{'y' if len(priors) == 1 else 'ies'} found"
        self.status.emit(f"Prior of {format_date(priors[0].study_date)} on the right ({count}).")
        return True

    def hang_study_views(self) -> bool:
        """The views of the open study side by side, in the hanging preference's order."""
        current = self.viewports[0].path
        here = studies.locate(self.index, current) if self.index and current else None
        if here is None:
            self.error.emit("Open a study from a folder to hang its views together.")
            return False
        ordered = studies.hanging_order(here.study.images, self.hanging)
        if len(ordered) < 2:
            self.error.emit("This study has one view only.")
            return False
        others = [img.path for img in ordered if str(img.path) != current]
        first = ordered[0].path
        if str(first) != current:  # the preferred view goes left: the main film follows it
            others = [img.path for img in ordered[1:]]
            self._open_main(str(first))
        self.room.set_layout("1x2" if len(ordered) == 2 else "2x2")
        for i, path in enumerate(others[: self.room.cells - 1], start=1):
            self.open_in(i, path)
        return True

    def _update_buttons(self) -> None:
        current = self.viewports[0].path
        has_index = self.index is not None and current is not None
        self.prior_button.setEnabled(
            bool(has_index and studies.prior_studies(self.index, current))  # type: ignore[arg-type]
        )
        here = studies.locate(self.index, current) if has_index else None  # type: ignore[arg-type]
        self.views_button.setEnabled(here is not None and len(here.study.images) > 1)

    # -- answers ----------------------------------------------------------------------------
    def _viewport(self, key: str) -> Viewport | None:
        return next((v for v in self.viewports if v.key == key), None)

    def _on_services_loaded(self, key: str, request_id: int, loaded: LoadedImage) -> None:
        viewport = self._viewport(key)
        if viewport is None or self._requests.get(key) != request_id:
            return
        # Another frame of the film shown keeps the reader's orientation, zoom and window.
        view = viewport.view
        same = viewport.path == str(loaded.path) and view.image is not None
        if viewport.index == 0 and not same:
            return  # the session opened another study meanwhile: this frame is stale
        saved = (view.orientation, view.view.viewRect(), view.window_level) if same else None
        viewport.state.show_result(None)
        viewport.state.set_image(loaded)
        if saved is not None:
            restore_view(view, *saved)
        self.frame_shown.emit(viewport.index)
        if not same:  # a new film's findings now; a frame's once stepping settles (frames.py)
            self._infer(viewport)

    def infer(self, index: int) -> None:
        """Run the findings of viewport ``index``'s film (the first: through the session)."""
        if index == 0:
            self.main_infer_requested.emit()
        elif index < len(self.viewports):
            self._infer(self.viewports[index])

    def _infer(self, viewport: Viewport) -> None:
        if viewport.index == 0 or viewport.state.image is None or self.model is None:
            return
        self.services.request_inference(viewport.key, viewport.state.image.image)

    def _on_services_result_ready(self, key: str, _request_id: int, result: Result) -> None:
        viewport = self._viewport(key)
        loaded = viewport.state.image if viewport is not None else None
        if viewport is None or loaded is None or result.path not in (None, str(loaded.path)):
            return
        try:
            cams = ResultCams(result) if result.cams is not None else None
        except Exception as exc:  # noqa: BLE001 - a CAM problem must not hide the findings
            cams = None
            self.error.emit(f"Heatmaps unavailable for this image: {exc}")
        viewport.state.show_result(result, cams)
        self.result_shown.emit(viewport.index)

    def _on_services_failed(self, key: str, _request_id: int, message: str) -> None:
        self.error.emit(message)

    def _on_state_image_changed(self, viewport: Viewport, loaded: LoadedImage | None) -> None:
        if loaded is None:
            viewport.set_header(None)
            return
        image = loaded.image
        viewport.set_frame((image.frame, image.n_frames) if image.n_frames > 1 else None)
        if viewport.header is not None and str(loaded.path) == getattr(
            viewport, "_header_path", None
        ):
            viewport.corners.refresh()
            viewport.markers.refresh()
            self.film_loaded.emit(viewport.index)
            return
        viewport.header = None
        viewport._header_path = str(loaded.path)  # type: ignore[attr-defined]
        self.services.request_header(viewport.key, loaded.path)
        if viewport.index == 0:
            self._update_buttons()

    def _on_services_header_read(self, key: str, _request_id: int, header: FilmHeader) -> None:
        viewport = self._viewport(key)
        if viewport is None or viewport.state.image is None:
            return
        viewport.set_header(header)
        self.film_loaded.emit(viewport.index)

    def _on_viewport_dropped(self, index: int, path: str) -> None:
        self.open_in(index, path)

    # -- layout and links -------------------------------------------------------------------
    def _on_room_layout_changed(self, layout: str) -> None:
        rows, cols = LAYOUTS[layout]
        self._ensure(rows * cols)
        for viewport in self.viewports:
            self.grid.removeWidget(viewport)
            viewport.hide()
        for i, viewport in enumerate(self.shown()):
            self.grid.addWidget(viewport, i // cols, i % cols)
            viewport.show()
        for name, button in self.layout_buttons.items():
            button.setChecked(name == layout)
        self.linker.set_views([v.view for v in self.shown()])
        self._on_room_active_changed(self.room.active)  # marked once there are two to tell apart
        self.bar.setVisible(True)
        self._update_changes()

    def _on_room_active_changed(self, index: int) -> None:
        for viewport in self.viewports:
            viewport.set_active(viewport.index == index and self.room.cells > 1)

    def _on_room_linked_changed(self, linked: bool) -> None:
        self.linker.enabled = linked
        if not linked:
            self.linker.end_previews()  # unlinked mid-drag: the followers' exact frames now
        self.link_box.setChecked(linked)

    def _on_room_phi_hidden_changed(self, hidden: bool) -> None:
        for viewport in self.viewports:
            viewport.corners.set_phi_hidden(hidden)

    def _update_changes(self) -> None:
        shown = self.shown()
        if len(shown) < 2:
            self.change_label.setText("")
            return
        left, right = shown[0].state.result, shown[1].state.result
        if left is None or right is None:
            self.change_label.setText("")
            return
        # The right-hand film is the prior when one was hung: change = left (current) - right.
        changes = score_changes(right, left, top=3)
        title = "Left vs right: "
        if self.prior is not None and shown[1].path == self.prior[0]:
            title = f"Since the prior of {format_date(self.prior[1])}: "
        text = ";  ".join(c.text() for c in changes)
        self.change_label.setText(title + text if changes else "")

    def score_changes(self) -> list[Any]:
        shown = self.shown()
        if len(shown) < 2 or shown[0].state.result is None or shown[1].state.result is None:
            return []
        return score_changes(shown[1].state.result, shown[0].state.result)


def restore_view(view: ImageViewWidget, orientation: Any, rect: Any, window: Any) -> None:
    """Put a view's orientation, visible part and window back after a new frame of one film."""
    view.set_orientation(orientation)
    view.view.setRange(rect=rect, padding=0.0)
    view.set_window(*window)

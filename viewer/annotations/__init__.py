"""Measuring and annotating on the film: one controller per film view, a panel, the wiring.

:class:`~viewer.annotations.controller.AnnotationController` attaches to ONE
:class:`~viewer.image_view.ImageViewWidget` and a :class:`~viewer.state.ViewerState` (so a layout
of several viewports makes one per viewport); the model and the maths are Qt-free in
:mod:`fpsm_core.annotations`.
"""

from viewer.annotations.controller import AnnotationController
from viewer.annotations.panel import AnnotationPanel

__all__ = ["AnnotationController", "AnnotationPanel"]

"""The model package's user-facing error, kept below every module of the package.

:mod:`fpsm_core.model.weights` (imported by the architecture for ``backbone_weights``) and
:mod:`fpsm_core.model.checkpoint` (which builds the architecture) both raise it, so it lives in
neither: that keeps the package free of import cycles. ``fpsm_core.model.checkpoint.CheckpointError``
still names it.
"""

from __future__ import annotations

from fpsm_core.errors import FpsmError


class CheckpointError(FpsmError):
    """A checkpoint that cannot be trusted or read; the message names the file and the problem."""

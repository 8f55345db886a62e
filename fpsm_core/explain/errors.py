"""The one exception type of :mod:`fpsm_core.explain`: a request a user can get wrong.

Class indices out of range, unknown CAM methods, levels a model does not have, boxes outside an
image, directories that cannot be written: each raises :class:`ExplainError` with one sentence naming
what (and, for files, which file) is wrong. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations

from fpsm_core.errors import FpsmError


class ExplainError(FpsmError):
    """A CAM or localisation request that cannot be served; the message is one sentence."""

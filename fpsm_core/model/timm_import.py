"""Import timm without importing TorchDynamo: ~160 MiB and ~1.2 s less for every model we load.

``import timm`` imports every timm model file and, through ``timm.layers``, torchvision, whose
``ops.roi_align`` runs ``from torch._dynamo.utils import is_compile_supported`` at import time;
timm's NaFlexViT decorates its methods with ``torch.compiler.disable``, which imports
``torch._dynamo`` too. TorchDynamo pulls in sympy, triton (and its 86 MiB library) and
``torch._inductor``: measured here (torch 2.14.1, timm 1.0.31, torchvision 0.29.1, CPU), ``import
torch, timm`` took 924 MiB RSS and 2,701 modules, 763 MiB and 1,834 modules without them, and no
FPSM forward pass, CAM or checkpoint load uses the compiler.

So the first ``import timm`` runs with both hooks deferred rather than removed:

- ``torch._dynamo.utils`` is a placeholder module for that one import. Its
  ``is_compile_supported`` (the name torchvision keeps) imports the real function the first time
  it is called; any other name asked of it (``from torch._dynamo.utils import counters``, as
  TorchDynamo's own modules do if another thread imports it meanwhile) replaces the placeholder
  with the real module on the spot. The placeholder leaves ``sys.modules`` when the import ends.
- ``torch.compiler.disable`` is, for that import, a decorator that calls the real
  ``torch.compiler.disable`` on the function the first time the function runs, so the functions
  timm decorates behave as before (they are compiled nowhere in this project).

When TorchDynamo is already imported (e.g. by training code that calls ``torch.compile``) or
timm is, this is a plain ``import timm``.
"""

from __future__ import annotations

import functools
import importlib
import sys
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch

_UTILS = "torch._dynamo.utils"
_lock = threading.Lock()


class _DeferredDynamoUtils(types.ModuleType):
    """Stands in for ``torch._dynamo.utils`` while timm is imported; see the module docstring."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # inspect.getmodule & co. probe dunders on every module
            raise AttributeError(name)
        if sys.modules.get(_UTILS) is self:
            del sys.modules[_UTILS]
        return getattr(importlib.import_module(_UTILS), name)


def _is_compile_supported(device_type: str) -> bool:
    from torch._dynamo.utils import is_compile_supported

    return bool(is_compile_supported(device_type))


def _deferred_disable(real: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.compiler.disable`` that applies ``real`` when the decorated function first runs."""

    def disable(fn: Callable[..., Any] | None = None, recursive: bool = True, **kwargs: Any) -> Any:
        if fn is None:
            return functools.partial(disable, recursive=recursive, **kwargs)
        disabled: Callable[..., Any] | None = None

        @functools.wraps(fn)
        def call(*args: Any, **kw: Any) -> Any:
            nonlocal disabled
            if disabled is None:
                disabled = real(fn, recursive, **kwargs)
            return disabled(*args, **kw)

        return call

    return disable


@contextmanager
def dynamo_deferred() -> Iterator[None]:
    """Within this block, importing timm (and torchvision) does not import ``torch._dynamo``."""
    with _lock:
        if "torch._dynamo" in sys.modules or _UTILS in sys.modules:
            yield
            return
        placeholder = _DeferredDynamoUtils(_UTILS)
        placeholder.is_compile_supported = _is_compile_supported  # type: ignore[attr-defined]
        real_disable = torch.compiler.disable
        sys.modules[_UTILS] = placeholder
        torch.compiler.disable = _deferred_disable(real_disable)  # type: ignore[assignment]
        try:
            yield
        finally:
            torch.compiler.disable = real_disable
            if sys.modules.get(_UTILS) is placeholder:
                del sys.modules[_UTILS]


with dynamo_deferred():
    import timm as timm

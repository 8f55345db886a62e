"""Build a model straight from its weights: no random initialisation, no second copy.

Loading a checkpoint the plain way builds the architecture with freshly initialised weights
(~0.9 s and 118 MB for a TResNet-M FPSM), then copies the file's tensors over them, so for a
moment the process holds every weight twice. Instead the architecture is built on PyTorch's
``meta`` device (shapes only), and ``load_state_dict(assign=True)`` makes the file's tensors the
model's own. safetensors memory-maps the file copy-on-write, so float32 weights stay backed by the
page cache (shared by every process that loads the same file, and never written back). Buffers a
state dict does not carry (timm's non-persistent ones, e.g. TResNet's blur filters) are rebuilt
with timm's ``init_non_persistent_buffers``; a module without that hook makes the loader fall
back to the plain build, so every architecture still loads.

The initialisers the architecture runs (``nn.init.*``, ``tensor.normal_()``...) are skipped on
the meta tensors rather than run on them: they would write nothing, and on the meta device
``normal_`` goes through PyTorch's Python reference implementation, which imports TorchDynamo
(and with it sympy and triton, ~160 MiB; see :mod:`fpsm_core.model.timm_import`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

M = TypeVar("M", bound=nn.Module)

# In-place methods that only write values (what initialisers call); shape, dtype and flags stay.
_VALUE_WRITES = frozenset(
    {
        "normal_",
        "uniform_",
        "fill_",
        "zero_",
        "copy_",
        "erfinv_",
        "mul_",
        "add_",
        "sub_",
        "div_",
        "clamp_",
        "exponential_",
        "bernoulli_",
        "random_",
        "log_normal_",
        "cauchy_",
        "geometric_",
    }
)


class _SkipInitOnMeta(TorchFunctionMode):
    """Initialisers and value writes on meta tensors return the tensor untouched."""

    def __torch_function__(
        self,
        func: Callable[..., object],
        types: object,
        args: tuple[object, ...] = (),
        kwargs: dict[str, object] | None = None,
    ) -> object:
        first = args[0] if args else (kwargs or {}).get("tensor")  # nn.init passes by keyword
        if isinstance(first, torch.Tensor) and first.is_meta:
            name = getattr(func, "__name__", "")
            if name in _VALUE_WRITES or getattr(func, "__module__", "") == "torch.nn.init":
                return first
        return func(*args, **(kwargs or {}))


def build_on_meta(build: Callable[[], M]) -> M:
    """``build()`` with every tensor on the meta device (no memory, no initialisation)."""
    with torch.device("meta"), _SkipInitOnMeta():
        return build()


def assign_weights(skeleton: M, state: Mapping[str, torch.Tensor]) -> bool:
    """Make ``state``'s tensors the weights of a meta-device ``skeleton``, in place.

    Args:
        skeleton: A module built by :func:`build_on_meta`.
        state: A complete state dict for it (``strict``: a missing or unexpected key or a wrong
            shape raises ``RuntimeError`` as ``load_state_dict`` does).

    Returns:
        True when no tensor is left on the meta device; False when a module holds a buffer the
        state dict does not carry and cannot rebuild it (the caller builds the plain way).
    """
    skeleton.load_state_dict(dict(state), strict=True, assign=True)
    for module in skeleton.modules():
        missing = [n for n, b in module._buffers.items() if b is not None and b.is_meta]
        if not missing:
            continue
        rebuild = getattr(module, "init_non_persistent_buffers", None)
        if rebuild is None:
            return False
        for name in missing:
            buffer = module._buffers[name]
            assert buffer is not None
            # Not ``empty_like``: on a meta tensor it runs a Python reference that imports sympy.
            module._buffers[name] = torch.empty(buffer.shape, dtype=buffer.dtype, device="cpu")
        rebuild()
    return not any(t.is_meta for t in (*skeleton.parameters(), *skeleton.buffers()))


def build_with_weights(build: Callable[[], M], state: Mapping[str, torch.Tensor]) -> M:
    """The module ``build()`` makes, holding ``state``'s tensors (see the module docstring).

    Raises:
        RuntimeError: ``state`` does not fit the architecture (from ``load_state_dict``).
    """
    model = build_on_meta(build)
    if assign_weights(model, state):
        return model
    model = build()
    model.load_state_dict(dict(state), strict=True)
    return model


class _Upcast(nn.Module):
    """A parametrization: the stored (half-precision) tensor, read as float32."""

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored.float()


def compute_in_float32(model: M) -> M:
    """Keep half-precision parameters as stored and read each as float32 when a layer uses it.

    A float16 checkpoint upcast at load holds twice the memory of its file (the demo ensemble:
    ~80 MB more; three TResNet-M members: ~177 MB more). Read through a parametrization, each
    weight is cast when its layer runs and dropped after, so the outputs are exactly those of the
    upcast model (the same float32 values meet the same operations) at the memory of the file;
    the cost is one cast per weight per forward pass. Buffers (batch-norm statistics) must be
    float32 for the float32 batch norm and are cast here, once; they are small.

    For models used for inference: the state dict of a model treated so names the stored
    tensors ``<module>.parametrizations.<name>.original`` (:func:`plain_state_dict` undoes it).
    """
    from torch.nn.utils import parametrize

    for module in list(model.modules()):
        for name, buffer in list(module._buffers.items()):
            if buffer is not None and buffer.dtype in (torch.float16, torch.bfloat16):
                module._buffers[name] = buffer.float()
        for name, param in list(module._parameters.items()):
            if param is not None and param.dtype in (torch.float16, torch.bfloat16):
                parametrize.register_parametrization(module, name, _Upcast(), unsafe=True)
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` under the module's own names, parametrized tensors as they are read."""
    from torch.nn.utils import parametrize

    state = dict(model.state_dict())
    for prefix, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        dot = f"{prefix}." if prefix else ""
        for name in list(module.parametrizations.keys()):  # type: ignore[union-attr]
            state.pop(f"{dot}parametrizations.{name}.original", None)
            state[f"{dot}{name}"] = getattr(module, name).detach()
    return state

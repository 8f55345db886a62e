"""CAMs that have no closed form, through the grad-cam package, batched and leak-free.

Grad-CAM of the *summed* FPSM logit at a shallow level (its gradient also flows through the deeper
levels), Grad-CAM++, HiResCAM, LayerCAM, XGrad-CAM, EigenCAM and Score-CAM all need the package.
Every (image, class) pair becomes one row of a batch, so one forward and one backward pass serve
``batch_size`` targets. Each CAM object lives only inside its context manager, which removes its
hooks even when something fails; the package's own ``__exit__`` silently swallows ``IndexError``,
so one raised inside is re-raised as ``RuntimeError`` instead of being lost. The model's train/eval
mode and its parameters' ``.grad`` are restored afterwards (the package calls ``model.eval()`` and
leaves gradients behind).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from fpsm_core.explain.closed_form import ClassSpec, resolve_classes
from fpsm_core.explain.errors import ExplainError
from fpsm_core.model.fpsm import FPSM

Target = Literal["level", "sum"]

# name -> grad-cam class name; imported lazily (the package pulls in matplotlib and scipy).
METHODS: dict[str, str] = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "xgradcam": "XGradCAM",
    "eigencam": "EigenCAM",
    "scorecam": "ScoreCAM",
}
# Methods whose map does not depend on the target class: computed once per image.
CLASS_FREE = frozenset({"eigencam"})


class _Logits(nn.Module):
    """The FPSM seen as a classifier: one level's logits, or the summed logits."""

    def __init__(self, model: FPSM, level_position: int | None) -> None:
        super().__init__()
        self.model = model
        self.level_position = level_position
        self.synthetic: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        synthetic = self.synthetic
        if synthetic is not None and synthetic.numel() == 1 and x.shape[0] != 1:
            synthetic = synthetic.reshape(1).expand(x.shape[0])  # Score-CAM's masked batches
        if self.level_position is None:
            return self.model(x, synthetic)
        return self.model.forward_levels(x, synthetic)[self.level_position]


def _method_class(method: str) -> Any:
    import pytorch_grad_cam

    key = method.lower()
    if key not in METHODS:
        raise ExplainError(
            f"unknown CAM method {method!r}; choose one of {', '.join(sorted(METHODS))}."
        )
    return getattr(pytorch_grad_cam, METHODS[key])


@contextlib.contextmanager
def _preserve(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    grads = {p: p.grad for p in model.parameters()}
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        model.train(was_training)
        for p, g in grads.items():
            p.grad = g


def _run_cam(
    cam_cls: Any,
    wrapper: _Logits,
    layers: list[nn.Module],
    x: torch.Tensor,
    rows: list[tuple[int, int]],
    class_index: np.ndarray,
    synthetic: torch.Tensor | None,
    batch_size: int,
    score_batch: int,
) -> np.ndarray:
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    outs = []
    with cam_cls(model=wrapper, target_layers=layers) as cam:
        cam.batch_size = score_batch  # read by Score-CAM only: masked copies per forward pass
        try:
            for start in range(0, len(rows), batch_size):
                chunk = rows[start : start + batch_size]
                images = torch.as_tensor([b for b, _ in chunk], device=x.device)
                targets = [ClassifierOutputTarget(int(class_index[b, k])) for b, k in chunk]
                wrapper.synthetic = None if synthetic is None else synthetic[images]
                outs.append(cam(input_tensor=x[images], targets=targets))
                cam.outputs = None  # drop the retained graph now, not at garbage collection
        except IndexError as exc:  # the package's __exit__ would swallow it
            raise RuntimeError(f"grad-cam raised IndexError: {exc}") from exc
        finally:
            wrapper.synthetic = None
    return np.concatenate(outs, axis=0)


def package_cams(
    model: FPSM,
    images: torch.Tensor,
    method: str = "gradcam",
    target: Target = "level",
    levels: Sequence[int] | None = None,
    classes: ClassSpec = None,
    *,
    batch_size: int = 8,
    synthetic: torch.Tensor | None = None,
) -> np.ndarray:
    """CAMs computed by the grad-cam package, one map per image, class and level.

    Args:
        model: an FPSM; it is run in eval mode and its mode and gradients are restored after.
        images: (B, C, H, W) model input.
        method: one of :data:`METHODS` (``gradcam``, ``gradcam++``, ``hirescam``, ``layercam``,
            ``xgradcam``, ``eigencam``, ``scorecam``).
        target: ``"level"``: level l's own logit at level l (what the closed form computes);
            ``"sum"``: the model's summed logit at each level.
        levels: paper level numbers to map (default all of the model's).
        classes: see :func:`~fpsm_core.explain.closed_form.resolve_classes` (no ``top_k`` here).
        batch_size: (image, class) rows per forward/backward pass; Score-CAM uses it for its
            masked copies and runs one row at a time.
        synthetic: the model's synthetic-image flags (B,), if it has the embedding.

    Returns:
        float32 (B, K, L, H, W) in [0, 1], at the input size as the package returns it.
    """
    if images.ndim != 4:
        raise ExplainError(f"images must be (B, C, H, W), not shape {tuple(images.shape)}.")
    if target not in ("level", "sum"):
        raise ExplainError(f"target must be 'level' or 'sum', not {target!r}.")
    if batch_size < 1:
        raise ExplainError(f"batch_size must be at least 1, not {batch_size}.")
    key = method.lower()
    if key not in METHODS:
        raise ExplainError(
            f"unknown CAM method {method!r}; choose one of {', '.join(sorted(METHODS))}."
        )
    chosen = tuple(model.levels) if levels is None else tuple(int(lv) for lv in levels)
    missing = [lv for lv in chosen if lv not in model.levels]
    if missing or not chosen:
        raise ExplainError(
            f"levels {list(chosen)} are not among the model's levels {model.levels}."
        )
    batch = images.shape[0]
    class_index = resolve_classes(classes, batch, model.num_classes)
    n_classes = class_index.shape[1]
    class_free = key in CLASS_FREE
    rows = [
        (b, 0 if class_free else k)
        for b in range(batch)
        for k in range(1 if class_free else n_classes)
    ]
    device = next(model.parameters()).device
    with torch.inference_mode(False):  # callers may sit in inference mode; autograd needs out
        x = images.to(device).clone()  # a normal tensor even if ``images`` is an inference one
    flags = None if synthetic is None else torch.as_tensor(synthetic, device=device).reshape(-1)
    step = 1 if key == "scorecam" else batch_size
    taps = model.level_modules
    positions = [model.levels.index(lv) for lv in chosen]

    # One CAM per level: with several target layers the package pairs activations (forward
    # order) with gradients (reverse arrival order), which mismatches when levels run deep-first.
    cam_cls = _method_class(key)
    per_level: list[np.ndarray] = []
    with _preserve(model):
        for p in positions:
            wrapper = _Logits(model, None if target == "sum" else p)
            per_level.append(
                _run_cam(cam_cls, wrapper, [taps[p]], x, rows, class_index, flags, step, batch_size)
            )
    stacked = np.stack(per_level, axis=1)  # (rows, L, H, W)
    out = stacked.reshape(batch, -1, *stacked.shape[1:])
    if class_free:
        out = np.repeat(out, n_classes, axis=1)
    return out.astype(np.float32, copy=False)

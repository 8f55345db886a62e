"""Exact per-level Grad-CAM of an FPSM from one forward pass, without a backward pass.

Level l's logit for class c is ``W_l[c] . mean_xy(A_l) + b_l[c]`` (plus a synthetic-image embedding
term that does not depend on the features), so its gradient with respect to the level's feature map
``A_l`` (K_l x H x W) is ``W_l[c, k] / (H W)`` at every pixel. Grad-CAM's channel weights are the
spatial means of that gradient, hence

    GradCAM_{c,l} = ReLU( sum_k W_l[c, k] A_l[k] / (H W) ),

one einsum per level for every class at once. The maps equal the grad-cam package's ``GradCAM`` of
``model.forward_levels(x)[l]`` at ``model.level_modules[l]``, after the same normalisation
(:mod:`fpsm_core.explain.normalise`). This holds for the per-level logits only; the *summed* logit's
gradient at a shallow level also flows through the deeper levels (use :mod:`fpsm_core.explain.package`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from fpsm_core.explain.camset import CamSet
from fpsm_core.explain.errors import ExplainError
from fpsm_core.labels import LABEL_INDEX
from fpsm_core.model.fpsm import FPSM, FPSMOutput

ClassSpec = int | str | Sequence[int | str] | np.ndarray | None


def resolve_classes(
    classes: ClassSpec,
    batch_size: int,
    num_classes: int,
    *,
    top_k: int | None = None,
    scores: np.ndarray | torch.Tensor | None = None,
    label_index: Mapping[str, int] = LABEL_INDEX,
) -> np.ndarray:
    """Turn a class request into a (B, K) array of class indices.

    Args:
        classes: None (every class, or the ``top_k`` best), one index or label name, a sequence
            of them (the same for every image), or a (B, K) integer array (per image).
        batch_size: B.
        num_classes: the model's C, for range checks.
        top_k: with ``classes=None``, the K highest-scoring classes of each image, best first.
        scores: (B, C) logits or probabilities ranking the classes for ``top_k``.
        label_index: label name -> index, for names.
    """
    if classes is None:
        if top_k is None:
            return np.tile(np.arange(num_classes, dtype=np.int64), (batch_size, 1))
        if scores is None:
            raise ExplainError("top_k needs the scores that rank the classes.")
        if not 1 <= top_k <= num_classes:
            raise ExplainError(f"top_k must be between 1 and {num_classes}, not {top_k}.")
        s = scores.detach().float().cpu().numpy() if isinstance(scores, torch.Tensor) else scores
        s = np.asarray(s, dtype=np.float64).reshape(batch_size, num_classes)
        return np.argsort(-s, axis=1, kind="stable")[:, :top_k].astype(np.int64)
    if top_k is not None:
        raise ExplainError("give either classes or top_k, not both.")
    if isinstance(classes, int | str | np.integer):
        classes = [classes]
    arr = np.asarray(classes)
    if arr.dtype.kind in "US":
        unknown = [str(n) for n in arr.ravel() if str(n) not in label_index]
        if unknown:
            raise ExplainError(f"unknown class name {unknown[0]!r}.")
        arr = np.vectorize(lambda n: label_index[str(n)], otypes=[np.int64])(arr)
    if arr.dtype.kind not in "iu":
        raise ExplainError(f"classes must be indices or label names, not {arr.dtype} values.")
    arr = arr.astype(np.int64)
    if arr.ndim == 1:
        arr = np.tile(arr, (batch_size, 1))
    if arr.ndim != 2 or arr.shape[0] != batch_size or arr.shape[1] == 0:
        raise ExplainError(
            f"classes of shape {arr.shape} do not fit a batch of {batch_size} images."
        )
    bad = arr[(arr < 0) | (arr >= num_classes)]
    if bad.size:
        raise ExplainError(
            f"class index {int(bad[0])} is out of range for a model with {num_classes} classes."
        )
    return arr


@contextlib.contextmanager
def _no_autocast(device: torch.device) -> Iterator[None]:
    # Under the inference service's fp16 autocast an einsum would run in half precision.
    try:
        ctx: Any = torch.autocast(device_type=device.type, enabled=False)
    except (RuntimeError, ValueError):
        ctx = contextlib.nullcontext()
    with ctx:
        yield


def level_contributions(
    model: FPSM,
    output: FPSMOutput,
    classes: ClassSpec = None,
    *,
    top_k: int | None = None,
) -> list[torch.Tensor]:
    """Signed per-pixel contributions of each level's features to its class logits.

    ``sum_k W_l[c, k] A_l[k] / (H W)``: summed over the grid it is level l's logit minus its bias
    (and minus the synthetic-image embedding's term). Computed in float32 whatever the features'
    dtype, on their device, without autograd.

    Args:
        model: the FPSM that produced ``output``.
        output: :meth:`FPSM.forward_all`'s result.
        classes: see :func:`resolve_classes`; ``top_k`` ranks by ``output.logits``.

    Returns:
        per level, (B, K, H_l, W_l) float32 tensors.
    """
    batch = output.features[0].shape[0]
    index = resolve_classes(
        classes, batch, model.num_classes, top_k=top_k, scores=output.logits if top_k else None
    )
    shared = bool((index == index[:1]).all())
    maps = []
    for feat, (weight, _bias) in zip(output.features, model.head_weights(), strict=True):
        with torch.no_grad(), _no_autocast(feat.device):
            a = feat.detach().float()
            h, w = a.shape[-2:]
            # Divide first, as the package's weights are mean gradients W / (H W).
            wn = weight.detach().to(device=a.device, dtype=torch.float32) / float(h * w)
            if shared:
                rows = wn[torch.as_tensor(index[0], device=a.device)]
                maps.append(torch.einsum("kc,bchw->bkhw", rows, a))
            else:
                rows = wn[torch.as_tensor(index, device=a.device)]
                maps.append(torch.einsum("bkc,bchw->bkhw", rows, a))
    return maps


def raw_level_cams(
    model: FPSM,
    output: FPSMOutput,
    classes: ClassSpec = None,
    *,
    top_k: int | None = None,
) -> list[torch.Tensor]:
    """Raw per-level Grad-CAMs (before normalisation and resizing) from one forward pass.

    Each is ``ReLU(level_contributions)``: exactly the map the grad-cam package builds before its
    ``scale_cam_image``. Works on any device and under autocast (computed in float32).

    Returns:
        per level, (B, K, H_l, W_l) float32 tensors on the features' device.
    """
    return [m.clamp_min_(0) for m in level_contributions(model, output, classes, top_k=top_k)]


def cams_from_output(
    model: FPSM,
    output: FPSMOutput,
    input_size: int | Sequence[int],
    classes: ClassSpec = None,
    *,
    top_k: int | None = None,
) -> CamSet:
    """A :class:`CamSet` (low-resolution, on the CPU) from an already computed forward pass.

    Args:
        input_size: (H, W) or side of the model input ``output`` came from.
        classes: see :func:`resolve_classes`; ``top_k`` ranks by ``output.logits``.
    """
    batch = output.features[0].shape[0]
    index = resolve_classes(
        classes, batch, model.num_classes, top_k=top_k, scores=output.logits if top_k else None
    )
    raw = raw_level_cams(model, output, index)
    hw = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    return CamSet(
        levels=tuple(model.levels),
        classes=index,
        raw=tuple(m.cpu().numpy() for m in raw),
        input_size=(int(hw[0]), int(hw[1])),
    )


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run ``model`` in eval mode (as the grad-cam package does) and restore its mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def compute_cams(
    model: FPSM,
    images: torch.Tensor,
    classes: ClassSpec = None,
    *,
    top_k: int | None = None,
    synthetic: torch.Tensor | None = None,
) -> CamSet:
    """One eval-mode forward pass and its :class:`CamSet`."""
    if images.ndim != 4:
        raise ExplainError(f"images must be (B, C, H, W), not shape {tuple(images.shape)}.")
    device = next(model.parameters()).device
    with eval_mode(model), torch.no_grad():
        output = model.forward_all(images.to(device), synthetic)
    return cams_from_output(model, output, tuple(images.shape[-2:]), classes, top_k=top_k)


def level_cams(
    model: FPSM,
    images: torch.Tensor,
    classes: ClassSpec = None,
    size: int | Sequence[int] | None = None,
    *,
    top_k: int | None = None,
    synthetic: torch.Tensor | None = None,
) -> np.ndarray:
    """Per-level Grad-CAM of every level's own logit, for many classes, from one forward pass.

    Map ``[b, k, l]`` equals ``GradCAM(model=<forward_levels(x)[l]>,
    target_layers=[model.level_modules[l]])(x, [ClassifierOutputTarget(classes[k])])[b]``.

    Args:
        model: an FPSM (any backbone, levels and aggregation); run in eval mode, then restored.
        images: (B, C, H, W) model input.
        classes: see :func:`resolve_classes`; None means all classes.
        size: output (H, W) or side; None means the input size (as the package).
        top_k: with ``classes=None``, the K most probable classes per image, best first.
        synthetic: the model's synthetic-image flags, if it has the embedding.

    Returns:
        float32 (B, K, L, H, W) in [0, 1].
    """
    cams = compute_cams(model, images, classes, top_k=top_k, synthetic=synthetic)
    return cams.level_maps(size)


def fused_cam(
    model: FPSM,
    images: torch.Tensor,
    classes: ClassSpec = None,
    size: int | Sequence[int] | None = None,
    *,
    top_k: int | None = None,
    synthetic: torch.Tensor | None = None,
    normalise: bool = True,
) -> np.ndarray:
    """The fused map of :meth:`CamSet.fused` from one forward pass: float32 (B, K, H, W)."""
    cams = compute_cams(model, images, classes, top_k=top_k, synthetic=synthetic)
    return cams.fused(size, normalise=normalise)

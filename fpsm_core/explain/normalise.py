"""Grad-CAM's display normalisation, reproduced exactly and vectorised.

The grad-cam package turns a raw map into a picture in two steps: ``scale_cam_image`` (subtract the
minimum, divide by ``1e-7 + max``, resize with OpenCV's bilinear ``cv2.resize`` to the input size),
then, in ``aggregate_multi_layers``, a ReLU, the mean over target layers (a no-op for one layer) and
``scale_cam_image`` once more without resizing. An all-zero map stays all zero (0 / 1e-7). Doing the
same arithmetic on whole stacks of maps at once gives the package's numbers to float32 rounding.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fpsm_core.explain.errors import ExplainError

# cv2.resize takes at most a few hundred channels at once (OpenCV 5 refuses 512).
_CV2_CHANNELS = 128
_EPS = 1e-7  # the package's epsilon in scale_cam_image


def as_hw(size: int | Sequence[int] | None, default: Sequence[int]) -> tuple[int, int]:
    """A size argument as (height, width): an int means a square, None means ``default``."""
    if size is None:
        h, w = default
    elif isinstance(size, int | np.integer):
        h = w = int(size)
    else:
        if len(size) != 2:
            raise ExplainError(f"size must be an int or (height, width), not {tuple(size)!r}.")
        h, w = size
    h, w = int(h), int(w)
    if h < 1 or w < 1:
        raise ExplainError(f"size must be positive, not {(h, w)!r}.")
    return h, w


def resize_maps(maps: np.ndarray, size: int | Sequence[int]) -> np.ndarray:
    """Bilinear resize of (..., h, w) maps to (..., H, W), as ``cv2.resize`` (INTER_LINEAR) does.

    Args:
        maps: any leading shape; cast to float32.
        size: target (H, W) or a side length.

    Returns:
        float32 array (..., H, W).
    """
    arr = np.asarray(maps, dtype=np.float32)
    if arr.ndim < 2:
        raise ExplainError(f"maps must have at least 2 dimensions, not shape {arr.shape}.")
    out_h, out_w = as_hw(size, arr.shape[-2:])
    *lead, h, w = arr.shape
    if (h, w) == (out_h, out_w):
        return arr.copy()  # cv2.resize copies too when the size is unchanged
    flat = arr.reshape(-1, h, w)
    out = np.empty((flat.shape[0], out_h, out_w), dtype=np.float32)
    for start in range(0, flat.shape[0], _CV2_CHANNELS):
        chunk = np.ascontiguousarray(flat[start : start + _CV2_CHANNELS].transpose(1, 2, 0))
        resized = cv2.resize(chunk, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
        if resized.ndim == 2:
            resized = resized[:, :, None]
        out[start : start + resized.shape[2]] = resized.transpose(2, 0, 1)
    return out.reshape(*lead, out_h, out_w)


def minmax_like_gradcam(maps: np.ndarray) -> np.ndarray:
    """``scale_cam_image`` without resizing: per map ``(x - min) / (1e-7 + max(x - min))``."""
    arr = np.asarray(maps, dtype=np.float32)
    arr = arr - arr.min(axis=(-2, -1), keepdims=True)
    return arr / (_EPS + arr.max(axis=(-2, -1), keepdims=True))


def normalise_like_gradcam(raw: np.ndarray, size: int | Sequence[int] | None) -> np.ndarray:
    """What the grad-cam package returns for a single target layer, given its raw map.

    Args:
        raw: (..., h, w) Grad-CAM maps before normalisation (the ReLU is applied again here, so
            signed maps are fine).
        size: output (H, W) or side; None keeps the raw grid. The package always uses the input
            image size.

    Returns:
        float32 (..., H, W) in [0, 1]; maps that are zero everywhere stay zero.
    """
    cams = np.maximum(np.asarray(raw, dtype=np.float32), 0)
    scaled = minmax_like_gradcam(cams)
    if size is not None:
        scaled = resize_maps(scaled, size)
    return minmax_like_gradcam(np.maximum(scaled, 0))

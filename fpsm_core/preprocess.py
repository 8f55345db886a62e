"""From a displayed radiograph to the model's input tensor; training and inference share it.

Policy (recorded in every checkpoint's ``preprocessing``):

1. **Window** the display-sense pixels with the image's own window (the DICOM VOI, else robust
   percentiles, as :mod:`fpsm_core.io` decides) to [0, 1]. This is what a radiologist sees and what
   MIMIC-CXR-JPG's 8-bit images already are, so models trained on JPEGs see DICOMs the same way.
2. **Resize** with area interpolation. ``letterbox`` (default) scales the longer side to the input size
   and pads the shorter one symmetrically with black, keeping anatomy undistorted; ``stretch``
   squashes to a square, as many CXR-LT pipelines did.
3. **Normalise** per channel with the checkpoint's mean/std; the grey image is replicated to the
   model's input channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

# No torch here: the data loaders' workers, the viewer and the CLI's help read this contract without
# paying for (or needing) torch; tests/core/test_preprocess.py holds the line.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ResizePolicy = Literal["letterbox", "stretch"]
RESIZE_POLICIES: tuple[ResizePolicy, ...] = ("letterbox", "stretch")


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input; every checkpoint records one.

    Attributes:
        input_size: side of the square input in pixels.
        resize: ``"letterbox"`` keeps the aspect ratio and pads with black; ``"stretch"`` squashes.
        mean, std: per-channel normalisation applied to the [0, 1] windowed image.
    """

    input_size: int = 512
    resize: ResizePolicy = "letterbox"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class Letterbox:
    """Where the image lies inside the model input: scale and offsets (for mapping maps back)."""

    scale: float
    offset_x: int
    offset_y: int
    width: int
    height: int


def window_to_unit(pixels: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Linear window (center, width) to float32 [0, 1]."""
    center, width = float(window[0]), max(float(window[1]), 1e-6)
    low = center - width / 2.0
    out = (pixels.astype(np.float32, copy=False) - np.float32(low)) * np.float32(1.0 / width)
    return np.clip(out, 0.0, 1.0, out=out)


def resize_to_square(
    unit: np.ndarray, size: int, policy: str = "letterbox"
) -> tuple[np.ndarray, Letterbox]:
    """Resize a 2-D image to ``size`` x ``size`` by the given policy."""
    h, w = unit.shape
    if policy == "stretch":
        interp = cv2.INTER_AREA if (h > size or w > size) else cv2.INTER_LINEAR
        out = cv2.resize(unit, (size, size), interpolation=interp)
        return out, Letterbox(
            scale=size / max(h, w), offset_x=0, offset_y=0, width=size, height=size
        )
    if policy != "letterbox":
        raise ValueError(f"unknown resize policy {policy!r}")
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    resized = cv2.resize(unit, (nw, nh), interpolation=interp)
    out = np.zeros((size, size), dtype=np.float32)
    oy, ox = (size - nh) // 2, (size - nw) // 2
    out[oy : oy + nh, ox : ox + nw] = resized
    return out, Letterbox(scale=scale, offset_x=ox, offset_y=oy, width=nw, height=nh)


def normalise(
    square: np.ndarray, mean: Sequence[float], std: Sequence[float], channels: int
) -> np.ndarray:
    """(H, W) in [0, 1] to (channels, H, W) normalised float32."""
    if len(mean) not in (1, channels) or len(std) not in (1, channels):
        raise ValueError(f"mean/std of length {len(mean)}/{len(std)} for {channels} channels")
    m = np.resize(np.asarray(mean, dtype=np.float32), channels)[:, None, None]
    s = np.resize(np.asarray(std, dtype=np.float32), channels)[:, None, None]
    return (np.broadcast_to(square[None], (channels, *square.shape)) - m) / s


def prepare(
    pixels: np.ndarray,
    window: tuple[float, float],
    config: Preprocessing,
    channels: int = 3,
) -> tuple[np.ndarray, Letterbox]:
    """The whole policy: window, resize, normalise. Returns (C, S, S) float32 and the letterbox."""
    unit = window_to_unit(pixels, window)
    square, box = resize_to_square(unit, config.input_size, config.resize)
    return np.ascontiguousarray(
        normalise(square, config.mean, config.std, channels), dtype=np.float32
    ), box


def unletterbox(
    maps: np.ndarray, box: Letterbox, input_size: int, out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Map (..., S, S) arrays defined on the model input back onto the original image grid.

    With ``out_shape`` None the padding is only cropped away, on the maps' own grid.
    """
    scale = maps.shape[-1] / input_size
    y0, x0 = round(box.offset_y * scale), round(box.offset_x * scale)
    y1, x1 = round((box.offset_y + box.height) * scale), round((box.offset_x + box.width) * scale)
    crop = maps[..., y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)]
    if out_shape is None:
        return np.ascontiguousarray(crop)
    flat = crop.reshape(-1, *crop.shape[-2:])
    out = np.stack(
        [
            cv2.resize(
                m.astype(np.float32), (out_shape[1], out_shape[0]), interpolation=cv2.INTER_LINEAR
            )
            for m in flat
        ]
    )
    return out.reshape(*crop.shape[:-2], *out_shape)

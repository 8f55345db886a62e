"""Localisation metrics of saliency maps against boxes: pointing game, energy, IoU.

Every function takes maps of any leading shape (..., H, W) - one map, the levels of one class
(L, H, W), a whole (B, K, L, H, W) stack - and returns one value per map, so "per level" is just the
level axis of the result. Boxes are ``(x_min, y_min, x_max, y_max)`` in the map's pixel coordinates,
continuous: pixel (row i, column j) is inside when its centre (j + 0.5, i + 0.5) is, so the integer
box (2, 3, 5, 7) covers columns 2..4 and rows 3..6. Several boxes of one finding count as their union.
Use :func:`scale_boxes` to bring boxes from image pixels to map pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fpsm_core.explain.errors import ExplainError

Box = Sequence[float]
Region = Box | Sequence[Box] | np.ndarray


def scale_boxes(
    boxes: Sequence[Box], from_size: Sequence[int], to_size: Sequence[int]
) -> list[tuple[float, float, float, float]]:
    """Boxes from an image of (H, W) ``from_size`` to a map of (H, W) ``to_size``."""
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return [(b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy) for b in boxes]


def box_mask(shape: Sequence[int], region: Region) -> np.ndarray:
    """A boolean (H, W) mask of a box, a list of boxes (union) or a ready mask.

    Args:
        shape: (H, W) of the maps.
        region: ``(x_min, y_min, x_max, y_max)``, a sequence of such boxes, or a boolean mask.
    """
    h, w = int(shape[0]), int(shape[1])
    if isinstance(region, np.ndarray) and region.dtype == bool:
        if region.shape != (h, w):
            raise ExplainError(f"a mask of shape {region.shape} does not fit maps of {(h, w)}.")
        return region
    arr = np.asarray(region, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ExplainError(
            f"boxes must be (x_min, y_min, x_max, y_max), not an array of shape {arr.shape}."
        )
    cx = np.arange(w) + 0.5
    cy = np.arange(h) + 0.5
    mask = np.zeros((h, w), dtype=bool)
    for x0, y0, x1, y1 in arr:
        if not (x1 > x0 and y1 > y0):
            raise ExplainError(
                f"box {(x0, y0, x1, y1)} is empty (x_max <= x_min or y_max <= y_min)."
            )
        rows = (cy >= y0) & (cy <= y1)
        cols = (cx >= x0) & (cx <= x1)
        mask |= rows[:, None] & cols[None, :]
    if not mask.any():
        raise ExplainError(f"boxes {arr.tolist()} cover no pixel of a {h}x{w} map.")
    return mask


def _flat(maps: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    arr = np.asarray(maps, dtype=np.float64)
    if arr.ndim < 2:
        raise ExplainError(f"maps must be (..., H, W), not shape {arr.shape}.")
    return arr.reshape(-1, *arr.shape[-2:]), arr.shape[:-2]


def pointing_region(shape: Sequence[int], region: Region, tolerance: float = 0.0) -> np.ndarray:
    """The (H, W) mask a pointing-game peak must fall in: the region grown by ``tolerance`` pixels.

    Its mean is the hit rate of a peak placed uniformly at random (the game's chance level).
    """
    mask = box_mask(shape, region)
    if tolerance > 0:
        # Distance of every pixel to the nearest region pixel.
        dist = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        mask = dist <= tolerance
    return mask


def pointing_game(maps: np.ndarray, region: Region, tolerance: float = 0.0) -> np.ndarray:
    """Whether each map's maximum falls in the region (within ``tolerance`` pixels of it).

    The maximum is the first in row-major order; a map with no positive value is a miss.

    Returns:
        bool array of the maps' leading shape.
    """
    flat, lead = _flat(maps)
    mask = pointing_region(flat.shape[-2:], region, tolerance)
    peak = flat.reshape(flat.shape[0], -1).argmax(axis=1)
    hit = mask.reshape(-1)[peak] & (flat.reshape(flat.shape[0], -1).max(axis=1) > 0)
    return hit.reshape(lead)


def energy_in_box(maps: np.ndarray, region: Region) -> np.ndarray:
    """Fraction of each map's total (its energy) inside the region; NaN for an all-zero map.

    Negative values are clipped to zero first (saliency maps are non-negative).

    Returns:
        float64 array of the maps' leading shape.
    """
    flat, lead = _flat(maps)
    flat = np.maximum(flat, 0)
    mask = box_mask(flat.shape[-2:], region)
    inside = (flat * mask).sum(axis=(-2, -1))
    total = flat.sum(axis=(-2, -1))
    out = np.divide(inside, total, out=np.full_like(total, np.nan), where=total > 0)
    return out.reshape(lead)


def box_iou(maps: np.ndarray, region: Region, threshold: float = 0.5) -> np.ndarray:
    """IoU of each map thresholded at ``threshold`` times its maximum with the region.

    A map with no positive value has an empty mask and IoU 0.

    Returns:
        float64 array of the maps' leading shape.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ExplainError(
            f"threshold must be a fraction of the maximum in [0, 1], not {threshold}."
        )
    flat, lead = _flat(maps)
    mask = box_mask(flat.shape[-2:], region)
    peak = flat.max(axis=(-2, -1), keepdims=True)
    on = (flat >= threshold * peak) & (peak > 0) & (flat > 0)
    inter = (on & mask).sum(axis=(-2, -1))
    union = (on | mask).sum(axis=(-2, -1))
    return (inter / union).reshape(lead)


@dataclass(frozen=True, eq=False)
class LocalisationScores:
    """The three metrics for every map (each array has the maps' leading shape, e.g. (L,)).

    Attributes:
        hit: pointing game hits.
        energy: fraction of the map's energy inside the box (NaN for all-zero maps).
        iou: IoU of the thresholded map with the box.
    """

    hit: np.ndarray
    energy: np.ndarray
    iou: np.ndarray


def localisation_scores(
    maps: np.ndarray, region: Region, threshold: float = 0.5, tolerance: float = 0.0
) -> LocalisationScores:
    """Pointing game, energy inside the box and thresholded IoU, for each map of a stack."""
    return LocalisationScores(
        hit=pointing_game(maps, region, tolerance),
        energy=energy_in_box(maps, region),
        iou=box_iou(maps, region, threshold),
    )

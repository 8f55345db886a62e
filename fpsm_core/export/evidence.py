"""A result's CAM evidence on the source image's pixel grid, and the regions drawn from it.

The exporters need three things from a :class:`~fpsm_core.inference.Result`'s closed-form CAMs:
the fused map of a finding (for the Secondary Capture's heatmap), each level's map (for the
Segmentation) and, for findings above threshold, a region (the fused map's outline at half its
peak, for the SR's SCOORD and the presentation state's graphics). Maps are cropped to the image
(letterbox padding removed) and resized to the image's rows and columns, so region coordinates
are source-image pixel coordinates (column, row), as DICOM's SCOORD wants them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fpsm_core.explain import CamSet, ensemble_camset
from fpsm_core.explain.normalise import resize_maps

# Outline of the fused map at this fraction of its peak: the half-maximum contour is the usual
# "where the evidence is" region of CAM localisation studies.
REGION_LEVEL = 0.5
# At most this many vertices per outline (PS graphics and SR SCOORDs stay small and readable).
MAX_VERTICES = 64


@dataclass(frozen=True)
class Region:
    """One finding's region on the source image.

    Attributes:
        label: the finding (CXR-LT name).
        polygon: closed outline, (N, 2) float32 (column, row) with the first point repeated last.
        box: (column0, row0, column1, row1) of the outline.
    """

    label: str
    polygon: np.ndarray
    box: tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class Evidence:
    """CAM maps of one result at the image's size.

    Attributes:
        levels: paper level numbers (the ensemble's union), in the order of ``level_maps``.
        fused: (C, rows, cols) float32 in [0, 1], label order of the result.
        level_maps: (C, L, rows, cols) float32 in [0, 1] (Grad-CAM normalisation per level).
        shares: (C, L) each level's fraction of the positive evidence (sums to 1, or all 0).
    """

    levels: tuple[int, ...]
    fused: np.ndarray
    level_maps: np.ndarray
    shares: np.ndarray


def _crop(maps: np.ndarray, box: Any, input_size: int) -> np.ndarray:
    s = maps.shape[-1] / input_size
    y0, x0 = round(box.offset_y * s), round(box.offset_x * s)
    y1 = max(round((box.offset_y + box.height) * s), y0 + 1)
    x1 = max(round((box.offset_x + box.width) * s), x0 + 1)
    return np.ascontiguousarray(maps[..., y0:y1, x0:x1])


def evidence(result: Any, shape: Sequence[int] | None = None) -> Evidence | None:
    """The result's maps on a (rows, cols) grid (default its image's), or None without CAMs."""
    if getattr(result, "cams", None) is None:
        return None
    labels = list(result.labels)
    members = [
        CamSet(
            levels=tuple(levels),
            classes=np.arange(len(labels), dtype=np.int64)[None],
            raw=tuple(np.asarray(m, dtype=np.float32)[None] for m in raw),
            input_size=(int(s), int(s)),
        )
        for levels, raw, s in zip(
            result.member_levels, result.cams, result.input_sizes, strict=True
        )
    ]
    ens = ensemble_camset(members)
    grid = max(m.shape[-1] for m in ens.raw)
    box, size0 = result.letterboxes[0], int(result.input_sizes[0])
    rows, cols = (int(shape[0]), int(shape[1])) if shape else tuple(result.image_shape)
    fused = resize_maps(_crop(ens.fused(grid)[0], box, size0), (rows, cols))
    levels = _crop(ens.level_maps(grid)[0], box, size0)  # (C, L, h, w)
    c, n_levels = levels.shape[:2]
    level_maps = resize_maps(levels.reshape(c * n_levels, *levels.shape[2:]), (rows, cols))
    return Evidence(
        levels=tuple(ens.levels),
        fused=np.clip(fused, 0, 1).astype(np.float32),
        level_maps=np.clip(level_maps.reshape(c, n_levels, rows, cols), 0, 1).astype(np.float32),
        shares=ens.fusion_weights()[0],
    )


def region(label: str, cam: np.ndarray, level: float = REGION_LEVEL) -> Region | None:
    """The outline of the largest blob of ``cam`` at ``level`` of its peak, or None if flat."""
    peak = float(cam.max()) if cam.size else 0.0
    if peak <= 0:
        return None
    mask = (cam >= level * peak).astype(np.uint8)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    eps = 0.002 * cv2.arcLength(contour, True)
    approx = contour
    while len(approx) > MAX_VERTICES:
        approx = cv2.approxPolyDP(contour, eps, True)
        eps *= 1.5
    points = approx.reshape(-1, 2).astype(np.float32)
    x0, y0, w, h = cv2.boundingRect(contour)
    if len(points) < 3:  # a one- or two-pixel blob: its bounding box is the region
        points = np.array(
            [[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], dtype=np.float32
        )
    # Pixel centres of a contour run from 0; SCOORD's "pixel" origin is the top-left corner of
    # the top-left pixel (PS3.3 C.18.6.1.2), hence the half-pixel shift.
    points = points + np.float32(0.5)
    polygon = np.vstack([points, points[:1]])
    return Region(
        label=label,
        polygon=polygon,
        box=(float(x0), float(y0), float(x0 + w), float(y0 + h)),
    )


def finding_regions(result: Any, ev: Evidence | None) -> dict[str, Region]:
    """Regions of the findings above threshold (label -> region); empty without CAMs."""
    if ev is None:
        return {}
    out: dict[str, Region] = {}
    for f in result.findings:
        if f.above_threshold:
            reg = region(f.label, ev.fused[f.index])
            if reg is not None:
                out[f.label] = reg
    return out

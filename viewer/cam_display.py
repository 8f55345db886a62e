"""From an inference `Result`'s raw per-level CAMs to coloured overlays on the film's grid.

The maths (Grad-CAM normalisation, the share-weighted fused map, the ensemble mean of members'
maps) is :mod:`fpsm_core.explain`'s; this module only picks the map the user asked for, maps it from
the letterboxed model input back onto the image (:func:`fpsm_core.preprocess.unletterbox`) and
colours it. Everything is numpy on a few hundred thousand pixels: cheap enough for the GUI thread.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pyqtgraph as pg

from fpsm_core.explain import CamSet, ensemble_camset
from fpsm_core.preprocess import unletterbox

COLORMAPS = ("turbo", "inferno", "magma", "viridis", "plasma")
FUSED = "fused"
LevelKey = int | str  # a paper level number, or FUSED
ENSEMBLE = -1
# Overlays are computed on a grid whose longer side is at most this and drawn interpolated: the
# finest level's own grid is 128 px at a 512 px input, so a finer overlay would only cost time.
OVERLAY_MAX_SIDE = 256


@dataclass(frozen=True)
class LevelShare:
    """One level's part of a member's logit for a finding.

    Attributes:
        share: the level's logit divided by the sum of the absolute level logits (signed, so the
            shares' absolute values add up to 1).
    """

    member: str
    level: int
    logit: float
    share: float


def level_shares(result: Any, class_index: int) -> list[LevelShare]:
    """Each member's level logits for a class (they sum to the member's logit) and their shares."""
    out: list[LevelShare] = []
    for name, levels, logits in zip(
        result.member_names, result.member_levels, result.level_logits, strict=True
    ):
        values = [float(logits[i, class_index]) for i in range(len(levels))]
        total = sum(abs(v) for v in values) or 1.0
        out.extend(
            LevelShare(name, int(lv), v, v / total) for lv, v in zip(levels, values, strict=True)
        )
    return out


def overlay_shape(image_shape: Sequence[int], max_side: int = OVERLAY_MAX_SIDE) -> tuple[int, int]:
    """The overlay grid for an image: the image's aspect ratio, longer side at most ``max_side``."""
    rows, cols = int(image_shape[0]), int(image_shape[1])
    scale = min(1.0, max_side / max(rows, cols))
    return (max(1, round(rows * scale)), max(1, round(cols * scale)))


class ResultCams:
    """The CAMs of one result, per member and for the ensemble, on demand.

    Args:
        result: an inference ``Result`` with ``cams`` (per member, per level, (C, h, w) raw maps).
    """

    def __init__(self, result: Any) -> None:
        if result.cams is None:
            raise ValueError("this result has no CAMs")
        self.result = result
        self.members: list[CamSet] = []
        n_classes = len(result.labels)
        classes = np.arange(n_classes)[None, :]
        for levels, raw, size in zip(
            result.member_levels, result.cams, result.input_sizes, strict=True
        ):
            self.members.append(
                CamSet(
                    levels=tuple(int(lv) for lv in levels),
                    classes=classes,
                    raw=tuple(np.asarray(m, dtype=np.float32)[None] for m in raw),
                    input_size=(int(size), int(size)),
                )
            )
        self._ensemble: CamSet | None = None

    @property
    def levels(self) -> tuple[int, ...]:
        """Every level of any member, deepest first as the members list them."""
        out: list[int] = []
        for cs in self.members:
            out.extend(lv for lv in cs.levels if lv not in out)
        return tuple(out)

    def levels_of(self, member: int = ENSEMBLE) -> tuple[int, ...]:
        """The levels one member has (all levels for the ensemble)."""
        return self.levels if member == ENSEMBLE else self.members[member].levels

    def camset(self, member: int = ENSEMBLE) -> CamSet:
        if member != ENSEMBLE:
            return self.members[member]
        if len(self.members) == 1:
            return self.members[0]
        if self._ensemble is None:
            self._ensemble = ensemble_camset(self.members)
        return self._ensemble

    def _frame(self, member: int) -> tuple[Any, int]:
        """(letterbox, input size) that maps the chosen maps back onto the image."""
        index = 0 if member == ENSEMBLE else member
        if member == ENSEMBLE:
            index = int(np.argmax(self.result.input_sizes))
        return self.result.letterboxes[index], int(self.result.input_sizes[index])

    def map(
        self,
        class_index: int,
        level: LevelKey = FUSED,
        out_shape: tuple[int, int] | None = None,
        member: int = ENSEMBLE,
    ) -> np.ndarray:
        """One display map in [0, 1] on the image grid.

        Args:
            class_index: the finding's label index.
            level: a paper level number, or ``"fused"``.
            out_shape: (rows, cols) of the output; default :func:`overlay_shape` of the image.
            member: a member index, or ``ENSEMBLE`` (-1) for the ensemble's maps.

        Returns:
            float32 (rows, cols).
        """
        shape = out_shape or overlay_shape(self.result.image_shape)
        cs = self.camset(member).take([class_index])
        box, size = self._frame(member)
        # Normalise on a square grid no finer than the output needs (never coarser than the
        # finest level's own grid), then crop the letterbox away: small tiles stay cheap.
        finest = max(max(m.shape[-2:]) for m in cs.raw)
        work = min(size, max(finest, max(shape)))
        if level == FUSED:
            grid = cs.fused(work)[0, 0]
        else:
            grid = cs.level_maps(work, levels=[int(level)])[0, 0, 0]
        out = unletterbox(grid, box, size, shape)
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def fusion_weights(self, class_index: int, member: int = ENSEMBLE) -> dict[int, float]:
        """Each level's weight in the fused map (its positive share of the class logit)."""
        cs = self.camset(member).take([class_index])
        weights = cs.fusion_weights()[0, 0]
        return {lv: float(w) for lv, w in zip(cs.levels, weights, strict=True)}


@functools.lru_cache(maxsize=16)
def colour_table(name: str) -> np.ndarray:
    """(256, 3) uint8 colours of a named pyqtgraph colour map (cached, read-only)."""
    cmap = pg.colormap.get(name)
    table = np.ascontiguousarray(
        np.asarray(cmap.getLookupTable(nPts=256, alpha=False), dtype=np.uint8)[:, :3]
    )
    table.flags.writeable = False
    return table


def colourise(
    values: np.ndarray, colormap: str = "turbo", opacity: float = 0.5, threshold: float = 0.0
) -> np.ndarray:
    """A [0, 1] map as premultiplied ARGB32 (uint32), transparent below ``threshold``.

    Args:
        values: float map in [0, 1].
        opacity: alpha of the coloured part, 0..1.
        threshold: values below it are fully transparent.
    """
    table = colour_table(colormap).astype(np.uint32)
    idx = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    alpha = np.full(256, int(round(np.clip(opacity, 0.0, 1.0) * 255)), dtype=np.uint32)
    alpha[: int(np.ceil(np.clip(threshold, 0.0, 1.0) * 255))] = 0
    premul = (table * alpha[:, None] + 127) // 255
    lut = (alpha << 24) | (premul[:, 0] << 16) | (premul[:, 1] << 8) | premul[:, 2]
    return lut.astype(np.uint32)[idx]


def blend_rgb(
    grey: np.ndarray,
    values: np.ndarray | None,
    colormap: str = "turbo",
    opacity: float = 0.5,
    threshold: float = 0.0,
) -> np.ndarray:
    """A grey uint8 image with a map blended over it, as (h, w, 3) uint8 RGB (for tiles, exports)."""
    rgb = np.repeat(np.ascontiguousarray(grey, dtype=np.uint8)[..., None], 3, axis=2)
    if values is None:
        return rgb
    idx = np.clip(values * 255.0 + 0.5, 0, 255).astype(np.uint8)
    colour = colour_table(colormap)[idx]
    a = float(np.clip(opacity, 0.0, 1.0))
    mixed = cv2.addWeighted(rgb, 1.0 - a, colour, a, 0.0)
    return np.where((values >= threshold)[..., None], mixed, rgb)

"""Colouring CAMs for the screen: colour tables, the film's overlay, the level strip's tiles.

The maps themselves (Grad-CAM normalisation, the share-weighted fused map, the ensemble mean of
members' maps, the way back from the letterboxed model input onto the image) come from
:class:`fpsm_core.explain.ResultCams`; this module only chooses the grid they are drawn on and
colours them. Everything is numpy on a few hundred thousand pixels: cheap enough for the GUI thread.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import cv2
import numpy as np
import pyqtgraph as pg

from fpsm_core.explain import FUSED, LevelKey, ResultCams
from viewer import display

if TYPE_CHECKING:
    from fpsm_core.io.image import XRayImage

COLORMAPS = ("turbo", "inferno", "magma", "viridis", "plasma")
# Overlays are computed on a grid whose longer side is at most this and drawn interpolated: the
# finest level's own grid is 128 px at a 512 px input, so a finer overlay would only cost time.
OVERLAY_MAX_SIDE = 256


def overlay_shape(image_shape: Sequence[int], max_side: int = OVERLAY_MAX_SIDE) -> tuple[int, int]:
    """The overlay grid for an image: the image's aspect ratio, longer side at most ``max_side``."""
    rows, cols = int(image_shape[0]), int(image_shape[1])
    scale = min(1.0, max_side / max(rows, cols))
    return (max(1, round(rows * scale)), max(1, round(cols * scale)))


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
    values: np.ndarray,
    colormap: str = "turbo",
    opacity: float = 0.5,
    threshold: float = 0.0,
    *,
    dimmed: bool = False,
) -> np.ndarray:
    """A [0, 1] map as premultiplied ARGB32 (uint32), transparent below ``threshold``.

    Args:
        values: float map in [0, 1].
        opacity: alpha of the coloured part, 0..1.
        threshold: values below it are fully transparent.
        dimmed: grey the map and halve its opacity (a result outside what the model knows:
            still inspectable, but it must not read like a finding).
    """
    table = colour_table(colormap).astype(np.uint32)
    if dimmed:
        grey = (table[:, 0] * 299 + table[:, 1] * 587 + table[:, 2] * 114 + 500) // 1000
        table = np.repeat(grey[:, None], 3, axis=1)
        opacity = opacity / 2
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


# The level strip: tiles this many pixels on their longer side, and a floor on their opacity so a
# faint overlay setting still shows where each level looks.
TILE_SIDE = 170
TILE_MIN_OPACITY = 0.45


def film_grey(
    pyramid: display.DisplayPyramid,
    image: XRayImage,
    window: tuple[float, float],
    inverted: bool,
    shape: tuple[int, int],
) -> np.ndarray:
    """The film at the current window, shrunk to ``shape`` (rows, cols), as uint8 grey."""
    lut = display.window_lut(pyramid, window[0], window[1], image.voi_function, inverted)
    grey = display.apply_lut(pyramid.levels[-1], lut)
    return cv2.resize(grey, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


def level_tiles(
    cams: ResultCams,
    class_index: int,
    member: int,
    grey: np.ndarray,
    colormap: str,
    opacity: float,
    threshold: float,
    *,
    dimmed: bool = False,
) -> list[tuple[LevelKey, str, np.ndarray]]:
    """The selected finding fused and at each level of a member, blended over the grey film.

    ``dimmed`` greys the maps at half opacity, as :func:`colourise` does for a flagged result.

    Returns:
        (level key, title, (h, w, 3) uint8 RGB) per tile: fused first, then the member's levels,
        each titled with its weight in the fused map.
    """
    shape = (int(grey.shape[0]), int(grey.shape[1]))
    weights = cams.fusion_weights(class_index, member)
    tiles: list[tuple[LevelKey, str, np.ndarray]] = []
    keys: list[LevelKey] = [FUSED, *cams.levels_of(member)]
    for key in keys:
        values = cams.map(class_index, key, shape, member=member)
        a = max(opacity, TILE_MIN_OPACITY)
        rgb = blend_rgb(grey, values, colormap, a / 2 if dimmed else a, threshold)
        if dimmed:  # luminance only: the map must not read like a finding
            rgb = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        title = "Fused" if isinstance(key, str) else f"Level {key} · {weights.get(key, 0.0):.0%}"
        tiles.append((key, title, rgb))
    return tiles

"""The simulator's working state and the drawing primitives shared by anatomy and findings.

A radiograph is built as a map of line integrals in centimetres of water equivalent: soft tissue
adds, gas (lungs, bowel, free air) subtracts, bone adds. Anatomy and findings write into separate
layers of a :class:`Scene` so that a finding can, for instance, hide the lung markings of a collapsed
lung; :func:`fpsm_core.sim.simulate.simulate_case` turns the layers into a display image. All
geometry is in pixels of the output image; sizes given in millimetres go through ``scene.mm``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

SHIFT = 4  # cv2 fixed-point bits: sub-pixel drawing, so tiny images keep thin lines in place
_ONE = 1 << SHIFT


@dataclass
class Scene:
    """Mutable layers and landmarks of one case while it is being drawn (internal)."""

    size: int
    spacing: float  # mm per pixel
    soft: np.ndarray  # tissue, cm water
    air: np.ndarray  # gas, cm (subtracted)
    bone: np.ndarray  # bone, cm water equivalent
    vessels: np.ndarray  # lung markings, cm water (added where ``markings_keep``)
    markings_keep: np.ndarray  # 0..1, where lung markings show
    lung_mask: np.ndarray  # uint8 0/1, both lungs
    lungs: list[np.ndarray] = field(default_factory=list)  # polygons, [image-left, image-right]
    marks: dict[str, Any] = field(default_factory=dict)  # named landmarks (points, polygons, ...)

    def mm(self, millimetres: float) -> float:
        """Millimetres to pixels of this image."""
        return millimetres / self.spacing

    def blank(self) -> np.ndarray:
        return np.zeros((self.size, self.size), np.float32)


def new_scene(size: int, spacing: float) -> Scene:
    shape = (size, size)
    return Scene(
        size=size,
        spacing=spacing,
        soft=np.zeros(shape, np.float32),
        air=np.zeros(shape, np.float32),
        bone=np.zeros(shape, np.float32),
        vessels=np.zeros(shape, np.float32),
        markings_keep=np.ones(shape, np.float32),
        lung_mask=np.zeros((size, size), np.uint8),
    )


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def fill_poly(img: np.ndarray, points: np.ndarray, value: float = 1.0) -> np.ndarray:
    """Fill a polygon (N x 2 pixel coordinates, sub-pixel) in place."""
    cv2.fillPoly(img, [_fixed(points)], value, lineType=cv2.LINE_AA, shift=SHIFT)
    return img


def draw_line(
    img: np.ndarray, points: np.ndarray, width_px: float, value: float = 1.0
) -> np.ndarray:
    """Draw an open polyline of the given width (at least one pixel) in place."""
    thickness = max(1, int(round(width_px)))
    cv2.polylines(img, [_fixed(points)], False, value, thickness, cv2.LINE_AA, SHIFT)
    return img


def draw_lines(
    img: np.ndarray, polylines: list[np.ndarray], width_px: float, value: float = 1.0
) -> np.ndarray:
    """Draw many open polylines of one width and value in a single call."""
    if polylines:
        thickness = max(1, int(round(width_px)))
        if len({len(p) for p in polylines}) == 1:  # convert all at once
            fixed = np.round(np.asarray(polylines, np.float64) * _ONE).astype(np.int32)
            pts = list(fixed.reshape(len(polylines), -1, 1, 2))
        else:
            pts = [_fixed(p) for p in polylines]
        cv2.polylines(img, pts, False, value, thickness, cv2.LINE_AA, SHIFT)
    return img


def fill_ellipse(
    img: np.ndarray,
    centre: tuple[float, float],
    axes: tuple[float, float],
    angle: float = 0.0,
    value: float = 1.0,
) -> np.ndarray:
    """Fill a rotated ellipse (centre and half-axes in pixels, angle in degrees) in place."""
    c = (int(round(centre[0] * _ONE)), int(round(centre[1] * _ONE)))
    a = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
    cv2.ellipse(img, c, a, angle, 0, 360, value, -1, cv2.LINE_AA, SHIFT)
    return img


def blur(img: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur (no-op below a quarter pixel); wide kernels run on a reduced copy."""
    if sigma_px < 0.25:
        return img
    if sigma_px > 6.0 and min(img.shape) >= 64:
        factor = sigma_px / 3.0
        h, w = img.shape
        small = cv2.resize(
            img, (max(8, int(w / factor)), max(8, int(h / factor))), interpolation=cv2.INTER_AREA
        )
        small = cv2.GaussianBlur(
            small, (0, 0), 3.0 * small.shape[1] / w * factor, borderType=cv2.BORDER_REPLICATE
        )
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return cv2.GaussianBlur(img, (0, 0), sigma_px, borderType=cv2.BORDER_REPLICATE)


_BERNSTEIN: dict[tuple[int, int], np.ndarray] = {}


def bezier(points: np.ndarray, n: int = 24) -> np.ndarray:
    """Points along the Bezier curve of the given control points (K x 2)."""
    p = np.asarray(points, np.float64)
    key = (len(p), n)
    basis = _BERNSTEIN.get(key)
    if basis is None:
        k = np.arange(len(p))
        t = np.linspace(0.0, 1.0, n)[:, None]
        binom = np.array([math.comb(len(p) - 1, int(i)) for i in k], np.float64)
        basis = binom * t**k * (1 - t) ** (len(p) - 1 - k)
        _BERNSTEIN[key] = basis
    return basis @ p


def blob_polygon(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    irregularity: float,
    n: int = 48,
    harmonics: int = 5,
) -> np.ndarray:
    """A closed, lobulated outline: a circle whose radius carries a few random harmonics."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 2 + harmonics):
        r += irregularity / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = radius * np.clip(r, 0.4, 1.8)
    return np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], axis=1)


def smooth_noise(rng: np.random.Generator, size: int, sigma_px: float, down: int = 4) -> np.ndarray:
    """Zero-mean, unit-std band-limited noise, made at reduced resolution for speed."""
    small = max(4, size // down)
    noise: np.ndarray = rng.standard_normal((small, small), dtype=np.float32)
    noise = blur(noise, max(0.5, sigma_px / down))
    noise = cv2.resize(noise, (size, size), interpolation=cv2.INTER_LINEAR)
    std = float(noise.std())
    return noise / std if std > 0 else noise


def random_point_in(rng: np.random.Generator, mask: np.ndarray) -> tuple[float, float] | None:
    """A random pixel of a binary mask (None when the mask is empty)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    i = int(rng.integers(len(xs)))
    return float(xs[i]) + rng.uniform(-0.5, 0.5), float(ys[i]) + rng.uniform(-0.5, 0.5)


def inside(scene: Scene, side: int | None, margin_px: float) -> np.ndarray:
    """The pixels of a lung (or both, ``side=None``) at least ``margin_px`` from its edge.

    Uses a distance map cached on the scene, much cheaper than eroding with a large kernel.
    """
    key = f"lung_dist_{side}"
    dist = scene.marks.get(key)
    if dist is None:
        base = scene.lung_mask if side is None else side_of(scene, side)
        dist = cv2.distanceTransform(base, cv2.DIST_L2, 3)
        scene.marks[key] = dist
    return np.asarray(dist > margin_px, np.uint8)


def erode(mask: np.ndarray, radius_px: float) -> np.ndarray:
    r = int(round(radius_px))
    if r < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.erode(mask, kernel)


def window(
    size: int, points: np.ndarray, margin_px: float
) -> tuple[tuple[slice, slice], tuple[int, int]]:
    """The clipped rectangle around ``points`` plus a margin: (row, col) slices and its origin."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    x0 = int(np.clip(np.floor(pts[:, 0].min() - margin_px), 0, size - 1))
    y0 = int(np.clip(np.floor(pts[:, 1].min() - margin_px), 0, size - 1))
    x1 = int(np.clip(np.ceil(pts[:, 0].max() + margin_px) + 1, x0 + 1, size))
    y1 = int(np.clip(np.ceil(pts[:, 1].max() + margin_px) + 1, y0 + 1, size))
    return (slice(y0, y1), slice(x0, x1)), (x0, y0)


def stamp(
    scene: Scene,
    layer: np.ndarray,
    poly: np.ndarray,
    amplitude: float,
    edge_px: float,
    rounded: bool = True,
    within: np.ndarray | None = None,
) -> np.ndarray:
    """Add a lesion with outline ``poly`` to ``layer``; return its full-size bool mask.

    The lesion is ``amplitude`` thick at its centre, falls off over ``edge_px`` at the border
    (a sphere-like profile when ``rounded``) and is clipped to ``within`` when given. The
    returned mask is the clipped outline itself, so a box drawn from it lies on the lesion.
    """
    win, (x0, y0) = window(scene.size, poly, 3 * edge_px + 2)
    h, w = win[0].stop - win[0].start, win[1].stop - win[1].start
    local = fill_poly(np.zeros((h, w), np.float32), np.asarray(poly) - (x0, y0), 1.0)
    if within is not None:
        local *= within[win]
    soft = blur(local, edge_px)
    layer[win] += amplitude * (np.sqrt(soft) if rounded else soft)
    mask = np.zeros((scene.size, scene.size), bool)
    mask[win] = local > 0.5
    return mask


def side_of(scene: Scene, side: int) -> np.ndarray:
    """The uint8 mask of one lung (0 = image left = patient right)."""
    return scene.marks["lung_sides"][side]

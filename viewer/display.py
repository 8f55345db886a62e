"""Fast window/level for big radiographs: uint16 codes, a 65536-entry lookup table, a pyramid.

A W/L change must repaint a 3000x3000 16-bit film within one 60 Hz frame. Recomputing
``(x - low) * scale`` over 9 M float pixels takes ~30 ms, and so does a lookup over all of them, so
the viewer never touches more pixels than the screen shows: the image is quantised once to uint16
codes (exactly, when the pixels are integers spanning fewer than 65536 values, as DICOM pixels do),
an area-averaged pyramid is built from the codes, and each frame looks up only the pyramid level
and crop that match the current zoom. The window itself is DICOM's VOI function
(:func:`fpsm_core.io.image.apply_window`) evaluated once per code, so the picture equals
``XRayImage.display_uint8`` wherever the codes are exact. No Qt here: plain numpy, testable alone.
"""

from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Literal

import cv2
import numpy as np

from fpsm_core.io.image import apply_window

CODES = 65536
# The smallest pyramid level keeps at least this many pixels on its longer side.
MIN_LEVEL_SIDE = 256


@dataclass(frozen=True, eq=False)
class DisplayPyramid:
    """An image quantised to uint16 codes, at full size and at halvings.

    Attributes:
        levels: uint16 arrays, ``levels[0]`` full size, each next one half the previous (area mean).
        offset: the pixel value of code 0.
        step: pixel-value increment per code (1.0 when the quantisation is exact).
        exact: True when every pixel value is exactly ``offset + code * step``.
        max_code: the highest code present.
        robust: (low, high) 0.5-99.5 percentile values, computed with the pyramid (off the GUI
            thread); see :func:`robust_range`.
        hist: (bin centres, counts) of the values; see :func:`histogram`.
        shape: (rows, columns) of the full-size image.
    """

    levels: tuple[np.ndarray, ...]
    offset: float
    step: float
    exact: bool
    max_code: int = CODES - 1
    robust: tuple[float, float] | None = None
    hist: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.levels[0].shape[0]), int(self.levels[0].shape[1]))

    def code_values(self) -> np.ndarray:
        """The pixel value of every code, float64 (65536,)."""
        return self.offset + np.arange(CODES, dtype=np.float64) * self.step

    def value_range(self) -> tuple[float, float]:
        """(min, max) pixel value present in the image."""
        return (self.offset, self.offset + self.max_code * self.step)


def build_pyramid(pixels: np.ndarray) -> DisplayPyramid:
    """Quantise a 2-D image to uint16 codes and build its area-averaged halvings.

    Args:
        pixels: 2-D array of any real dtype (NaN and inf are shown as the lowest value).

    Returns:
        The pyramid; exact when the finite pixels are integers (up to a common offset) spanning
        fewer than 65536 values.
    """
    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {arr.shape}")
    work = arr.astype(np.float32, copy=False)
    finite = np.isfinite(work)
    all_finite = bool(finite.all())
    if not all_finite:
        work = np.where(finite, work, np.nan)
    lo = float(np.nanmin(work)) if finite.any() else 0.0
    hi = float(np.nanmax(work)) if finite.any() else 0.0
    span = hi - lo
    exact = False
    if span < CODES and np.issubdtype(arr.dtype, np.integer):
        exact = True
    elif span < CODES:
        frac = work - np.float32(lo)
        exact = bool(np.all(np.where(finite, frac == np.floor(frac), True)))
    if exact:
        step = 1.0
        codes = np.subtract(work, np.float32(lo), dtype=np.float32)
    else:
        step = span / (CODES - 1) if span > 0 else 1.0
        codes = (work - np.float32(lo)) * np.float32(1.0 / step) + np.float32(0.5)
    if not all_finite:
        codes = np.nan_to_num(codes, nan=0.0, posinf=0.0, neginf=0.0)
    full = np.clip(codes, 0, CODES - 1).astype(np.uint16)
    levels: list[np.ndarray] = [full]
    while max(levels[-1].shape) >= 2 * MIN_LEVEL_SIDE:
        prev = levels[-1]
        size = (max(1, prev.shape[1] // 2), max(1, prev.shape[0] // 2))
        levels.append(cv2.resize(prev, size, interpolation=cv2.INTER_AREA))
    pyramid = DisplayPyramid(
        levels=tuple(levels), offset=lo, step=step, exact=exact, max_code=int(full.max())
    )
    return replace(pyramid, robust=robust_range(pyramid), hist=histogram(pyramid))


def window_lut(
    pyramid: DisplayPyramid,
    center: float,
    width: float,
    function: str = "LINEAR",
    invert: bool = False,
) -> np.ndarray:
    """The 65536-entry uint8 table that shows every code through a DICOM VOI window.

    Args:
        pyramid: gives the value of each code.
        center: window center in pixel units.
        width: window width in pixel units.
        function: DICOM VOI function ("LINEAR", "LINEAR_EXACT", "SIGMOID").
        invert: show white as black (a display choice; pixel values are untouched).

    Only the codes up to the image's highest one are evaluated (4096 of a 12-bit film's 65536; a
    pyramid level or a screen resampling never exceeds it); the rest repeat the last entry.
    """
    used = min(CODES, pyramid.max_code + 1)
    values = pyramid.offset + np.arange(used, dtype=np.float64) * pyramid.step
    lut = np.empty(CODES, dtype=np.uint8)
    lut[:used] = apply_window(values, center, width, function)
    lut[used:] = lut[used - 1]
    if invert:
        np.subtract(255, lut, out=lut)
    return lut


def pick_level(pyramid: DisplayPyramid, screen_per_image: float) -> int:
    """The coarsest level that still has at least one pixel per screen pixel.

    Args:
        screen_per_image: screen pixels per full-size image pixel (0.33 for a 3000 px image fitted
            into a 1000 px view).
    """
    if screen_per_image <= 0 or not math.isfinite(screen_per_image):
        return 0
    level = int(math.floor(math.log2(1.0 / screen_per_image))) if screen_per_image < 1 else 0
    return max(0, min(level, len(pyramid.levels) - 1))


def crop_for_view(
    pyramid: DisplayPyramid,
    level: int,
    visible: tuple[float, float, float, float],
    margin: float = 0.5,
) -> tuple[int, int, int, int]:
    """The crop of a level to render for a visible rectangle, with a margin for small pans.

    Args:
        level: pyramid level.
        visible: (x, y, width, height) of the visible part in full-size image pixels.
        margin: extra fraction of the visible size added on every side.

    Returns:
        (x0, y0, x1, y1) in the level's pixels, clipped to the level, never empty.
    """
    arr = pyramid.levels[level]
    rows, cols = arr.shape
    fy = rows / pyramid.shape[0]
    fx = cols / pyramid.shape[1]
    x, y, w, h = visible
    x0 = math.floor((x - margin * w) * fx)
    y0 = math.floor((y - margin * h) * fy)
    x1 = math.ceil((x + (1 + margin) * w) * fx)
    y1 = math.ceil((y + (1 + margin) * h) * fy)
    x0, x1 = max(0, min(x0, cols - 1)), max(1, min(x1, cols))
    y0, y1 = max(0, min(y0, rows - 1)), max(1, min(y1, rows))
    return (x0, y0, max(x1, x0 + 1), max(y1, y0 + 1))


# np.take releases the GIL, so row bands looked up in parallel scale with the cores.
_WORKERS = max(1, min(4, os.cpu_count() or 1))
_POOL: ThreadPoolExecutor | None = None
# Below about a megapixel the pool's hand-off costs what the second core saves (0.9 ms either way
# for a 0.58 Mpx screen in "clip" mode, 2 cores); at 2.3 Mpx it saves 30 %.
PARALLEL_MIN_PIXELS = 1_000_000


def apply_lut(codes: np.ndarray, lut: np.ndarray, parallel: bool = True) -> np.ndarray:
    """uint16 codes through a table (uint8 grey or uint32 ARGB), in row bands on a thread pool."""
    global _POOL
    out = np.empty(codes.shape, dtype=lut.dtype)
    rows = codes.shape[0]
    # np.take with ``out`` and its default mode="raise" buffers the whole result and copies it
    # (numpy's documented behaviour): 10x slower into a fresh array (11 ms against 0.9 ms for an
    # 800x730 screen). A table covering every code of the codes' type cannot be indexed out of
    # range, so "clip" changes no value there; shorter tables keep the bounds check.
    covers = codes.dtype.kind == "u" and lut.shape[0] > np.iinfo(codes.dtype).max
    mode: Literal["clip", "raise"] = "clip" if covers else "raise"
    if not parallel or _WORKERS == 1 or codes.size < PARALLEL_MIN_PIXELS or rows < _WORKERS:
        np.take(lut, codes, out=out, mode=mode)
        return out
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="fpsm-lut")
    bounds = np.linspace(0, rows, _WORKERS + 1).astype(int)

    def band(a: int, b: int) -> None:
        np.take(lut, codes[a:b], out=out[a:b], mode=mode)

    jobs = [_POOL.submit(band, a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    for job in jobs:
        job.result()
    return out


def screen_codes(
    pyramid: DisplayPyramid, level: int, crop: tuple[int, int, int, int], screen_per_image: float
) -> np.ndarray:
    """A level crop's codes, resampled to the screen grid when the view is zoomed out.

    The level is already an area mean within a factor of two of the screen, so the last step is
    bilinear (ten times cheaper than another area mean at a fractional ratio, like trilinear
    mipmapping on a GPU).

    Args:
        level: pyramid level the crop is taken from.
        crop: (x0, y0, x1, y1) in that level's pixels.
        screen_per_image: screen pixels per full-size image pixel.

    Returns:
        A C-contiguous uint16 array; the level crop itself when zoomed in or already at screen size.
    """
    x0, y0, x1, y1 = crop
    codes = pyramid.levels[level][y0:y1, x0:x1]
    if not downsampled(pyramid, level, screen_per_image):
        return np.ascontiguousarray(codes)
    factor = screen_per_image * (pyramid.shape[1] / pyramid.levels[level].shape[1])
    width = max(1, round(codes.shape[1] * factor))
    height = max(1, round(codes.shape[0] * factor))
    return cv2.resize(codes, (width, height), interpolation=cv2.INTER_LINEAR)


def downsampled(pyramid: DisplayPyramid, level: int, screen_per_image: float) -> bool:
    """Whether :func:`screen_codes` resamples the level (the view is zoomed out past it)."""
    return screen_per_image * (pyramid.shape[1] / pyramid.levels[level].shape[1]) < 0.999


def device_codes(
    pyramid: DisplayPyramid,
    level: int,
    crop: tuple[int, int, int, int],
    origin: tuple[float, float],
    scale: tuple[float, float],
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """A level crop's codes sampled bilinearly at the centres of whole device pixels.

    :func:`screen_codes` keeps the crop's own extent, so its pixels come out a fraction of a
    device pixel in size and position, and Qt draws them through its scaled path. Here each
    code is one device pixel (the crop's ends rounded to the nearest pixel edge), so the film
    item draws them with a plain blit (:func:`viewer.image_view.device_blit_origin`). The
    bilinear weights are the ones :func:`screen_codes` uses; only the grid moves, by under
    half a device pixel.

    Args:
        crop: (x0, y0, x1, y1) in the level's pixels.
        origin: device position of the full-size image's (0, 0) corner.
        scale: device pixels per full-size image pixel, (x, y).

    Returns:
        (codes, rect): C-contiguous uint16 codes and the (x, y, width, height) they cover in
        full-size image pixels.
    """
    arr = pyramid.levels[level]
    per_level = (pyramid.shape[1] / arr.shape[1], pyramid.shape[0] / arr.shape[0])
    x0, y0, x1, y1 = crop
    affine = np.zeros((2, 3), dtype=np.float64)
    size: list[int] = []
    rect: list[float] = []
    for axis, (lo, hi) in enumerate(((x0, x1), (y0, y1))):
        f = scale[axis] * per_level[axis]  # device pixels per level pixel
        start = math.floor(origin[axis] + lo * f + 0.5)
        stop = max(start + 1, math.floor(origin[axis] + hi * f + 0.5))
        # Device pixel j's centre, start + j + 0.5, in level pixel indices (centres at k + 0.5).
        affine[axis, axis] = 1.0 / f
        affine[axis, 2] = (start + 0.5 - origin[axis]) / f - 0.5
        size.append(stop - start)
        rect += [(start - origin[axis]) / scale[axis], (stop - start) / scale[axis]]
    codes = cv2.warpAffine(
        arr,
        affine,
        (size[0], size[1]),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.ascontiguousarray(codes), (rect[0], rect[2], rect[1], rect[3])


def level_rect(
    pyramid: DisplayPyramid, level: int, crop: tuple[int, int, int, int]
) -> tuple[float, float, float, float]:
    """Where a level crop lies in full-size image pixels: (x, y, width, height)."""
    arr = pyramid.levels[level]
    sy = pyramid.shape[0] / arr.shape[0]
    sx = pyramid.shape[1] / arr.shape[1]
    x0, y0, x1, y1 = crop
    return (x0 * sx, y0 * sy, (x1 - x0) * sx, (y1 - y0) * sy)


def robust_range(
    pyramid: DisplayPyramid, low: float = 0.5, high: float = 99.5
) -> tuple[float, float]:
    """Percentile range of pixel values, from the smallest pyramid level (cheap)."""
    if pyramid.robust is not None and (low, high) == (0.5, 99.5):
        return pyramid.robust
    small = pyramid.levels[-1]
    lo, hi = np.percentile(small, [low, high])
    lo_v = pyramid.offset + float(lo) * pyramid.step
    hi_v = pyramid.offset + float(hi) * pyramid.step
    if hi_v <= lo_v:
        hi_v = lo_v + max(pyramid.step, 1e-3)
    return (lo_v, hi_v)


def histogram(pyramid: DisplayPyramid, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of pixel values from a mid pyramid level: (bin centres, counts)."""
    if pyramid.hist is not None and bins == 256:
        return pyramid.hist
    level = pyramid.levels[min(len(pyramid.levels) - 1, 2)]
    counts, edges = np.histogram(level, bins=bins)
    values = pyramid.offset + (edges[:-1] + edges[1:]) * 0.5 * pyramid.step
    return values, counts.astype(np.float64)


# Worklist thumbnails fit in a square of this side.
THUMB_SIZE = 56


def thumbnail_rgb(grey: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """A uint8 grey image shrunk into a ``size`` square, as (h, w, 3) RGB."""
    h, w = grey.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(
        grey, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    return np.repeat(small[..., None], 3, axis=2)


def pyramid_thumbnail(
    pyramid: DisplayPyramid, window: tuple[float, float], function: str = "LINEAR"
) -> np.ndarray:
    """The thumbnail of an image already decoded for display, from its smallest pyramid level."""
    lut = window_lut(pyramid, window[0], window[1], function)
    return thumbnail_rgb(apply_lut(pyramid.levels[-1], lut))


def image_thumbnail(
    pixels: np.ndarray, window: tuple[float, float], function: str = "LINEAR"
) -> np.ndarray:
    """The thumbnail of a decoded image at its own window, from every n-th pixel (cheap on 9 Mpx)."""
    step = max(1, max(pixels.shape[:2]) // (4 * THUMB_SIZE))
    grey = apply_window(pixels[::step, ::step], window[0], window[1], function)
    return thumbnail_rgb(grey)

"""Pasting disease patches into radiographs: the image maths of DADAM's CutMix and MixUp.

A patch (lesion box plus a margin of context) is scaled to the destination's pixel spacing (or, when
either spacing is unknown, to the same fraction of the film width), placed inside the lung field for
parenchymal findings (from a lung mask, an estimate, or a template) or at its source's relative
position for the others, shifted in grey level so that its margin matches the destination around
it, and blended with a feathered weight: ``out = dest + alpha * w * (patch - dest)``, where ``w`` is
1 over the lesion box and falls smoothly to 0 across the margin. CutMix pastes at ``alpha = 1``;
MixUp at the paper's 0.6. All work is done on the small patch region in float32 with OpenCV and numpy,
so one composition costs well under a millisecond beyond decoding and encoding the image.

Everything about a patch that does not depend on where it goes (its resized pixels, feather
weights, blend weights, the ring its margin is matched over and the patch's mean there) is a
:class:`PreparedPatch`; a :class:`ComposeCache` keeps them, and the destination's lung estimate,
between calls that only move patches (the studio's drag). The intensity match then needs only the
destination's sum over the ring, taken from three rectangle sums; the result is the same, bit for
bit, with or without a cache (the reference maths are :func:`match_offset` and :func:`blend_into`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

# Findings that live in the lung parenchyma are placed inside the lung field; the others (heart,
# pleura, mediastinum, bones, devices, abdomen) keep the position they had in their source image.
LUNG_FIELD_CLASSES = frozenset(
    {
        "Atelectasis",
        "Consolidation",
        "Edema",
        "Emphysema",
        "Fibrosis",
        "Infiltration",
        "Lung Lesion",
        "Lung Opacity",
        "Mass",
        "Nodule",
        "Pneumonia",
    }
)
MASK_SIZE = 128
# Template lung fields (PA view, display orientation) as fractions of the image: (cx, cy, ax, ay).
PRIOR_LUNGS = ((0.31, 0.45, 0.14, 0.25), (0.69, 0.45, 0.14, 0.25))


@dataclass(frozen=True, eq=False)
class PatchSpec:
    """A patch to paste and how.

    Attributes:
        pixels: (h, w) uint8 crop.
        box: Lesion box inside the crop (x0, y0, x1, y1), x1/y1 exclusive.
        label: CXR-LT class.
        center: Planned lesion centre as fractions of the destination (x, y).
        alpha: Blend weight of the patch (1 = CutMix, 0.6 = the paper's MixUp).
        scale: Extra size factor (the planner's jitter).
        spacing_mm: Source (row, column) spacing, None when unknown.
        image_size: Source image (width, height).
        patch_id: Library id, for the record.
        in_lung: Place inside the lung field (default: by class, ``LUNG_FIELD_CLASSES``).
        feather: Fraction of the margin the feathered edge spans (1 = all of it; 0 = hard edge).
        match: Intensity matching of this patch (None: ``compose``'s ``match``).
    """

    pixels: np.ndarray
    box: tuple[int, int, int, int]
    label: str
    center: tuple[float, float]
    alpha: float = 1.0
    scale: float = 1.0
    spacing_mm: tuple[float, float] | None = None
    image_size: tuple[int, int] | None = None
    patch_id: int = -1
    in_lung: bool | None = None
    feather: float = 1.0
    match: bool | None = None


@dataclass(frozen=True)
class Placement:
    """Where a patch went.

    Attributes:
        patch_id: Library id.
        label: CXR-LT class.
        region: The pasted crop in destination pixels (x0, y0, x1, y1).
        box: The lesion box in destination pixels (x0, y0, x1, y1): the new image's box.
        alpha: Blend weight used.
        scale: Total size factor from source to destination pixels.
        offset: Grey-level shift applied to match the destination.
        placed_in: "lung_mask", "lung_estimate", "lung_template" or "source_position".
    """

    patch_id: int
    label: str
    region: tuple[int, int, int, int]
    box: tuple[int, int, int, int]
    alpha: float
    scale: float
    offset: float
    placed_in: str


@dataclass(frozen=True, eq=False)
class Composition:
    """A composed image and what was pasted where."""

    image: np.ndarray
    placements: tuple[Placement, ...]


# -- feathering and blending ---------------------------------------------------------------------
def _ramp(n: int, b0: int, b1: int, feather: float = 1.0) -> np.ndarray:
    """1-D weights: smooth rise over [0, b0), 1 over the box, smooth fall over [b1, n).

    ``feather`` < 1 shortens each ramp to that fraction of its length, next to the box (outside
    it the weight is 0): 0 is a hard edge one pixel wide. 1 is the original ramp, bit for bit.
    """
    side = max(b1 - b0, 1)
    least = max(2.0, 0.1 * side)  # always some ramp, even where the margin was cut by the border
    left = max(float(b0), least)
    right = max(float(n - b1), least)
    i = np.arange(n, dtype=np.float32) + np.float32(0.5)
    if feather >= 1.0:
        t = np.minimum(np.minimum(i / left, (n - i) / right), 1.0)
    else:
        f = max(float(feather), 0.0)
        lo, ro = max(f * left, 1.0), max(f * right, 1.0)
        t = np.minimum(np.minimum((i - (left - lo)) / lo, (n - i - (right - ro)) / ro), 1.0)
    t = np.clip(t, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


@lru_cache(maxsize=4096)
def feather_weights(
    h: int, w: int, box: tuple[int, int, int, int], feather: float = 1.0
) -> np.ndarray:
    """(h, w) float32 weights: 1 over the lesion box, smoothstep to 0 at the crop's edge.

    ``feather`` (0-1) is the fraction of the margin the ramp spans (1: all of it, the default).
    Cached per shape, box and feather, and returned read-only: do not modify.
    """
    x0, y0, x1, y1 = box
    weights = np.outer(_ramp(h, y0, y1, feather), _ramp(w, x0, x1, feather))
    weights.setflags(write=False)
    return weights


def match_offset(patch: np.ndarray, dest: np.ndarray, weights: np.ndarray) -> float:
    """Grey shift that makes the patch's margin (weights < 1) match the destination's.

    Lesion contrast is kept: only the background level moves. With no margin, the whole region's
    means are matched.
    """
    ring = weights < 0.999
    if int(ring.sum()) < 8:
        ring = np.ones_like(ring)
    return float(dest[ring].mean(dtype=np.float64) - patch[ring].mean(dtype=np.float64))


def blend_into(
    dest: np.ndarray,
    patch: np.ndarray,
    weights: np.ndarray,
    x: int,
    y: int,
    alpha: float,
    offset: float = 0.0,
) -> None:
    """Blend a patch into ``dest`` in place: ``dest + alpha * w * (patch + offset - dest)``.

    Args:
        dest: (H, W) uint8 image, modified in place.
        patch: (h, w) uint8 or float patch; must fit at (x, y).
        weights: (h, w) feather weights in [0, 1].
        x: Left column of the patch in ``dest``.
        y: Top row of the patch in ``dest``.
        alpha: Blend weight.
        offset: Grey shift added to the patch first.
    """
    h, w = patch.shape
    region = dest[y : y + h, x : x + w]
    d = region.astype(np.float32)
    p = patch.astype(np.float32) + np.float32(offset)
    out = d + (np.float32(alpha) * weights) * (p - d)
    np.clip(np.rint(out), 0, 255, out=out)
    region[...] = out.astype(np.uint8)


# -- position-independent work -------------------------------------------------------------------
def _sum_u8(a: np.ndarray) -> int:
    """Exact sum of a uint8 array (OpenCV adds in integers, then in float64: exact below 2**53)."""
    return int(cv2.sumElems(a)[0]) if a.size else 0


@dataclass(frozen=True, eq=False)
class PreparedPatch:
    """A patch at its destination size, with everything about it that does not depend on where
    it goes. Pasting it anywhere gives what :func:`match_offset` and :func:`blend_into` give.

    Attributes:
        pixels: (h, w) uint8 patch at its destination size (read-only).
        weights: (h, w) float32 feather weights (read-only).
        blend: ``float32(alpha) * weights`` (read-only).
        as_float: ``pixels`` as float32 (read-only).
        ring_count: How many pixels the intensity match averages over (the margin ring,
            weights < 0.999, or the whole region when the ring has fewer than 8).
        core: Bounding rectangle (x0, y0, x1, y1) of the pixels outside the ring (empty when
            the ring is everything).
        core_ring: (rows, columns) of the ring pixels inside ``core`` (its corners).
        patch_mean: The patch's mean over the ring (float64), as :func:`match_offset` takes it.
    """

    pixels: np.ndarray
    weights: np.ndarray
    blend: np.ndarray
    as_float: np.ndarray
    ring_count: int
    core: tuple[int, int, int, int]
    core_ring: tuple[np.ndarray, np.ndarray]
    patch_mean: float

    def offset_in(self, region: np.ndarray) -> float:
        """The grey shift :func:`match_offset` gives for the destination ``region`` (uint8, the
        patch's size): ring sum = whole - core rectangle + the core's ring corners, in integers."""
        x0, y0, x1, y1 = self.core
        total = _sum_u8(region) - _sum_u8(region[y0:y1, x0:x1])
        rows, cols = self.core_ring
        if rows.size:
            total += int(region[rows, cols].sum(dtype=np.int64))
        # numpy's float64 mean of uint8 values is their exact sum over the count, as here.
        return float(float(total) / self.ring_count - self.patch_mean)

    def paste(self, dest: np.ndarray, x: int, y: int, offset: float = 0.0) -> None:
        """:func:`blend_into` of this patch at (x, y), in place, with fewer temporaries."""
        h, w = self.pixels.shape
        region = dest[y : y + h, x : x + w]
        d = region.astype(np.float32)
        if offset == 0.0:  # + 0.0 leaves every value as it is
            t = np.subtract(self.as_float, d)
        else:
            t = np.add(self.as_float, np.float32(offset))
            np.subtract(t, d, out=t)
        np.multiply(t, self.blend, out=t)  # (alpha * w) * (p - d), the same products
        np.add(t, d, out=t)
        np.rint(t, out=t)
        np.clip(t, 0, 255, out=t)
        np.copyto(region, t, casting="unsafe")  # whole numbers in 0..255: exact


def prepare_patch(
    pixels: np.ndarray,
    size: tuple[int, int],
    box: tuple[int, int, int, int],
    *,
    feather: float = 1.0,
    alpha: float = 1.0,
    interpolation: int = cv2.INTER_LINEAR,
) -> PreparedPatch:
    """Resize a patch to ``size`` (w, h) and work out its weights and its ring statistics.

    Args:
        pixels: (h, w) uint8 crop.
        size: Destination (width, height).
        box: Lesion box in the resized crop (x0, y0, x1, y1).
        feather: As :func:`feather_weights`.
        alpha: Blend weight.
        interpolation: OpenCV interpolation of the resize (``compose``: area when shrinking).
    """
    nw, nh = size
    ph, pw = pixels.shape
    pix = (
        pixels
        if (nw, nh) == (pw, ph)
        else cv2.resize(pixels, (nw, nh), interpolation=interpolation)
    )
    weights = feather_weights(nh, nw, box, float(feather))
    ring = weights < 0.999
    count = int(ring.sum())
    core = (0, 0, 0, 0)
    corners = (np.zeros(0, np.intp), np.zeros(0, np.intp))
    if count < 8:  # match_offset's rule: no margin, so the whole region's means
        ring = np.ones_like(ring)
        count = int(ring.size)
    else:
        rows = np.flatnonzero(~ring.all(axis=1))
        cols = np.flatnonzero(~ring.all(axis=0))
        if rows.size:
            y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
            core = (x0, y0, x1, y1)
            ys, xs = np.nonzero(ring[y0:y1, x0:x1])
            corners = (ys + y0, xs + x0)
    blend = np.float32(alpha) * weights
    as_float = pix.astype(np.float32)
    for a in (blend, as_float):
        a.setflags(write=False)
    if pix is not pixels:
        pix.setflags(write=False)
    return PreparedPatch(
        pix, weights, blend, as_float, count, core, corners,
        float(pix[ring].mean(dtype=np.float64)),
    )  # fmt: skip


class ComposeCache:
    """The work ``compose`` can keep between calls that only move patches (the studio's drag).

    Keeps the :class:`PreparedPatch` of the last few (patch, size, box, feather, alpha), at
    most ``max_patches`` of them and ``max_bytes`` of arrays (the newest is always kept: a
    patch a third of a 3000 px film takes about 30 MB), and the lung estimate of the last
    destination. Only read-only arrays are cached (the library's patch pixels, a loaded target),
    as they are taken not to change; a writeable one is worked out afresh each time. Not
    thread-safe: one cache per thread.
    """

    def __init__(self, max_patches: int = 8, max_bytes: int = 96 << 20) -> None:
        self.max_patches = int(max_patches)
        self.max_bytes = int(max_bytes)
        self._patches: OrderedDict[tuple[object, ...], tuple[np.ndarray, PreparedPatch]] = (
            OrderedDict()
        )
        self._bytes = 0
        self._lungs: tuple[np.ndarray, np.ndarray | None] | None = None
        self.hits = 0
        self.misses = 0

    @staticmethod
    def _size(source: np.ndarray, prepared: PreparedPatch) -> int:
        own = prepared.blend.nbytes + prepared.as_float.nbytes + prepared.core_ring[0].nbytes * 2
        return own + (0 if prepared.pixels is source else prepared.pixels.nbytes)

    def patch(
        self,
        pixels: np.ndarray,
        size: tuple[int, int],
        box: tuple[int, int, int, int],
        *,
        feather: float = 1.0,
        alpha: float = 1.0,
        interpolation: int = cv2.INTER_LINEAR,
    ) -> PreparedPatch:
        """:func:`prepare_patch`, from the cache when these pixels were prepared so before."""

        def work() -> PreparedPatch:
            return prepare_patch(
                pixels, size, box, feather=feather, alpha=alpha, interpolation=interpolation
            )

        if pixels.flags.writeable:
            return work()
        key = (id(pixels), tuple(size), tuple(box), float(feather), float(alpha), interpolation)
        hit = self._patches.get(key)
        if hit is not None:  # the entry holds the array, so no other array can have its id
            self._patches.move_to_end(key)
            self.hits += 1
            return hit[1]
        self.misses += 1
        prepared = work()
        self._patches[key] = (pixels, prepared)
        self._bytes += self._size(pixels, prepared)
        while len(self._patches) > 1 and (
            len(self._patches) > self.max_patches or self._bytes > self.max_bytes
        ):
            _, (source, old) = self._patches.popitem(last=False)
            self._bytes -= self._size(source, old)
        return prepared

    def lung_estimate(self, image: np.ndarray) -> np.ndarray | None:
        """:func:`estimate_lung_mask` of ``image`` (a copy: ``compose`` marks used places)."""
        if image.flags.writeable:
            return estimate_lung_mask(image)
        if self._lungs is None or self._lungs[0] is not image:
            self._lungs = (image, estimate_lung_mask(image))
        est = self._lungs[1]
        return None if est is None else est.copy()


# -- lung field ----------------------------------------------------------------------------------
def prior_lung_mask() -> np.ndarray:
    """The template lung field on a MASK_SIZE grid (bool, read-only)."""
    return _prior_region(1.0)


@lru_cache(maxsize=4)
def _prior_region(scale: float) -> np.ndarray:
    yy, xx = np.mgrid[0:MASK_SIZE, 0:MASK_SIZE].astype(np.float32) + 0.5
    yy /= MASK_SIZE
    xx /= MASK_SIZE
    mask = np.zeros((MASK_SIZE, MASK_SIZE), dtype=bool)
    for cx, cy, ax, ay in PRIOR_LUNGS:
        mask |= ((xx - cx) / (ax * scale)) ** 2 + ((yy - cy) / (ay * scale)) ** 2 <= 1.0
    mask.setflags(write=False)
    return mask


def estimate_lung_mask(image: np.ndarray) -> np.ndarray | None:
    """A rough lung field of a frontal film (display sense: lungs dark), on a MASK_SIZE grid.

    Inside a generous region around the template lungs (1.4 times their size, which keeps out the
    air and soft tissue beside and above the body), Otsu's threshold of the smoothed, downsampled
    image splits dark lung from bright mediastinum, heart, diaphragm and chest wall; the two
    largest dark components are the lungs. Returns None when the result is not lung-like (too
    small or large, both components on one side), so callers fall back to the template.

    Args:
        image: (H, W) uint8 display image.

    Returns:
        (MASK_SIZE, MASK_SIZE) bool mask, or None.
    """
    allowed = _prior_region(1.4)
    small = cv2.resize(image, (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (5, 5), 0)
    values = np.ascontiguousarray(small[allowed]).reshape(-1, 1)
    if int(values.max()) - int(values.min()) < 8:  # a flat picture has no lungs to find
        return None
    thr, _ = cv2.threshold(values, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = ((small < thr) & allowed).astype(np.uint8)
    dark = cv2.morphologyEx(dark, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    n, lab, stats, cents = cv2.connectedComponentsWithStats(dark, connectivity=4)
    min_area = 0.015 * MASK_SIZE * MASK_SIZE
    keep = sorted(
        ((int(stats[i][4]), i) for i in range(1, n) if stats[i][4] >= min_area), reverse=True
    )[:2]
    if not keep:
        return None
    mask = np.isin(lab, [i for _, i in keep])
    if not 0.08 <= float(mask.mean()) <= 0.55:
        return None
    if len(keep) == 2:
        xs = sorted(float(cents[i][0]) for _, i in keep)
        if not (xs[0] < MASK_SIZE / 2 < xs[1]):
            return None
    closed = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    return closed.astype(bool)


def resize_mask(mask: np.ndarray) -> np.ndarray:
    """Any lung mask (nonzero = lung) on the MASK_SIZE grid."""
    m = np.asarray(mask)
    if m.shape == (MASK_SIZE, MASK_SIZE):
        return m.astype(bool)
    small = cv2.resize(
        (m > 0).astype(np.uint8), (MASK_SIZE, MASK_SIZE), interpolation=cv2.INTER_NEAREST
    )
    return small.astype(bool)


def _choose_center(
    planned: tuple[float, float],
    field: np.ndarray,
    box_rel: tuple[float, float],
    rng: np.random.Generator,
) -> tuple[float, float]:
    """Keep the planned centre when the lesion box fits inside the field there, else sample one."""
    kw = max(1, int(round(box_rel[0] * MASK_SIZE)))
    kh = max(1, int(round(box_rel[1] * MASK_SIZE)))
    eroded = cv2.erode(field.astype(np.uint8), np.ones((kh, kw), np.uint8)).astype(bool)
    candidates = eroded if eroded.any() else field
    px = min(max(int(planned[0] * MASK_SIZE), 0), MASK_SIZE - 1)
    py = min(max(int(planned[1] * MASK_SIZE), 0), MASK_SIZE - 1)
    if candidates[py, px]:
        return planned
    ys, xs = np.nonzero(candidates)
    if ys.size == 0:
        return planned
    k = int(rng.integers(ys.size))
    return ((xs[k] + rng.random()) / MASK_SIZE, (ys[k] + rng.random()) / MASK_SIZE)


# -- composition ---------------------------------------------------------------------------------
def patch_scale(
    spec: PatchSpec, dest_shape: tuple[int, int], dest_spacing: tuple[float, float] | None
) -> float:
    """Source-to-destination size factor: by pixel spacing when both are known, else film width."""
    if spec.spacing_mm is not None and dest_spacing is not None:
        base = 0.5 * (spec.spacing_mm[0] / dest_spacing[0] + spec.spacing_mm[1] / dest_spacing[1])
    elif spec.image_size is not None and spec.image_size[0] > 0:
        base = dest_shape[1] / float(spec.image_size[0])
    else:
        base = 1.0
    return base * spec.scale


def compose(
    dest: np.ndarray,
    patches: Sequence[PatchSpec],
    *,
    dest_spacing: tuple[float, float] | None = None,
    lung_mask: np.ndarray | None = None,
    estimate_lungs: bool = True,
    match: bool = True,
    rng: np.random.Generator | None = None,
    cache: ComposeCache | None = None,
) -> Composition:
    """Paste patches into a copy of ``dest``.

    Args:
        dest: (H, W) uint8 display image (not modified).
        patches: What to paste, in order (later patches over earlier ones).
        dest_spacing: Destination (row, column) spacing in mm, if known.
        lung_mask: The destination's lung mask (any size, nonzero = lung); when None and
            ``estimate_lungs`` it is estimated, and the template is the last resort.
        estimate_lungs: Estimate a lung field from the image when no mask is given.
        match: Shift each patch's grey level to the destination around it.
        rng: Randomness for re-placing a lesion that does not fit the lung field (seeded by the
            caller for reproducibility).
        cache: Keeps the work that does not depend on placement between calls (the same
            image comes out with or without it).

    Returns:
        The new image and the placements (lesion boxes in destination pixels).
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    out = np.array(dest, dtype=np.uint8, copy=True)
    H, W = out.shape
    kinds = [
        spec.label in LUNG_FIELD_CLASSES if spec.in_lung is None else spec.in_lung
        for spec in patches
    ]
    field: np.ndarray | None = None
    field_kind = "lung_template"
    if any(kinds):
        if lung_mask is not None:
            field, field_kind = resize_mask(lung_mask).copy(), "lung_mask"
        else:
            est = None
            if estimate_lungs:
                est = cache.lung_estimate(dest) if cache is not None else estimate_lung_mask(dest)
            if est is not None:
                field, field_kind = est, "lung_estimate"
            else:
                field = prior_lung_mask().copy()
    placements: list[Placement] = []
    for spec, in_lung in zip(patches, kinds, strict=True):
        s = patch_scale(spec, (H, W), dest_spacing)
        ph, pw = spec.pixels.shape
        fit = min(1.0, 0.9 * W / (pw * s), 0.9 * H / (ph * s))  # never larger than the film
        s *= fit
        nw, nh = max(2, int(round(pw * s))), max(2, int(round(ph * s)))
        sx, sy = nw / pw, nh / ph
        bx0, by0 = int(round(spec.box[0] * sx)), int(round(spec.box[1] * sy))
        bx1 = min(bx0 + max(1, int(round((spec.box[2] - spec.box[0]) * sx))), nw)
        by1 = min(by0 + max(1, int(round((spec.box[3] - spec.box[1]) * sy))), nh)
        center = spec.center
        placed_in = "source_position"
        if in_lung and field is not None:
            free = field if field.any() else prior_lung_mask()
            center = _choose_center(center, free, ((bx1 - bx0) / W, (by1 - by0) / H), rng)
            placed_in = field_kind
        # Put the lesion centre at the chosen point, then keep the whole crop on the film.
        x = int(round(center[0] * W - 0.5 * (bx0 + bx1)))
        y = int(round(center[1] * H - 0.5 * (by0 + by1)))
        x = min(max(x, 0), W - nw)
        y = min(max(y, 0), H - nh)
        prepare = cache.patch if cache is not None else prepare_patch
        prepared = prepare(
            spec.pixels,
            (nw, nh),
            (bx0, by0, bx1, by1),
            feather=float(spec.feather),
            alpha=float(spec.alpha),
            interpolation=cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR,
        )
        matched = match if spec.match is None else spec.match
        offset = prepared.offset_in(out[y : y + nh, x : x + nw]) if matched else 0.0
        prepared.paste(out, x, y, offset)
        box = (x + bx0, y + by0, x + bx1, y + by1)
        if field is not None:  # the next lung lesion goes elsewhere
            m0 = (int(box[0] * MASK_SIZE / W), int(box[1] * MASK_SIZE / H))
            m1 = (int(np.ceil(box[2] * MASK_SIZE / W)), int(np.ceil(box[3] * MASK_SIZE / H)))
            field[m0[1] : m1[1], m0[0] : m1[0]] = False
        placements.append(
            Placement(
                spec.patch_id,
                spec.label,
                (x, y, x + nw, y + nh),
                box,
                float(spec.alpha),
                float(s),
                float(offset),
                placed_in,
            )
        )
    return Composition(out, tuple(placements))

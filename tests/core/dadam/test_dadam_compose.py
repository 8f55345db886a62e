"""Composition invariants: pixels where expected, exact alpha blend, scaling, placement, lungs."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import pytest
from test_dadam_support import add_lesion, chest

from fpsm_core.dadam.composition import (
    MASK_SIZE,
    ComposeCache,
    PatchSpec,
    blend_into,
    compose,
    estimate_lung_mask,
    feather_weights,
    match_offset,
    prepare_patch,
    prior_lung_mask,
)


def _patch(
    size: int = 24, margin: int = 6, bg: int = 100, lesion: int = 220
) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    pix = np.full((size, size), bg, np.uint8)
    pix[margin:-margin, margin:-margin] = lesion
    return pix, (margin, margin, size - margin, size - margin)


def test_feather_weights_are_one_on_the_box_and_fall_to_the_edge() -> None:
    w = feather_weights(30, 40, (8, 6, 32, 24))
    assert w.shape == (30, 40) and not w.flags.writeable
    assert np.all(w[6:24, 8:32] == 1.0)
    assert w[0, 0] < 0.01 and w[15, 0] < 0.1 and w[0, 20] < 0.1
    assert np.all(np.diff(w[15, :8]) > 0) and np.all(np.diff(w[15, 32:]) < 0)
    # A box touching the crop edge still gets a soft edge.
    e = feather_weights(20, 20, (0, 0, 20, 20))
    assert e[0, 10] < 0.5 and e[10, 10] == 1.0


def test_cutmix_puts_the_patch_in_the_box_and_leaves_the_rest() -> None:
    dest = np.random.default_rng(1).integers(0, 80, (96, 128), dtype=np.uint8)
    pix, box = _patch()
    spec = PatchSpec(
        pix,
        box,
        "Cardiomegaly",
        center=(0.25, 0.5),
        alpha=1.0,
        spacing_mm=(0.2, 0.2),
        image_size=(128, 96),
    )
    out = compose(dest, [spec], dest_spacing=(0.2, 0.2), match=False)
    (pl,) = out.placements
    x0, y0, x1, y1 = pl.box
    assert (x1 - x0, y1 - y0) == (12, 12) and pl.scale == pytest.approx(1.0)
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == (32.0, 48.0)  # the planned centre (source position)
    assert pl.placed_in == "source_position"
    assert np.all(out.image[y0:y1, x0:x1] == 220)
    rx0, ry0, rx1, ry1 = pl.region
    outside = np.ones(dest.shape, bool)
    outside[ry0:ry1, rx0:rx1] = False
    assert np.array_equal(out.image[outside], dest[outside])
    assert np.array_equal(dest, np.random.default_rng(1).integers(0, 80, (96, 128), dtype=np.uint8))


def test_mixup_alpha_blend_is_exact() -> None:
    dest = np.random.default_rng(2).integers(0, 256, (64, 64), dtype=np.uint8)
    pix = np.random.default_rng(3).integers(0, 256, (20, 20), dtype=np.uint8)
    box = (5, 5, 15, 15)
    spec = PatchSpec(pix, box, "Pleural Other", center=(0.5, 0.5), alpha=0.6, image_size=(64, 64))
    out = compose(dest, [spec], match=False)
    (pl,) = out.placements
    x0, y0, x1, y1 = pl.box
    rx, ry = pl.region[:2]
    expected = np.rint(
        0.4 * dest[y0:y1, x0:x1].astype(np.float64) + 0.6 * pix[box[1] : box[3], box[0] : box[2]]
    )
    got = out.image[y0:y1, x0:x1].astype(np.float64)
    assert np.abs(got - expected).max() <= 1.0
    assert np.mean(got == expected) > 0.95  # only float32 ties at .5 may differ
    # In the margin the weight is alpha times the feather.
    w = feather_weights(20, 20, box)
    full = (
        0.4 * 0
        + dest[ry : ry + 20, rx : rx + 20]
        + 0.6 * w * (pix.astype(np.float64) - dest[ry : ry + 20, rx : rx + 20])
    )
    assert np.abs(out.image[ry : ry + 20, rx : rx + 20] - np.rint(full)).max() <= 1.0


def test_blend_into_writes_in_place_with_offset() -> None:
    dest = np.full((10, 10), 50, np.uint8)
    blend_into(
        dest, np.full((4, 4), 100, np.uint8), np.ones((4, 4), np.float32), 3, 2, 0.5, offset=-20
    )
    assert np.all(dest[2:6, 3:7] == 65) and dest[0, 0] == 50


def test_intensity_matching_moves_the_background_and_keeps_lesion_contrast() -> None:
    dest = np.full((80, 80), 60, np.uint8)
    pix, box = _patch(size=30, margin=8, bg=180, lesion=230)
    spec = PatchSpec(pix, box, "Hernia", center=(0.5, 0.5), image_size=(80, 80))
    (pl,) = compose(dest, [spec], match=True).placements
    out = compose(dest, [spec], match=True).image
    x0, y0, x1, y1 = pl.box
    assert pl.offset == pytest.approx(-120.0, abs=1.0)
    assert np.all(np.abs(out[y0:y1, x0:x1].astype(int) - 110) <= 1)  # 230 - 120: contrast kept
    rx0, ry0, rx1, ry1 = pl.region
    assert abs(int(out[ry0 + 1, (rx0 + rx1) // 2]) - 60) <= 2  # the margin blends into the dest


def test_scale_follows_pixel_spacing_or_film_width() -> None:
    dest = np.zeros((200, 200), np.uint8)
    pix, box = _patch(size=20, margin=5)
    by_mm = PatchSpec(
        pix, box, "Fracture", (0.5, 0.5), spacing_mm=(0.2, 0.2), image_size=(100, 100)
    )
    (pl,) = compose(dest, [by_mm], dest_spacing=(0.1, 0.1)).placements
    assert pl.box[2] - pl.box[0] == 20 and pl.scale == pytest.approx(2.0)
    by_width = PatchSpec(pix, box, "Fracture", (0.5, 0.5), image_size=(400, 400))
    (pl,) = compose(dest, [by_width], dest_spacing=(0.1, 0.1)).placements
    assert pl.box[2] - pl.box[0] == 5 and pl.scale == pytest.approx(0.5)
    jitter = PatchSpec(pix, box, "Fracture", (0.5, 0.5), scale=1.5, image_size=(200, 200))
    (pl,) = compose(dest, [jitter]).placements
    assert pl.box[2] - pl.box[0] == 15
    huge = PatchSpec(
        np.zeros((400, 400), np.uint8),
        (100, 100, 300, 300),
        "Edema",
        (0.5, 0.5),
        image_size=(200, 200),
    )
    (pl,) = compose(dest, [huge]).placements
    assert pl.region[2] - pl.region[0] <= 180  # never larger than the film


def test_lung_findings_land_inside_the_lung_mask() -> None:
    dest, lungs = chest(128, seed=5)
    pix, box = _patch(size=16, margin=4)
    rng = np.random.default_rng(0)
    for k in range(20):
        planned = (rng.uniform(0, 1), rng.uniform(0, 1))  # often outside the lungs
        spec = PatchSpec(pix, box, "Nodule", planned, image_size=(128, 128))
        (pl,) = compose(dest, [spec], lung_mask=lungs, rng=np.random.default_rng(k)).placements
        x0, y0, x1, y1 = pl.box
        assert pl.placed_in == "lung_mask"
        assert lungs[y0:y1, x0:x1].mean() > 0.9
    # Not a parenchymal finding: stays at its planned place, even outside the lungs.
    spec = PatchSpec(pix, box, "Pneumoperitoneum", (0.5, 0.9), image_size=(128, 128))
    (pl,) = compose(dest, [spec], lung_mask=lungs).placements
    assert pl.placed_in == "source_position" and (pl.box[1] + pl.box[3]) / 2 == pytest.approx(
        0.9 * 128, abs=1
    )


def test_two_lesions_do_not_overlap_and_estimate_is_used_without_a_mask() -> None:
    dest, lungs = chest(128, seed=6)
    pix, box = _patch(size=16, margin=4)
    specs = [PatchSpec(pix, box, "Nodule", (0.3, 0.45), image_size=(128, 128)) for _ in range(2)]
    out = compose(dest, specs, rng=np.random.default_rng(3))
    a, b = (p.box for p in out.placements)
    assert {p.placed_in for p in out.placements} == {"lung_estimate"}
    assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    for x0, y0, x1, y1 in (a, b):
        assert lungs[y0:y1, x0:x1].mean() > 0.8
    # Without estimation, the template lung field is used.
    out = compose(dest, specs[:1], estimate_lungs=False)
    assert out.placements[0].placed_in == "lung_template"


def test_estimate_lung_mask_finds_the_lungs_or_declines() -> None:
    for seed in range(3):
        img, lungs = chest(256, seed=seed)
        add_lesion(img, 80, 110, 10)
        est = estimate_lung_mask(img)
        assert est is not None and est.shape == (MASK_SIZE, MASK_SIZE)
        small = lungs[:: 256 // MASK_SIZE, :: 256 // MASK_SIZE]
        iou = (est & small).sum() / (est | small).sum()
        assert iou > 0.75
    flat = np.full((128, 128), 120, np.uint8)
    assert estimate_lung_mask(flat) is None
    noise = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    assert estimate_lung_mask(noise) is None
    assert 0.1 < prior_lung_mask().mean() < 0.35


def _reference_paste(
    dest: np.ndarray, pix: np.ndarray, box: tuple[int, int, int, int], x: int, y: int, **kw: Any
) -> tuple[np.ndarray, float]:
    """The paste as match_offset + blend_into define it (compose's maths before the cache)."""
    out = dest.copy()
    h, w = pix.shape
    weights = feather_weights(h, w, box, kw.get("feather", 1.0))
    offset = match_offset(pix, out[y : y + h, x : x + w], weights) if kw.get("match") else 0.0
    blend_into(out, pix, weights, x, y, kw.get("alpha", 1.0), offset)
    return out, offset


@pytest.mark.parametrize("feather", [1.0, 0.35, 0.0])
@pytest.mark.parametrize("alpha", [1.0, 0.6, 0.137])
def test_a_prepared_patch_pastes_exactly_as_the_reference_maths(
    feather: float, alpha: float
) -> None:
    rng = np.random.default_rng(int(100 * feather + 1000 * alpha))
    dest = rng.integers(0, 256, (240, 300), dtype=np.uint8)
    corners = 0
    for size, box in (
        ((57, 83), (9, 12, 50, 70)),
        ((160, 140), (30, 30, 130, 110)),  # a wide margin: the ring dips into the core's corners
        ((40, 30), (0, 0, 40, 30)),  # no margin: the whole region is matched
        ((5, 6), (1, 1, 4, 5)),
    ):
        pix = rng.integers(0, 256, size[::-1], dtype=np.uint8)
        prepared = prepare_patch(pix, size, box, feather=feather, alpha=alpha)
        corners += prepared.core_ring[0].size
        for _ in range(5):  # anywhere on the film: only the destination's ring sum changes
            x = int(rng.integers(0, dest.shape[1] - size[0]))
            y = int(rng.integers(0, dest.shape[0] - size[1]))
            want, offset = _reference_paste(
                dest, pix, box, x, y, feather=feather, alpha=alpha, match=True
            )
            got = dest.copy()
            region = got[y : y + size[1], x : x + size[0]]
            assert prepared.offset_in(region) == offset  # the same float, not just close
            prepared.paste(got, x, y, offset)
            assert np.array_equal(got, want)
            got = dest.copy()
            prepared.paste(got, x, y)
            assert np.array_equal(
                got, _reference_paste(dest, pix, box, x, y, feather=feather, alpha=alpha)[0]
            )
    assert corners > 0 or feather < 1.0


def test_compose_with_a_cache_gives_the_same_image_move_after_move() -> None:
    dest, _ = chest(256, seed=2)
    dest.setflags(write=False)  # a loaded target: the cache may keep its lung estimate
    rng = np.random.default_rng(4)
    big = rng.integers(60, 200, (90, 70), dtype=np.uint8)
    small, box = _patch(size=20, margin=5)
    for a in (big, small):
        a.setflags(write=False)  # library pixels are read-only
    cache = ComposeCache()
    for k in range(12):
        specs = [
            PatchSpec(big, (15, 20, 55, 70), "Consolidation", (rng.random(), rng.random()),
                      alpha=0.6, scale=0.8 + 0.05 * (k % 3), image_size=(256, 256),
                      feather=0.5 if k >= 6 else 1.0),
            PatchSpec(small, box, "Nodule", (rng.random(), rng.random()), image_size=(128, 128)),
        ]  # fmt: skip
        kw: dict[str, Any] = {"rng": np.random.default_rng(k)}
        want = compose(dest, specs, **kw)
        got = compose(dest, specs, cache=cache, rng=np.random.default_rng(k))
        assert np.array_equal(got.image, want.image)
        assert got.placements == want.placements
    # Moves reuse the prepared patches: only the first of each size/feather worked them out.
    assert cache.hits > cache.misses
    assert cache.misses <= 2 * 4 and len(cache._patches) <= cache.max_patches


def test_the_cache_takes_writeable_arrays_afresh() -> None:
    dest = np.random.default_rng(9).integers(0, 256, (100, 100), dtype=np.uint8)
    pix, box = _patch(size=24, margin=6)
    spec = PatchSpec(pix, box, "Nodule", (0.4, 0.5), image_size=(100, 100))
    cache = ComposeCache()
    first = compose(dest, [spec], cache=cache).image
    pix[6:-6, 6:-6] = 30  # changed in place: a writeable array is never kept
    dest[:50] = 0
    again = compose(dest, [spec], cache=cache)
    assert np.array_equal(again.image, compose(dest, [spec]).image)
    assert not np.array_equal(again.image, first)
    assert cache.hits == 0 and not cache._patches and cache._lungs is None


def test_the_cache_keeps_to_its_byte_budget_and_always_the_newest() -> None:
    rng = np.random.default_rng(5)
    pix = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    pix.setflags(write=False)
    one = 2 * 4 * 60 * 60 + 60 * 60  # blend + as_float (float32) + the resized pixels
    cache = ComposeCache(max_patches=8, max_bytes=int(2.5 * one))
    for k, alpha in enumerate((1.0, 0.9, 0.8, 0.7)):
        cache.patch(pix, (60, 60), (10, 10, 50, 50), alpha=alpha, interpolation=cv2.INTER_AREA)
        assert len(cache._patches) == min(k + 1, 2)
    assert cache._bytes <= cache.max_bytes
    newest = cache.patch(pix, (60, 60), (10, 10, 50, 50), alpha=0.7, interpolation=cv2.INTER_AREA)
    assert cache.hits == 1 and float(newest.blend.max()) == pytest.approx(0.7)
    tiny = ComposeCache(max_bytes=1)  # below one entry: the newest still stays
    tiny.patch(pix, (60, 60), (10, 10, 50, 50))
    tiny.patch(pix, (60, 60), (10, 10, 50, 50))
    assert len(tiny._patches) == 1 and tiny.hits == 1

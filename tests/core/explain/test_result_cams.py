"""ResultCams: a result's maps per member and ensemble, mapped back onto the image; level shares."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fpsm_core.explain import (
    ENSEMBLE,
    FUSED,
    ExplainError,
    ResultCams,
    level_shares,
)
from tests.synthetic_result import synthetic_result


def test_levels_per_member_and_for_the_ensemble() -> None:
    cams = ResultCams(synthetic_result(((4, 3, 2), (4, 3))))
    assert cams.levels == (4, 3, 2)
    assert cams.levels_of(ENSEMBLE) == (4, 3, 2)
    assert cams.levels_of(0) == (4, 3, 2)
    assert cams.levels_of(1) == (4, 3)


def test_maps_are_display_maps_on_the_requested_grid() -> None:
    result = synthetic_result()
    cams = ResultCams(result)
    c = result.findings[0].index
    maps = {key: cams.map(c, key, (60, 45)) for key in (FUSED, 4, 3, 2)}
    for m in maps.values():
        assert m.shape == (60, 45) and m.dtype == np.float32
        assert 0.0 <= m.min() and 0.5 < m.max() <= 1.0
    assert not np.array_equal(maps[3], maps[2])
    assert not np.array_equal(maps[FUSED], maps[2])
    assert cams.map(c, 2).shape == result.image_shape  # default: the image's own grid


def test_a_peak_lands_where_the_image_lies_in_the_letterbox() -> None:
    # A 120 x 90 portrait image at a 64 px input: 48 px wide, 8 px of padding left and right.
    result = synthetic_result(image_shape=(120, 90))
    box = result.letterboxes[0]
    assert (box.offset_x, box.width, box.offset_y, box.height) == (8, 48, 0, 64)
    level2 = np.zeros_like(result.cams[0][2])
    level2[:, 4, 1] = 1.0  # grid cell (4, 1) of 8 x 8 = input x 8..16: the image's left edge
    cams = ResultCams(replace(result, cams=((*result.cams[0][:2], level2),)))
    on_image = cams.map(0, 2, (120, 90))
    row, col = np.unravel_index(np.argmax(on_image), on_image.shape)
    assert 60 <= row <= 75 and col <= 12
    # Every class's maps cropped (not resampled): 6 of the 8 columns cover the image.
    every = cams.image_maps()
    assert every.levels == (4, 3, 2)
    assert every.maps.shape == (26, 3, 8, 6) and every.fused.shape == (26, 8, 6)
    assert every.maps[0, 2, 4, 0] == pytest.approx(1.0)


def test_fusion_weights_are_the_levels_positive_shares() -> None:
    result = synthetic_result()
    cams = ResultCams(result)
    c = result.findings[3].index
    weights = cams.fusion_weights(c)
    sums = [float(raw[c].sum()) for raw in result.cams[0]]
    assert list(weights) == [4, 3, 2]
    assert sum(weights.values()) == pytest.approx(1.0)
    for (level, w), s in zip(weights.items(), sums, strict=True):
        assert w == pytest.approx(s / sum(sums), rel=1e-5), level
    np.testing.assert_allclose(cams.image_maps().shares[c], sums, rtol=1e-5)


def test_the_ensemble_maps_are_the_mean_of_the_members_raw_maps() -> None:
    result = synthetic_result(((4, 3, 2), (4, 3, 2)), seed=3)
    cams = ResultCams(result)
    ens = cams.camset(ENSEMBLE)
    for j in range(3):
        expected = (result.cams[0][j] + result.cams[1][j]) / 2
        np.testing.assert_allclose(ens.raw[j][0], expected, rtol=1e-6)
    c = result.findings[0].index
    assert not np.array_equal(cams.map(c, 3, (30, 20), member=0), cams.map(c, 3, (30, 20)))
    assert set(cams.raw_arrays()) == {f"raw_m{i}_L{lv}" for i in (0, 1) for lv in (4, 3, 2)}


def test_level_shares_split_each_members_logit_without_cams() -> None:
    result = synthetic_result(((4, 3, 2), (4, 3)), cams=False)
    finding = result.findings[0]
    shares = level_shares(result, finding.index)
    assert [(s.member, s.level) for s in shares] == [
        ("m0", 4),
        ("m0", 3),
        ("m0", 2),
        ("m1", 4),
        ("m1", 3),
    ]
    for m, name in enumerate(result.member_names):
        mine = [s for s in shares if s.member == name]
        assert sum(s.logit for s in mine) == pytest.approx(sum(finding.level_logits[m]), abs=1e-5)
        assert sum(abs(s.share) for s in mine) == pytest.approx(1.0)
    with pytest.raises(ExplainError, match="no CAMs"):
        ResultCams(result)

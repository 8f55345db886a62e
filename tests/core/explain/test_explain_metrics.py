"""Localisation metrics on hand-made maps and boxes."""

from __future__ import annotations

import numpy as np
import pytest

from fpsm_core.explain import (
    ExplainError,
    box_iou,
    box_mask,
    energy_in_box,
    localisation_scores,
    pointing_game,
    scale_boxes,
)


def test_box_mask_uses_pixel_centres():
    mask = box_mask((10, 10), (2, 3, 5, 7))
    rows, cols = np.nonzero(mask)
    assert set(cols) == {2, 3, 4} and set(rows) == {3, 4, 5, 6}
    union = box_mask((10, 10), [(0, 0, 1, 1), (9, 9, 10, 10)])
    assert union.sum() == 2 and union[0, 0] and union[9, 9]


def test_pointing_game_hit_miss_tolerance_and_zero_map():
    maps = np.zeros((4, 10, 10))
    maps[0, 4, 3] = 1.0  # inside (2, 3, 5, 7)
    maps[1, 0, 9] = 1.0  # far outside
    maps[2, 4, 5] = 1.0  # one column right of the box (columns 2..4)
    # maps[3] stays zero: a miss
    box = (2, 3, 5, 7)
    np.testing.assert_array_equal(pointing_game(maps, box), [True, False, False, False])
    np.testing.assert_array_equal(
        pointing_game(maps, box, tolerance=1.0), [True, False, True, False]
    )


def test_energy_in_box_by_hand():
    maps = np.ones((2, 10, 10))
    maps[1] = 0.0
    energy = energy_in_box(maps, (0, 0, 5, 10))
    assert energy[0] == pytest.approx(0.5)
    assert np.isnan(energy[1])
    signed = np.full((4, 4), -1.0)
    signed[0, 0] = 2.0
    assert energy_in_box(signed, (0, 0, 1, 1)) == pytest.approx(1.0)  # negatives clipped


def test_iou_of_thresholded_map_by_hand():
    maps = np.zeros((3, 10, 10))
    maps[0, 2:6, 2:6] = 1.0  # exactly the box
    maps[1, 2:6, 4:8] = 1.0  # half overlap: 8 / 24
    maps[1, 0, 0] = 0.4  # below half the maximum: ignored
    iou = box_iou(maps, (2, 2, 6, 6), threshold=0.5)
    np.testing.assert_allclose(iou, [1.0, 8 / 24, 0.0])


def test_scores_per_level_keep_the_leading_shape():
    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 16, 16))
    scores = localisation_scores(maps, (4, 4, 12, 12), threshold=0.3)
    assert scores.hit.shape == scores.energy.shape == scores.iou.shape == (2, 3)
    assert scores.hit.dtype == bool


def test_scale_boxes_from_image_to_map():
    assert scale_boxes([(100, 50, 300, 250)], (1000, 2000), (10, 20)) == [(1.0, 0.5, 3.0, 2.5)]


@pytest.mark.parametrize(
    ("region", "message"),
    [
        ((5, 5, 5, 8), "is empty"),
        ((20, 20, 30, 30), "cover no pixel of a 10x10 map"),
        ((1, 2, 3), "must be \\(x_min, y_min, x_max, y_max\\)"),
        (np.ones((4, 4), dtype=bool), "does not fit maps of \\(10, 10\\)"),
    ],
)
def test_bad_boxes_raise_one_sentence(region, message):
    with pytest.raises(ExplainError, match=message):
        pointing_game(np.ones((10, 10)), region)

"""The viewer's numpy parts: window/level tables, pyramid, presets, prevalence, exports, CAM colours."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.io import apply_window, load_image
from tests.viewer.helpers import SPACING_MM, chest_like, write_dicom
from viewer import display
from viewer.image_view import distance_mm, window_presets
from viewer.prevalence import prevalence_tiers


def test_pyramid_is_exact_for_dicom_pixels_and_matches_display_uint8(tmp_path: Path) -> None:
    image = load_image(write_dicom(tmp_path / "a.dcm", chest_like(300, 260)))
    pyr = display.build_pyramid(image.pixels)
    assert pyr.exact and pyr.step == 1.0
    assert pyr.shape == image.shape
    values = pyr.offset + pyr.levels[0].astype(np.float64) * pyr.step
    np.testing.assert_array_equal(values, image.pixels)
    for window in (image.window, (1500.0, 800.0), (3000.0, 1.0)):
        lut = display.window_lut(pyr, *window, image.voi_function)
        shown = display.apply_lut(pyr.levels[0], lut)
        np.testing.assert_array_equal(shown, image.display_uint8(window))


def test_invert_is_the_negative_and_parallel_lookup_equals_serial() -> None:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 4096, size=(900, 700)).astype(np.float32)
    pyr = display.build_pyramid(pixels)
    plain = display.window_lut(pyr, 2000, 1000)
    inverted = display.window_lut(pyr, 2000, 1000, invert=True)
    np.testing.assert_array_equal(inverted, 255 - plain)
    serial = display.apply_lut(pyr.levels[0], plain, parallel=False)
    parallel = display.apply_lut(pyr.levels[0], plain, parallel=True)
    np.testing.assert_array_equal(serial, parallel)
    argb = display.apply_lut(pyr.levels[0], plain.astype(np.uint32) | np.uint32(0xFF000000))
    assert argb.dtype == np.uint32
    np.testing.assert_array_equal(argb & 0xFF, serial)


def test_float_pixels_quantise_within_one_step_and_nan_is_lowest() -> None:
    pixels = np.linspace(-1.0, 1.0, 200 * 300, dtype=np.float32).reshape(200, 300)
    pixels[0, 0] = np.nan
    pyr = display.build_pyramid(pixels)
    assert not pyr.exact
    values = pyr.offset + pyr.levels[0].astype(np.float64) * pyr.step
    finite = np.isfinite(pixels)
    assert np.max(np.abs(values[finite] - pixels[finite])) <= pyr.step
    assert pyr.levels[0][0, 0] == 0


def test_pyramid_levels_halve_down_to_the_minimum_side() -> None:
    pyr = display.build_pyramid(np.zeros((3000, 2000), dtype=np.uint16))
    shapes = [lv.shape for lv in pyr.levels]
    assert shapes[0] == (3000, 2000) and shapes[1] == (1500, 1000)
    assert max(shapes[-1]) < 2 * display.MIN_LEVEL_SIDE
    assert display.pick_level(pyr, 1.0) == 0
    assert display.pick_level(pyr, 0.5) == 1
    assert display.pick_level(pyr, 0.3) == 1
    assert display.pick_level(pyr, 0.2) == 2
    assert display.pick_level(pyr, 0.001) == len(shapes) - 1


def test_crop_and_screen_codes_cover_the_visible_part_at_screen_size() -> None:
    pyr = display.build_pyramid(np.arange(2000 * 1000, dtype=np.float32).reshape(2000, 1000) % 4000)
    crop = display.crop_for_view(pyr, 1, (100, 200, 400, 300), margin=0.0)
    assert crop == (50, 100, 250, 250)
    assert display.level_rect(pyr, 1, crop) == (100.0, 200.0, 400.0, 300.0)
    codes = display.screen_codes(pyr, 1, crop, screen_per_image=0.3)
    assert codes.shape == (round(150 * 0.6), round(200 * 0.6))
    assert display.screen_codes(pyr, 0, (0, 0, 10, 10), 2.0).shape == (10, 10)
    # A view far outside the film still gives a valid, non-empty crop.
    x0, y0, x1, y1 = display.crop_for_view(pyr, 0, (-5000, -5000, 10, 10))
    assert x1 > x0 and y1 > y0


def test_presets_order_lung_soft_bone_and_keep_the_dicom_window() -> None:
    presets = window_presets((1234.0, 567.0), (0.0, 1000.0))
    assert presets["dicom"] == (1234.0, 567.0)
    assert presets["auto"] == (500.0, 1000.0)
    assert presets["lung"][0] < presets["soft tissue"][0] < presets["bone"][0]
    assert set(presets) == {"dicom", "auto", "lung", "soft tissue", "bone"}


def test_distance_uses_row_and_column_spacing_or_pixels() -> None:
    assert distance_mm((0, 0), (10, 0), SPACING_MM) == pytest.approx((10 * SPACING_MM[1], "mm"))
    assert distance_mm((0, 0), (0, 10), SPACING_MM) == pytest.approx((10 * SPACING_MM[0], "mm"))
    assert distance_mm((0, 0), (3, 4), None) == (5.0, "px")


def test_prevalence_tiers_split_ranked_labels_in_thirds_and_need_counts() -> None:
    assert prevalence_tiers(None) == {}
    counts = {f"c{i}": 10 * i for i in range(9)}
    tiers = prevalence_tiers(counts)
    assert [tiers[f"c{i}"] for i in (8, 7, 6)] == ["head"] * 3
    assert [tiers[f"c{i}"] for i in (5, 4, 3)] == ["medium"] * 3
    assert [tiers[f"c{i}"] for i in (2, 1, 0)] == ["tail"] * 3


@pytest.fixture(scope="module")
def result(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from fpsm_core.inference import InferenceService

    folder = tmp_path_factory.mktemp("img")
    image = load_image(write_dicom(folder / "x.dcm", chest_like(120, 90)))
    return InferenceService(tiny_model, device="cpu", batch_size=1).predict([image], cams=True)[0]


def test_result_cams_map_levels_onto_the_image_grid(result) -> None:  # noqa: ANN001
    from fpsm_core.explain import FUSED, ResultCams, level_shares
    from viewer.cam_display import overlay_shape

    cams = ResultCams(result)
    assert cams.levels == (4, 3, 2)
    c = result.findings[0].index
    shape = overlay_shape(result.image_shape, 60)
    assert shape == (60, 45)
    maps = {key: cams.map(c, key, shape) for key in (FUSED, 4, 3, 2)}
    for m in maps.values():
        assert m.shape == shape and m.dtype == np.float32
        assert 0.0 <= m.min() and m.max() <= 1.0
    assert not np.array_equal(maps[3], maps[2])
    weights = cams.fusion_weights(c)
    assert set(weights) == {4, 3, 2}
    assert sum(weights.values()) == pytest.approx(1.0, abs=1e-5) or sum(weights.values()) == 0
    shares = level_shares(result, c)
    member_logit = float(np.log(result.probabilities[c] / (1 - result.probabilities[c])))
    assert sum(s.logit for s in shares) == pytest.approx(member_logit, abs=1e-3)
    assert sum(abs(s.share) for s in shares) == pytest.approx(1.0)


def test_colourise_is_transparent_below_threshold_and_premultiplied() -> None:
    from viewer.cam_display import blend_rgb, colourise

    values = np.array([[0.0, 0.2, 0.6, 1.0]], dtype=np.float32)
    argb = colourise(values, "turbo", opacity=0.5, threshold=0.5)
    alpha = argb >> 24
    assert list(alpha[0]) == [0, 0, 128, 128]
    assert argb[0, 0] == 0 and argb[0, 1] == 0
    for channel in (16, 8, 0):
        assert np.all(((argb >> channel) & 0xFF) <= alpha)
    grey = np.full((1, 4), 100, dtype=np.uint8)
    rgb = blend_rgb(grey, values, "turbo", 0.5, 0.5)
    assert rgb.shape == (1, 4, 3)
    assert np.all(rgb[0, :2] == 100) and not np.all(rgb[0, 2:] == 100)


def test_findings_export_json_and_csv(result, tmp_path: Path) -> None:  # noqa: ANN001
    from viewer.export import ExportError, write_findings_csv, write_findings_json

    data = json.loads(write_findings_json(result, tmp_path / "f.json").read_text())
    assert len(data["findings"]) == 26 and data["untrained"] is True
    with write_findings_csv(result, tmp_path / "f.csv").open() as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["image", "label", "probability"]
    assert "logit[tiny][L4]" in rows[0]
    assert len(rows) == 27
    assert [r[1] for r in rows[1:]] == [f.label for f in result.findings]
    with pytest.raises(ExportError, match="Cannot write"):
        write_findings_json(result, tmp_path / "missing" / "f.json")


def test_apply_window_reference_is_what_the_viewer_reuses() -> None:
    # The viewer's table is DICOM's own VOI function evaluated per code: same numbers.
    pyr = display.build_pyramid(np.arange(0, 4096, dtype=np.float32).reshape(64, 64))
    lut = display.window_lut(pyr, 2048, 1024, "LINEAR")
    np.testing.assert_array_equal(lut[:4096], apply_window(np.arange(4096), 2048, 1024, "LINEAR"))

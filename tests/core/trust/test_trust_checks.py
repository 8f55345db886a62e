"""Input checks without a model: real test files that are not frontal chest films say why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fpsm_core.io import load_image
from fpsm_core.trust.checks import MIN_SIDE, check_image
from tests.core.helpers import chest_like, write_dicom

pydicom_data = pytest.importorskip("pydicom.data")


def _codes(path: str | Path) -> list[str]:
    return [r.code for r in check_image(load_image(path))]


def _testfile(name: str) -> str:
    path = pydicom_data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pydicom-data)")
    return str(path)


def _dicom(path: Path, pixels: np.ndarray, **fields: str) -> Path:
    """A DX DICOM (tests.synthetic_dicom) with some header fields changed."""
    import pydicom

    write_dicom(path, pixels)
    ds = pydicom.dcmread(path)
    for keyword, value in fields.items():
        setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def photo_png(path: Path, seed: int = 0) -> Path:
    """A photograph-like RGB picture: smooth colour gradients, coloured discs, sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = 480, 640
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [
            0.5 + 0.3 * np.sin(2 * np.pi * (xx / w * rng.uniform(0.5, 2) + yy / h) + c)
            for c in (0.0, 2.0, 4.0)
        ],
        axis=-1,
    )
    for _ in range(6):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(30, 120)
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
    img = np.clip(img + rng.normal(0, 0.03, img.shape), 0, 1)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return path


def test_the_real_chest_cr_passes_the_checks() -> None:
    # A real PA chest: nothing in its header or pixels is plainly wrong (the gate judges it).
    assert _codes(_testfile("RG1_UNCR.dcm")) == []


def test_the_tibia_is_flagged_by_its_body_part() -> None:
    reasons = check_image(load_image(_testfile("RG3_UNCR.dcm")))
    assert [r.code for r in reasons] == ["body_part"]
    assert "EXTREMITY" in reasons[0].sentence


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CT_small.dcm", ["modality", "too_small"]),
        ("MR_small.dcm", ["modality", "too_small"]),
        ("US1_UNCR.dcm", ["modality", "colour"]),
        ("SC_rgb.dcm", ["modality", "secondary_capture", "colour", "too_small"]),
    ],
)
def test_other_modalities_are_named(name: str, expected: list[str]) -> None:
    reasons = check_image(load_image(_testfile(name)))
    assert [r.code for r in reasons] == expected
    assert all(r.sentence.endswith(".") and r.sentence[0].isupper() for r in reasons)


def test_a_ct_slice_says_its_modality_and_the_size_limit() -> None:
    sentences = [r.sentence for r in check_image(load_image(_testfile("CT_small.dcm")))]
    assert sentences[0].startswith("Modality is CT")
    assert f"at least {MIN_SIDE} pixels" in sentences[1] and "128 x 128" in sentences[1]


def test_a_colour_photograph_png_is_flagged_as_colour(tmp_path: Path) -> None:
    assert _codes(photo_png(tmp_path / "photo.png")) == ["colour"]


def test_a_grey_png_saved_as_rgb_is_not_colour(tmp_path: Path) -> None:
    grey = (chest_like(300, 280, seed=3) // 16).astype(np.uint8)
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(tmp_path / "grey_rgb.png")
    assert _codes(tmp_path / "grey_rgb.png") == []


def test_a_lateral_film_is_flagged_by_its_view(tmp_path: Path) -> None:
    path = _dicom(tmp_path / "lat.dcm", chest_like(300, 300, seed=1), ViewPosition="LL")
    reasons = check_image(load_image(path))
    assert [r.code for r in reasons] == ["view"]
    assert "LL" in reasons[0].sentence and "lateral" in reasons[0].sentence


def test_a_blank_frame_is_flagged_as_constant(tmp_path: Path) -> None:
    pixels = np.full((300, 300), 1000, dtype=np.uint16)
    pixels[:5, :5] = 3000
    path = write_dicom(tmp_path / "blank.dcm", pixels, window=None)
    assert "constant" in _codes(path)


def test_unknown_header_values_are_not_reasons_by_themselves(tmp_path: Path) -> None:
    path = _dicom(
        tmp_path / "odd.dcm",
        chest_like(300, 300, seed=2),
        Modality="ZZ",
        BodyPartExamined="SOMETHING",
        ViewPosition="XYZ",
    )
    assert _codes(path) == []

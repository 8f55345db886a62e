"""Broken files give one ImageLoadError sentence naming the file; fuzzing never gives anything else."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from io_fixtures import PYDICOM_FILES, data_file, make_dataset, ramp, write_dicom
from PIL import Image

from fpsm_core.io import ImageLoadError, XRayImage, load_image


@pytest.mark.parametrize(
    "path, reason",
    [
        (data_file("no_meta.dcm"), "not a DICOM file"),
        (data_file("meta_missing_tsyntax.dcm"), "Rows is missing"),
        (data_file("chrJapMulti.dcm"), "no pixel data"),
        (data_file("rtplan.dcm"), "no pixel data (it is a RT Plan Storage object)"),
        (data_file("test-SR.dcm"), "no pixel data (it is a Comprehensive SR Storage object)"),
        (data_file("MR_truncated.dcm"), "pixel data are truncated (8130 of 8192 bytes)"),
        (data_file("emri_small_jpeg_2k_lossless_too_short.dcm"), "truncated"),
        (data_file("badVR.dcm"), "NumberOfFrames '1A' is not a positive whole number"),
        (
            data_file("JPEG-lossy.dcm"),
            "JPEG Extended (Process 2 and 4) pixel data cannot be decoded",
        ),
        (
            data_file("JPEG2000-embedded-sequence-delimiter.dcm"),
            "JPEG 2000 Image Compression pixel data cannot be decoded",
        ),
        (data_file("ExplVR_BigEndNoMeta.dcm"), "no pixel data"),
    ],
)
def test_broken_files_give_one_clear_sentence(path: Path, reason: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing leaks to the console either
        with pytest.raises(ImageLoadError) as info:
            load_image(path)
    message = str(info.value)
    assert str(path) in message and reason in message
    assert message.endswith(".") and "\n" not in message and "Traceback" not in message
    assert isinstance(info.value, ValueError) and info.value.path == path


def test_missing_empty_folder_and_text(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="no such file"):
        load_image(tmp_path / "nope.dcm")
    (tmp_path / "empty.dcm").write_bytes(b"")
    with pytest.raises(ImageLoadError, match="the file is empty"):
        load_image(tmp_path / "empty.dcm")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)
    (tmp_path / "notes.png").write_text("hello")
    with pytest.raises(ImageLoadError, match="not a readable PNG"):
        load_image(tmp_path / "notes.png")


def test_unsupported_transfer_syntax_names_the_package(tmp_path: Path, monkeypatch) -> None:
    import pydicom.pixels

    from fpsm_core.io import dicom_pixels as dicom

    class Missing:
        is_available = False
        missing_dependencies = ["gdcm - requires gdcm>=3.0.10"]

    monkeypatch.setattr(pydicom.pixels, "get_decoder", lambda ts: Missing())
    with pytest.raises(ImageLoadError) as info:
        load_image(data_file("JPEG-LL.dcm"))
    assert "unsupported transfer syntax JPEG Lossless" in str(info.value)
    assert "pylibjpeg-libjpeg" in str(info.value)
    assert dicom.DECODER_PACKAGES


def test_unknown_transfer_syntax(tmp_path: Path) -> None:
    ds = make_dataset()
    path = write_dicom(tmp_path / "x.dcm", ds)
    raw = pydicom_set_ts(path, "1.2.3.4.5.6.7")
    with pytest.raises(ImageLoadError, match="unsupported transfer syntax"):
        load_image(raw)


def pydicom_set_ts(path: Path, ts: str) -> Path:
    import pydicom

    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = ts
    ds.PixelData = ds.PixelData  # keep native bytes
    out = path.with_name("ts.dcm")
    ds["PixelData"].is_undefined_length = True
    from pydicom.encaps import encapsulate

    ds.PixelData = encapsulate([b"\x00" * 16])
    ds.save_as(out, enforce_file_format=False)
    return out


@pytest.mark.parametrize(
    "attrs, reason",
    [
        ({"Rows": 0}, "impossible image dimensions (Rows is 0)"),
        ({"Columns": None}, "Columns is missing"),
        ({"BitsAllocated": 12}, "BitsAllocated 12"),
        ({"BitsStored": 17}, "BitsStored 17 does not fit"),
        ({"SamplesPerPixel": 4}, "SamplesPerPixel 4"),
        ({"PhotometricInterpretation": None}, "PhotometricInterpretation is missing"),
        ({"Rows": 60000, "Columns": 60000}, "samples per frame and"),
        ({"NumberOfFrames": 100000, "Rows": 4000, "Columns": 4000}, "samples per frame and"),
    ],
)
def test_impossible_headers(tmp_path: Path, attrs: dict, reason: str) -> None:
    ds = make_dataset()
    for key, value in attrs.items():
        if value is None:
            delattr(ds, key)
        else:
            setattr(ds, key, value)
    path = write_dicom(tmp_path / "bad.dcm", ds)
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert reason in str(info.value)


def test_truncated_png_and_jpeg(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).integers(0, 255, (128, 128), dtype=np.uint8)
    for name in ("t.png", "t.jpg"):
        Image.fromarray(arr).save(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageLoadError, match="truncated|cannot be decoded"):
            load_image(tmp_path / name)


# --- fuzzing ----------------------------------------------------------------------------------

_FUZZ_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _load_or_error(path: Path) -> None:
    try:
        img = load_image(path)
    except ImageLoadError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    assert isinstance(img, XRayImage)
    assert img.pixels.ndim == 2 and img.pixels.dtype == np.float32
    assert np.isfinite(img.window[0]) and img.window[1] > 0
    img.display_uint8()


@_FUZZ_SETTINGS
@given(
    rows=st.integers(-2, 70),
    cols=st.integers(-2, 70),
    bits_allocated=st.sampled_from([0, 1, 8, 12, 16, 32, 64]),
    bits_stored=st.integers(0, 40),
    samples=st.sampled_from([0, 1, 2, 3, 4]),
    photometric=st.sampled_from(
        ["MONOCHROME1", "MONOCHROME2", "RGB", "YBR_FULL_422", "PALETTE COLOR", "", "BOGUS"]
    ),
    frames=st.sampled_from([None, "0", "1", "2", "1A", "-3", "99999999"]),
    slope=st.sampled_from([None, "1", "0", "-2.5", "abc", "1e308"]),
    window=st.sampled_from([None, ("40", "400"), ("x", "y"), ("1", "0"), ("1\\2", "3\\4")]),
    shape=st.sampled_from([None, "INVERSE", "IDENTITY", "?"]),
    n_bytes=st.integers(0, 64 * 64 * 2 + 8),
)
def test_fuzzed_headers_only_image_or_error(
    tmp_path: Path,
    rows,
    cols,
    bits_allocated,
    bits_stored,
    samples,
    photometric,
    frames,
    slope,
    window,
    shape,
    n_bytes,
) -> None:
    path = _fuzzed_file(
        tmp_path,
        rows,
        cols,
        bits_allocated,
        bits_stored,
        samples,
        photometric,
        frames,
        slope,
        window,
        shape,
        n_bytes,
    )
    _load_or_error(path)


def _raw(ds, tag: int, vr: str, text: str) -> None:
    """Store a value as raw bytes, so invalid text reaches the file as a real writer's would."""
    from pydicom.dataelem import RawDataElement
    from pydicom.tag import Tag

    value = text.encode() + (b" " if len(text) % 2 else b"")
    ds[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, False, True)


def _fuzzed_file(
    tmp_path,
    rows,
    cols,
    bits_allocated,
    bits_stored,
    samples,
    photometric,
    frames,
    slope,
    window,
    shape,
    n_bytes,
) -> Path:
    ds = make_dataset(ramp(8, 8))
    ds.Rows, ds.Columns = max(rows, 0), max(cols, 0)
    ds.BitsAllocated, ds.BitsStored = bits_allocated, bits_stored
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = photometric
    if frames is not None:
        _raw(ds, 0x00280008, "IS", frames)
    if slope is not None:
        _raw(ds, 0x00281053, "DS", slope)
        _raw(ds, 0x00281052, "DS", "0")
    if window is not None:
        _raw(ds, 0x00281050, "DS", window[0])
        _raw(ds, 0x00281051, "DS", window[1])
    if shape is not None:
        _raw(ds, 0x20500020, "CS", shape)
    ds.PixelData = bytes(np.random.default_rng(n_bytes).integers(0, 256, n_bytes, np.uint8))
    path = tmp_path / "fuzz.dcm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path, enforce_file_format=False)
    return path


_SEEDS = [
    "RG3_J2KR.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "JPGExtended.dcm",
    "MR_small.dcm",
    "emri_small.dcm",
    "vlut_04.dcm",
]


@_FUZZ_SETTINGS
@given(
    seed=st.sampled_from(_SEEDS),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), max_size=6),
)
def test_fuzzed_truncations_and_flips_only_image_or_error(
    tmp_path: Path, seed: str, cut: float, flips: list
) -> None:
    data = bytearray(data_file(seed).read_bytes())
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(cut * len(data)))]
    path = tmp_path / "cut.dcm"
    path.write_bytes(bytes(data))
    _load_or_error(path)


def test_pydicom_files_never_escape(tmp_path: Path) -> None:
    """Every file pydicom ships loads or fails cleanly (no other exception type)."""
    files = sorted((PYDICOM_FILES / "test_files").glob("*.dcm"))
    assert len(files) > 50
    for path in files:
        _load_or_error(path)

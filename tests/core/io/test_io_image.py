"""load_image on real radiographs and on DICOMs/rasters written for each photometric/LUT case."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from pathlib import Path

import numpy as np
import pydicom
import pytest
from io_fixtures import data_file, make_dataset, ramp, write_dicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from fpsm_core.io import (
    SUPPORTED_SUFFIXES,
    ImageLoadError,
    XRayImage,
    apply_window,
    is_image_path,
    load_image,
)


def _reference_display(path: Path) -> np.ndarray:
    """What pydicom's own LUT helpers show, scaled to 0..255, inverted for MONOCHROME1."""
    ds = pydicom.dcmread(path)
    values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    if "VOILUTSequence" in ds:
        lut = np.asarray(ds.VOILUTSequence[0].LUTData, dtype=float)
        lo, hi = lut.min(), lut.max()
    elif ds.PixelRepresentation == 0:
        lo, hi = 0.0, 2.0**ds.BitsStored - 1
    else:
        lo, hi = -(2.0 ** (ds.BitsStored - 1)), 2.0 ** (ds.BitsStored - 1) - 1
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if "VOILUTSequence" not in ds and slope is not None and intercept is not None:
        lo, hi = lo * float(slope) + float(intercept), hi * float(slope) + float(intercept)
    out = (values - lo) / (hi - lo) * 255.0
    return 255.0 - out if ds.PhotometricInterpretation == "MONOCHROME1" else out


# --- real files --------------------------------------------------------------------------------


def test_rg1_chest_loads_with_header_window_and_no_spacing() -> None:
    img = load_image(data_file("RG1_UNCR.dcm"))
    assert isinstance(img, XRayImage)
    assert img.pixels.dtype == np.float32 and img.shape == (1955, 1841)
    assert img.photometric == "MONOCHROME1" and img.inverted
    assert img.window == (15000.0, 30000.0) and img.window_source == "window"
    assert img.spacing_mm is None  # PixelSpacing [0, 0]
    assert any("PixelSpacing" in w for w in img.warnings)
    assert img.modality == "CR" and img.view_position == "PA"
    assert img.study_uid and img.instance_uid and img.source_format == "dicom"


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm", "vlut_04.dcm", "MR_small.dcm"])
def test_display_matches_pydicom_lut_helpers(name: str) -> None:
    path = data_file(name)
    shown = load_image(path).display_uint8().astype(float)
    assert np.abs(shown - _reference_display(path)).max() <= 0.51


def test_modality_lut_sequence_matches_pydicom() -> None:
    path = data_file("mlut_18.dcm")
    ds = pydicom.dcmread(path)
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, apply_modality_lut(ds.pixel_array, ds))


def test_voi_lut_sequence_is_applied_to_pixels() -> None:
    path = data_file("vlut_04.dcm")
    ds = pydicom.dcmread(path)
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, apply_voi_lut(ds.pixel_array, ds))
    assert img.window_source == "voi_lut" and img.voi_function == "LINEAR_EXACT"


def test_rg1_four_encodings_give_the_same_picture() -> None:
    uncr, j2kr, unci, j2ki = (
        load_image(data_file(f"RG1_{e}.dcm")) for e in ("UNCR", "J2KR", "UNCI", "J2KI")
    )
    np.testing.assert_array_equal(uncr.pixels, j2kr.pixels)  # lossless
    np.testing.assert_array_equal(unci.pixels, j2ki.pixels)  # UNCI is J2KI decoded
    diff = np.abs(uncr.display_uint8().astype(int) - j2ki.display_uint8().astype(int))
    assert diff.mean() < 1.0 and np.percentile(diff, 99.9) <= 8
    assert {uncr.decoder, j2kr.decoder} == {"native", "pylibjpeg"}
    assert all(i.window == (15000.0, 30000.0) for i in (uncr, j2kr, unci, j2ki))


def test_monochrome1_chest_shows_bone_bright_and_lung_dark() -> None:
    disp = load_image(data_file("RG1_UNCR.dcm")).display_uint8().astype(float)
    rows, cols = disp.shape
    # Lung fields (upper-middle, left and right of the mediastinum) are dark on a chest film;
    # the spine/mediastinum between them is bright.
    lungs = np.concatenate(
        [
            disp[rows // 4 : rows // 2, cols // 5 : cols // 3].ravel(),
            disp[rows // 4 : rows // 2, 2 * cols // 3 : 4 * cols // 5].ravel(),
        ]
    )
    mediastinum = disp[rows // 4 : rows // 2, 9 * cols // 20 : 11 * cols // 20]
    assert mediastinum.mean() > lungs.mean() + 40


def test_monochrome1_small_cr_with_rescale() -> None:
    path = Path(pydicom.__file__).parent / "data/test_files/dicomdirtests/77654033/CR1/6154"
    ds = pydicom.dcmread(path)
    img = load_image(path)
    assert img.photometric == "MONOCHROME1" and img.shape == (16, 16)
    modality = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
    assert float(ds.RescaleSlope) == pytest.approx(0.684)
    # Mirrored about the window centre (LINEAR: 2c - 1 - x).
    c = img.window[0]
    np.testing.assert_allclose(img.pixels, 2 * c - 1 - modality, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize(
    "name, decoder",
    [
        ("JPEG-LL.dcm", "pylibjpeg"),  # JPEG Lossless P14
        ("JPGLosslessP14SV1_1s_1f_8b.dcm", "pylibjpeg"),  # JPEG Lossless SV1
        ("JPGExtended.dcm", "pylibjpeg"),  # 12-bit JPEG Extended
        ("MR_small_jpeg_ls_lossless.dcm", "pylibjpeg"),  # JPEG-LS
        ("MR_small_RLE.dcm", "pydicom"),  # RLE
        ("MR_small_jp2klossless.dcm", "pylibjpeg"),  # JPEG 2000
        ("image_dfl.dcm", "native"),  # deflated
        ("MR_small_bigendian.dcm", "native"),  # big endian
    ],
)
def test_every_transfer_syntax_decodes(name: str, decoder: str) -> None:
    img = load_image(data_file(name))
    assert img.decoder == decoder and img.pixels.ndim == 2 and np.isfinite(img.pixels).all()


def test_compressed_variants_of_one_image_agree() -> None:
    ref = load_image(data_file("MR_small.dcm")).pixels
    for name in (
        "MR_small_RLE.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_bigendian.dcm",
    ):
        np.testing.assert_array_equal(load_image(data_file(name)).pixels, ref)


def test_multiframe_picks_the_frame() -> None:
    path = data_file("emri_small.dcm")
    ds = pydicom.dcmread(path)
    img = load_image(path, frame=3)
    assert img.n_frames == 10 and img.frame == 3
    np.testing.assert_array_equal(img.pixels, ds.pixel_array[3].astype(np.float32))
    with pytest.raises(ImageLoadError, match="frame 10 does not exist"):
        load_image(path, frame=10)


@pytest.mark.parametrize(
    "name", ["SC_rgb.dcm", "SC_ybr_full_422_uncompressed.dcm", "OBXXXX1A.dcm", "SC_rgb_rle.dcm"]
)
def test_colour_dicoms_become_grey(name: str) -> None:
    img = load_image(data_file(name))
    assert img.pixels.ndim == 2 and any("grey" in w for w in img.warnings)


def test_meta_less_dicom_is_read_with_a_note() -> None:
    img = load_image(data_file("OT-PAL-8-face.dcm"))
    assert img.pixels.shape == (480, 640)
    assert any("no DICOM preamble" in w for w in img.warnings)


# --- DICOMs written for each photometric / rescale / VOI case ---------------------------------


def test_monochrome2_window_and_values(tmp_path: Path) -> None:
    arr = ramp()
    path = write_dicom(tmp_path / "a.dcm", pixels=arr, WindowCenter=2048, WindowWidth=4096)
    img = load_image(path)
    np.testing.assert_array_equal(img.pixels, arr.astype(np.float32))
    assert img.window == (2048.0, 4096.0) and not img.inverted
    disp = img.display_uint8()
    assert disp[:, 0].mean() < disp[:, -1].mean()  # left dark, right bright


def test_monochrome1_is_the_mirror_of_monochrome2(tmp_path: Path) -> None:
    arr = ramp()
    m2 = load_image(
        write_dicom(tmp_path / "m2.dcm", pixels=arr, WindowCenter=2000, WindowWidth=3000)
    )
    m1 = load_image(
        write_dicom(
            tmp_path / "m1.dcm",
            pixels=arr,
            photometric="MONOCHROME1",
            WindowCenter=2000,
            WindowWidth=3000,
        )
    )
    assert m1.window == m2.window and m1.inverted
    assert np.abs(m1.display_uint8().astype(int) + m2.display_uint8() - 255).max() <= 1


def test_presentation_lut_inverse_inverts_monochrome2_once(tmp_path: Path) -> None:
    arr = ramp()
    m2 = load_image(write_dicom(tmp_path / "m2.dcm", pixels=arr))
    inv = load_image(write_dicom(tmp_path / "inv.dcm", pixels=arr, PresentationLUTShape="INVERSE"))
    both = load_image(
        write_dicom(
            tmp_path / "both.dcm",
            pixels=arr,
            photometric="MONOCHROME1",
            PresentationLUTShape="INVERSE",
        )
    )
    assert inv.inverted and both.inverted
    assert inv.display_uint8()[:, 0].mean() > inv.display_uint8()[:, -1].mean()
    # DX IOD: MONOCHROME1 goes with INVERSE; that is one inversion, not two.
    np.testing.assert_array_equal(both.display_uint8(), inv.display_uint8())
    assert np.abs(inv.display_uint8().astype(int) + m2.display_uint8() - 255).max() <= 1


def test_rescale_slope_intercept_signed(tmp_path: Path) -> None:
    arr = ramp(low=-1000, high=1000)
    path = write_dicom(
        tmp_path / "r.dcm",
        pixels=arr,
        signed=True,
        bits_stored=16,
        RescaleSlope="0.5",
        RescaleIntercept="-100",
        WindowCenter=-100,
        WindowWidth=1000,
    )
    img = load_image(path)
    np.testing.assert_allclose(img.pixels, arr * 0.5 - 100)
    ds = pydicom.dcmread(path)
    np.testing.assert_allclose(img.pixels, apply_modality_lut(ds.pixel_array, ds))


def test_multiple_windows_take_the_first(tmp_path: Path) -> None:
    path = write_dicom(
        tmp_path / "w.dcm",
        WindowCenter=[1000, 2000],
        WindowWidth=[500, 4000],
        WindowCenterWidthExplanation=["BONE", "SOFT"],
    )
    assert load_image(path).window == (1000.0, 500.0)


def test_sigmoid_and_linear_exact_functions(tmp_path: Path) -> None:
    for function in ("SIGMOID", "LINEAR_EXACT"):
        path = write_dicom(
            tmp_path / f"{function}.dcm",
            WindowCenter=2048,
            WindowWidth=1000,
            VOILUTFunction=function,
        )
        img = load_image(path)
        ds = pydicom.dcmread(path)
        ref = apply_voi_lut(ds.pixel_array, ds) / 4095.0 * 255.0
        assert img.voi_function == function
        assert np.abs(img.display_uint8() - ref).max() <= 0.51


def test_voi_lut_sequence_written_here(tmp_path: Path) -> None:
    arr = ramp(high=1023)
    lut = Dataset()
    lut.LUTDescriptor = [1024, 0, 8]
    lut.add_new(0x00283006, "US", [int(255 * (i / 1023) ** 0.5) for i in range(1024)])
    ds = make_dataset(arr, bits_stored=10, photometric="MONOCHROME1")
    ds.VOILUTSequence = [lut]
    path = write_dicom(tmp_path / "v.dcm", ds)
    img = load_image(path)
    ref = apply_voi_lut(pydicom.dcmread(path).pixel_array, pydicom.dcmread(path))
    np.testing.assert_array_equal(img.pixels, 255 - ref)  # mirrored in the LUT output range
    assert img.window == (127.5, 255.0)


def test_no_voi_gives_percentile_window(tmp_path: Path) -> None:
    arr = ramp(high=1000)
    img = load_image(write_dicom(tmp_path / "p.dcm", pixels=arr))
    assert img.window_source == "percentile"
    c, w = img.window
    assert 0 <= c - w / 2 <= 50 and 950 <= c + w / 2 <= 1000


def test_bad_window_width_falls_back(tmp_path: Path) -> None:
    img = load_image(write_dicom(tmp_path / "b.dcm", WindowCenter=100, WindowWidth=0))
    assert img.window_source == "percentile"
    assert any("WindowWidth" in w for w in img.warnings)


def test_spacing_pixel_then_imager(tmp_path: Path) -> None:
    both = write_dicom(
        tmp_path / "s1.dcm", PixelSpacing=[0.14, 0.15], ImagerPixelSpacing=[0.2, 0.2]
    )
    imager = write_dicom(tmp_path / "s2.dcm", ImagerPixelSpacing=[0.139, 0.139])
    zero = write_dicom(tmp_path / "s3.dcm", PixelSpacing=[0, 0])
    assert load_image(both).spacing_mm == (0.14, 0.15)
    assert load_image(imager).spacing_mm == (0.139, 0.139)
    assert load_image(zero).spacing_mm is None


def test_identifiers(tmp_path: Path) -> None:
    path = write_dicom(
        tmp_path / "i.dcm",
        ViewPosition="AP",
        ImageLaterality=None,
        Laterality="L",
        PatientName="Doe^Jane",
        PatientID="P9",
    )
    img = load_image(path)
    assert (img.view_position, img.laterality, img.patient_id, img.patient_name) == (
        "AP",
        "L",
        "P9",
        "Doe^Jane",
    )
    assert img.path == path


def test_compressed_written_here_decodes_to_the_same(tmp_path: Path) -> None:
    arr = ramp()
    for ts in (RLELossless, JPEGLSLossless, JPEG2000Lossless):
        ds = make_dataset(arr, photometric="MONOCHROME1", WindowCenter=2000, WindowWidth=4000)
        ds.compress(ts)
        img = load_image(write_dicom(tmp_path / f"{ts.name[:8]}.dcm", ds))
        ref = load_image(
            write_dicom(
                tmp_path / "plain.dcm",
                pixels=arr,
                photometric="MONOCHROME1",
                WindowCenter=2000,
                WindowWidth=4000,
            )
        )
        np.testing.assert_array_equal(img.pixels, ref.pixels)


def test_xrayimage_is_frozen(tmp_path: Path) -> None:
    img = load_image(write_dicom(tmp_path / "f.dcm"))
    with pytest.raises(FrozenInstanceError):
        img.window = (0.0, 1.0)  # type: ignore[misc]


def test_apply_window_linear_matches_dicom_formula() -> None:
    x = np.arange(0, 4096, dtype=np.float32)
    out = apply_window(x, 2048, 4096)
    assert out[0] == 0 and out[-1] == 255 and np.all(np.diff(out.astype(int)) >= 0)


# --- rasters ------------------------------------------------------------------------------------


def test_png_8_and_16_bit(tmp_path: Path) -> None:
    arr8 = (ramp(high=255)).astype(np.uint8)
    Image.fromarray(arr8).save(tmp_path / "a.png")
    img8 = load_image(tmp_path / "a.png")
    np.testing.assert_array_equal(img8.pixels, arr8.astype(np.float32))
    assert img8.window == (127.5, 255.0) and img8.source_format == "png"
    arr16 = (ramp(high=40000)).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "b.png")
    img16 = load_image(tmp_path / "b.png")
    np.testing.assert_array_equal(img16.pixels, arr16.astype(np.float32))
    assert img16.bits_stored == 16 and img16.window_source == "percentile"


def test_tiff_16_bit_and_jpeg_colour(tmp_path: Path) -> None:
    arr16 = (ramp(high=60000)).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "a.tiff")
    np.testing.assert_array_equal(load_image(tmp_path / "a.tiff").pixels, arr16)
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).save(tmp_path / "c.jpg", quality=95)
    img = load_image(tmp_path / "c.jpg")
    assert img.source_format == "jpeg" and img.pixels.ndim == 2
    assert abs(float(img.pixels.mean()) - 200 * 0.299) < 3


def test_16_bit_colour_png_keeps_precision(tmp_path: Path) -> None:
    import cv2

    grey = (ramp(high=50000)).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "c16.png"), np.dstack([grey, grey, grey]))
    img = load_image(tmp_path / "c16.png")
    np.testing.assert_allclose(img.pixels, grey, atol=0.05)


def test_mimic_layout_gives_ids(tmp_path: Path) -> None:
    path = tmp_path / "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"
    path.parent.mkdir(parents=True)
    Image.fromarray(ramp(high=255).astype(np.uint8)).save(path)
    img = load_image(path)
    assert (img.patient_id, img.study_uid, img.instance_uid) == (
        "10000032",
        "50414267",
        "02aa804e-bde0afdd",
    )


def test_dicom_with_a_png_suffix_is_still_dicom(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "odd.png")
    assert load_image(path).source_format == "dicom"


def test_suffix_rules() -> None:
    assert ".dcm" in SUPPORTED_SUFFIXES and ".png" in SUPPORTED_SUFFIXES
    assert is_image_path("IM00001") and is_image_path("1.2.840.113619.2.55.3.604688119.868")
    assert not is_image_path("notes.txt")


def test_percentile_window_ignores_padding(tmp_path: Path) -> None:
    arr = ramp(high=1000)
    arr[:, :10] = 4000  # a padding border, brighter than anything real
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        img = load_image(
            write_dicom(
                tmp_path / f"{photometric}.dcm",
                pixels=arr,
                photometric=photometric,
                PixelPaddingValue=4000,
            )
        )
        c, w = img.window
        assert w < 1100, photometric  # the window spans the ramp, not the padding

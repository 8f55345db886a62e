"""DICOM outputs of an inference result: valid to dciodvfy/dcmpschk/dsrdump, and saying the truth.

A tiny random ensemble runs on small synthetic DICOMs (and once on a bundled sample); the two most
probable findings are put above threshold so regions, outlines and the SR's SCOORDs exist.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pydicom
import pytest

from fpsm_core.cli.main import main
from fpsm_core.export import ExportError, parse_kinds, write_outputs
from fpsm_core.export.evidence import evidence, region
from fpsm_core.inference import InferenceService, Result
from fpsm_core.io import load_image
from fpsm_core.io.deid import remap_uid
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom
from tests.core.pacs.pacs_fixtures import dciodvfy_errors, dcmpschk_passes, dsrdump_text

SAMPLE = Path(__file__).resolve().parents[3] / "resources" / "samples" / "case1_Pneumothorax.dcm"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> InferenceService:
    model = tiny_ensemble(tmp_path_factory.mktemp("model") / "ens", n=2)
    return InferenceService(model, device="cpu")


def two_positive(result: Result) -> Result:
    """The result with its top two findings above threshold and the rest below."""
    findings = tuple(
        dataclasses.replace(f, threshold=0.0 if rank < 2 else 1.0)
        for rank, f in enumerate(result.findings)
    )
    return dataclasses.replace(result, findings=findings)


@pytest.fixture(scope="module")
def dicom_case(tmp_path_factory: pytest.TempPathFactory, service: InferenceService) -> Any:
    folder = tmp_path_factory.mktemp("src")
    path = write_dicom(folder / "chest.dcm", chest_like(160, 128, seed=3), patient="DOE^JANE")
    image = load_image(path)
    result = two_positive(service.predict([image], cams=True)[0])
    return path, image, result


def test_all_four_outputs_pass_the_validators(dicom_case: Any, tmp_path: Path) -> None:
    path, image, result = dicom_case
    written = write_outputs(result, image, tmp_path, ("sc", "sr", "gsps", "seg"))
    assert set(written.files) == {"sc", "sr", "gsps", "seg"}
    for kind, file in written.files.items():
        assert dciodvfy_errors(file) == [], kind
    ok, out = dcmpschk_passes(written.files["gsps"])
    assert ok, out
    text = dsrdump_text(written.files["sr"])
    assert '"Probability"' in text and "SCOORD" in text
    for f in result.findings:
        assert f'"{f.label}"' in text  # every CXR-LT name, as text
    assert not list(tmp_path.glob(".*.part"))


def test_outputs_reference_the_source_and_copy_its_patient(dicom_case: Any, tmp_path: Path) -> None:
    path, image, result = dicom_case
    src = pydicom.dcmread(path)
    files = write_outputs(result, image, tmp_path, ("sc", "sr", "gsps", "seg")).files
    for kind, file in files.items():
        ds = pydicom.dcmread(file)
        assert ds.StudyInstanceUID == src.StudyInstanceUID, kind
        assert ds.SeriesInstanceUID != src.SeriesInstanceUID, kind
        assert str(ds.PatientName) == "DOE^JANE" and ds.PatientID == src.PatientID, kind
        assert src.SOPInstanceUID in str(ds), kind  # the source instance is referenced
    sc = pydicom.dcmread(files["sc"])
    assert sc.BurnedInAnnotation == "YES"
    assert sc.PhotometricInterpretation == "RGB" and sc.SamplesPerPixel == 3
    assert list(sc.PatientOrientation) == ["L", "F"]
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID


def test_sc_shows_the_film_heatmap_and_the_findings(dicom_case: Any, tmp_path: Path) -> None:
    _, image, result = dicom_case
    sc = pydicom.dcmread(write_outputs(result, image, tmp_path, ("sc",)).files["sc"])
    bare = dataclasses.replace(result, cams=None)
    plain = pydicom.dcmread(write_outputs(bare, image, tmp_path / "b", ("sc",)).files["sc"])
    rows, cols = image.pixels.shape
    pixels, film = sc.pixel_array, plain.pixel_array[:, :cols]
    assert pixels.shape[0] == rows and pixels.shape[1] > cols  # film + text panel
    # without CAMs the film is the reader's window, grey; with them a heatmap colours it
    expected = load_image(dicom_case[0])
    from fpsm_core.io.image import apply_window

    grey = apply_window(expected.pixels, *expected.window, expected.voi_function)
    assert np.array_equal(film[..., 0], grey) and np.array_equal(film[..., 2], grey)
    heat = pixels[:, :cols].astype(int)
    assert (np.abs(heat[..., 0] - heat[..., 2]) > 30).mean() > 0.05
    panel = pixels[:, cols:]
    assert (panel > 100).any()  # text drawn in the panel
    assert np.array_equal(panel, plain.pixel_array[:, cols:])  # same ranked text either way


def test_sr_holds_every_finding_with_its_numbers_and_codes(dicom_case: Any, tmp_path: Path) -> None:
    _, image, result = dicom_case
    sr = pydicom.dcmread(write_outputs(result, image, tmp_path, ("sr",)).files["sr"])
    import highdicom as hd

    report = hd.sr.ComprehensiveSR.from_dataset(sr)
    groups = report.content.get_planar_roi_measurement_groups() + list(
        report.content.get_image_measurement_groups()
    )
    by_label = {str(g.tracking_identifier): g for g in groups}
    verdicts = {k for k in by_label if k.startswith("Input validity: ")}
    assert len(verdicts) == 1  # the result's input verdict is its own group
    assert set(by_label) - verdicts == {f.label for f in result.findings}
    for f in result.findings:
        group = by_label[f.label]
        probability = group.get_measurements(name=hd.sr.CodedConcept("122157", "DCM", "x"))
        assert probability and probability[0].value == pytest.approx(f.probability, abs=1e-6)
        evaluation = group.get_qualitative_evaluations()[0]
        assert evaluation.value.meaning == ("Yes" if f.above_threshold else "No")
        has_region = isinstance(group, hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations)
        assert has_region == f.above_threshold
    # SNOMED CT where the label has a code, the CXR-LT name otherwise
    assert by_label["Cardiomegaly"].finding_type.value == "287272002"
    assert by_label["Pleural Effusion"].finding_type.scheme_designator == "SCT"
    assert by_label["Support Devices"].finding_type.meaning == "Support Devices"
    text = str(sr)
    assert "m0" in text and "m1" in text  # ensemble members in the algorithm parameters


def test_gsps_keeps_the_readers_window_and_draws_on_an_ai_layer(
    dicom_case: Any, tmp_path: Path
) -> None:
    path, image, result = dicom_case
    src = pydicom.dcmread(path)
    pr = pydicom.dcmread(write_outputs(result, image, tmp_path, ("gsps",)).files["gsps"])
    voi = pr.SoftcopyVOILUTSequence[0]
    assert float(voi.WindowCenter) == float(src.WindowCenter)
    assert float(voi.WindowWidth) == float(src.WindowWidth)
    assert pr.GraphicLayerSequence[0].GraphicLayer == "AI"
    annotation = pr.GraphicAnnotationSequence[0]
    assert annotation.GraphicLayer == "AI"
    assert len(annotation.GraphicObjectSequence) == 2  # the two findings above threshold
    texts = [t.UnformattedTextValue for t in annotation.TextObjectSequence]
    for f in result.findings[:2]:
        assert any(t.startswith(f.label) for t in texts)
    rows, cols = image.pixels.shape
    for g in annotation.GraphicObjectSequence:
        xy = np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
        assert (xy[:, 0] >= 0).all() and (xy[:, 0] <= cols + 1).all()
        assert (xy[:, 1] >= 0).all() and (xy[:, 1] <= rows + 1).all()
        assert tuple(xy[0]) == tuple(xy[-1])  # closed outline


def test_deidentify_replaces_patient_and_uids(dicom_case: Any, tmp_path: Path) -> None:
    path, image, result = dicom_case
    src = pydicom.dcmread(path)
    files = write_outputs(result, image, tmp_path, ("sc", "sr"), deidentify=True, salt="s").files
    for file in files.values():
        ds = pydicom.dcmread(file)
        assert "DOE" not in str(ds) and src.SOPInstanceUID not in str(ds)
        assert ds.StudyInstanceUID == remap_uid(src.StudyInstanceUID, "s")
        assert remap_uid(src.SOPInstanceUID, "s") in str(ds)
        assert ds.PatientIdentityRemoved == "YES"
        assert dciodvfy_errors(file) == []


def test_zero_pixel_spacing_is_not_copied(service: InferenceService, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "zero.dcm", chest_like(96, 80, seed=4), spacing=None)
    ds = pydicom.dcmread(path)
    ds.PixelSpacing = [0, 0]
    ds.save_as(path)
    image = load_image(path)
    result = two_positive(service.predict([image], cams=True)[0])
    sc = pydicom.dcmread(write_outputs(result, image, tmp_path / "o", ("sc",)).files["sc"])
    assert "PixelSpacing" not in sc
    assert dciodvfy_errors(tmp_path / "o" / "sc_zero.dcm") == []


def test_png_source_gets_new_uids_and_a_warning(service: InferenceService, tmp_path: Path) -> None:
    png = tmp_path / "film.png"
    cv2.imwrite(str(png), (chest_like(90, 70, seed=5) // 16).astype("uint8"))
    image = load_image(png)
    result = two_positive(service.predict([image], cams=True)[0])
    written = write_outputs(result, image, tmp_path / "o", ("sc", "sr", "gsps"))
    assert any("no DICOM header" in w and "film.png" in w for w in written.warnings)
    uids = {pydicom.dcmread(f).StudyInstanceUID for f in written.files.values()}
    assert len(uids) == 1  # one new study holds all outputs
    for file in written.files.values():
        assert dciodvfy_errors(file) == []


def test_input_verdict_goes_into_the_sr(dicom_case: Any, tmp_path: Path) -> None:
    from fpsm_core.trust.checks import Reason
    from fpsm_core.trust.runtime import InputVerdict

    _, image, result = dicom_case
    flagged = InputVerdict(False, 9.5, 2.8, (Reason("view", "The view is LATERAL."),))
    judged = dataclasses.replace(result, input=flagged)
    sr = write_outputs(judged, image, tmp_path, ("sr",)).files["sr"]
    text = " ".join(dsrdump_text(sr).split())
    assert "Input validity: outside the model's training distribution" in text
    assert "The view is LATERAL" in text


def test_region_is_the_half_maximum_outline() -> None:
    cam = np.zeros((50, 60), dtype=np.float32)
    cam[10:20, 30:45] = 1.0
    cam[40:42, 5:7] = 0.4  # below half the peak: not part of the region
    reg = region("Mass", cam)
    assert reg is not None
    assert reg.box == (30.0, 10.0, 45.0, 20.0)
    assert region("Mass", np.zeros((5, 5), dtype=np.float32)) is None


def test_result_without_cams_still_exports_sr_and_sc(dicom_case: Any, tmp_path: Path) -> None:
    _, image, result = dicom_case
    bare = dataclasses.replace(result, cams=None)
    assert evidence(bare) is None
    written = write_outputs(bare, image, tmp_path, ("sc", "sr", "seg"))
    assert set(written.files) == {"sc", "sr"}
    assert any("no CAMs" in w for w in written.warnings)


def test_unknown_kind_is_one_sentence() -> None:
    with pytest.raises(ExportError, match=r"--dicom 'sc,pdf': unknown output kind pdf"):
        parse_kinds("sc,pdf")


def test_sample_study_outputs_are_valid(service: InferenceService, tmp_path: Path) -> None:
    image = load_image(SAMPLE)  # JPEG-LS, MONOCHROME1, 1024 px: the GSPS must invert
    result = two_positive(service.predict([image], cams=True)[0])
    files = write_outputs(result, image, tmp_path, ("sc", "sr", "gsps")).files
    for file in files.values():
        assert dciodvfy_errors(file) == []
    pr = pydicom.dcmread(files["gsps"])
    assert pr.PresentationLUTShape == "INVERSE"
    assert dcmpschk_passes(files["gsps"])[0]


def test_cli_writes_dicom_outputs_and_names_a_bad_option(
    dicom_case: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _, _ = dicom_case
    model = tiny_ensemble(tmp_path / "m", n=1)
    out = tmp_path / "dcm"
    rc = main(
        [
            "infer",
            str(path),
            "--model",
            str(model),
            "--device",
            "cpu",
            "--dicom-out",
            str(out),
            "--dicom",
            "sr,gsps",
            "--json",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["gsps_chest.dcm", "sr_chest.dcm"]
    capsys.readouterr()
    rc = main(
        ["infer", str(path), "--model", str(model), "--dicom-out", str(out), "--dicom", "sc,pdf"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--dicom 'sc,pdf'" in err

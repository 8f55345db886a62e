"""The Qt-free annotation model: maths, undo, the SQLite store, JSON and GSPS exports, sim truth."""

from __future__ import annotations

import csv
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pydicom
import pytest

from fpsm_core.annotations import (
    AnnotationDocument,
    AnnotationError,
    AnnotationStore,
    Calibration,
    Sheet,
    export_json,
    header_spacing,
    image_key,
    measure,
    new_annotation,
    original_values,
    resolve_spacing,
)
from fpsm_core.annotations.measure import Spacing, angle_deg, cobb_deg, roi_stats
from fpsm_core.export.errors import ExportError
from fpsm_core.export.measurements import LAYER, write_measurements_gsps
from fpsm_core.io import load_image
from fpsm_core.io.index_cache import HeaderCache
from tests.core.pacs.pacs_fixtures import dciodvfy_errors, dcmpschk_passes
from tests.synthetic_dicom import SPACING_MM, chest_like, write_dicom

SP = Spacing(0.25, 0.2, "PixelSpacing")


def test_lengths_angles_and_cobb_in_mm_space() -> None:
    length = new_annotation("length", [(0, 0), (30, 40)])
    m = measure(length, None, SP)
    assert m.value == pytest.approx(math.hypot(30 * 0.2, 40 * 0.25))
    assert m.text.endswith("PixelSpacing")
    assert measure(length, None, None).text == "50.0 px · uncalibrated"
    # 45 degrees in pixels is not 45 degrees on anisotropic pixels.
    assert angle_deg((10, 0), (0, 0), (10, 10)) == pytest.approx(45.0)
    assert angle_deg((10, 0), (0, 0), (10, 10), SP) == pytest.approx(
        math.degrees(math.atan2(2.5, 2.0))
    )
    # Cobb: the acute angle between two lines whichever way each is drawn.
    lines = [(0, 0), (10, 0), (10, 10), (0, 0)]
    assert cobb_deg(lines) == pytest.approx(45.0)
    assert cobb_deg([(0, 0), (10, 0), (0, 0), (-10, 1)]) == pytest.approx(
        math.degrees(math.atan(0.1)), abs=1e-6
    )


def test_roi_statistics_count_pixel_centres_and_the_geometric_area() -> None:
    values = np.arange(100, dtype=np.float32).reshape(10, 10)
    s = roi_stats(values, "rectangle", (2.0, 3.0), (5.0, 7.0), None)
    inside = values[3:7, 2:5]
    assert (s.n, s.mean, s.minimum, s.maximum) == (12, inside.mean(), 32, 64)
    assert s.sd == pytest.approx(inside.std())
    assert (s.area, s.area_unit) == (12.0, "px²")
    e = roi_stats(values, "ellipse", (0.0, 0.0), (10.0, 10.0), SP)
    assert e.area == pytest.approx(math.pi * 25 * 0.25 * 0.2) and e.area_unit == "mm²"
    assert 60 < e.n < 90  # ~78.5 centres inside a circle of radius 5


def test_ctr_is_the_ratio_of_horizontal_widths_and_spans_stay_horizontal() -> None:
    ctr = new_annotation("ctr", [(40, 100), (90, 107), (10, 120), (110, 118)])
    assert ctr.points[1][1] == 100 and ctr.points[3][1] == 120
    m = measure(ctr, None, SP)
    assert m.value == pytest.approx(0.5) and m.details["cardiac"] == pytest.approx(10.0)
    moved = ctr.with_point(2, (0, 130))  # the thorax span's start carries its row
    assert moved.points[3] == (110, 130)
    assert measure(moved, None, None).value == pytest.approx(50 / 110)


def test_undo_redo_and_calibration_through_the_document() -> None:
    doc = AnnotationDocument()
    seen: list[Sheet] = []
    doc.subscribe(seen.append)
    a = new_annotation("length", [(0, 0), (0, 100)])
    doc.add(a)
    doc.update(a.moved(5, 5))
    doc.set_calibration(Calibration.from_line([(0, 0), (0, 50)], 20.0))
    assert doc.sheet.calibration.mm_per_px == pytest.approx(0.4)
    spacing = resolve_spacing(None, doc.sheet.calibration)
    assert measure(doc.sheet.annotations[0], None, spacing).text == "40.0 mm · calibrated"
    assert doc.undo() and doc.sheet.calibration is None
    assert doc.undo() and doc.sheet.annotations == (a,)
    assert doc.redo() and doc.sheet.annotations[0].points[0] == (5, 5)
    doc.remove(a.id)
    assert not doc.can_redo and doc.sheet.annotations == ()
    assert len(seen) == 7  # add, move, calibrate, undo, undo, redo, remove
    with pytest.raises(ValueError, match="positive"):
        Calibration.from_line([(0, 0), (0, 50)], 0.0)


def test_sheet_json_round_trip_and_a_damaged_sheet_is_one_sentence() -> None:
    sheet = Sheet(
        (
            new_annotation("text", [(1, 2)], "é note"),
            new_annotation("cobb", [(0, 0), (1, 0), (0, 1), (1, 1)]),
        ),
        Calibration.from_line([(0, 0), (10, 0)], 5.0),
    )
    assert Sheet.from_json(sheet.to_json()) == sheet
    with pytest.raises(AnnotationError) as err:
        Sheet.from_json(
            '{"format": "fpsm-annotations/1", "annotations": [{"kind": "angle"}]}', "x.db"
        )
    assert str(err.value).startswith("'x.db': cannot be read") and "\n" not in str(err.value)


def test_store_is_a_schema_step_of_the_index_and_survives_a_header_rebuild(tmp_path: Path) -> None:
    index = tmp_path / "index.sqlite3"
    # An index written by the previous schema (version 1: files only) keeps its header rows.
    con = sqlite3.connect(index)
    con.execute("CREATE TABLE files (path TEXT PRIMARY KEY, x INTEGER) WITHOUT ROWID")
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    path = write_dicom(tmp_path / "a.dcm", chest_like())
    image = load_image(path)
    key = image_key(image)
    assert key == f"uid:{image.instance_uid}:0"
    sheet = Sheet((new_annotation("length", [(0, 0), (3, 4)]),))
    with AnnotationStore(index) as store:
        store.save(key, sheet, path)
    with HeaderCache(index) as cache:  # the header cache opens (and upgrades) the same file
        assert cache.problem is None
    con = sqlite3.connect(index)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.close()
    with AnnotationStore(index) as store:
        assert store.load(key) == sheet
        store.save(key, Sheet())  # an emptied sheet is forgotten
        assert store.load(key) is None and store.keys() == []
    with AnnotationStore(tmp_path / "new" / "index.sqlite3") as store:  # made private to the user
        assert (store.path.stat().st_mode & 0o777) == 0o600


def test_store_in_a_folder_that_cannot_be_made_is_one_sentence(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(AnnotationError, match="will not be saved"):
        AnnotationStore(blocker / "index.sqlite3")


def test_spacing_source_is_read_from_the_header(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    path = write_dicom(tmp_path / "ips.dcm", chest_like(), spacing=None)
    ds = pydicom.dcmread(path)
    ds.ImagerPixelSpacing = ["0.15", "0.15"]
    ds.save_as(path)
    assert header_spacing(load_image(path)) == Spacing(0.15, 0.15, "ImagerPixelSpacing")
    assert (
        header_spacing(load_image(write_dicom(tmp_path / "ps.dcm", chest_like()))).source
        == "PixelSpacing"
    )
    assert (
        header_spacing(load_image(write_dicom(tmp_path / "none.dcm", chest_like(), spacing=None)))
        is None
    )
    del Dataset


def test_original_values_undo_the_monochrome1_mirror(tmp_path: Path) -> None:
    stored = chest_like()
    for window in ((2000.0, 3000.0), None):
        path = write_dicom(tmp_path / "m1.dcm", stored, window=window, photometric="MONOCHROME1")
        image = load_image(path)
        assert image.inverted
        np.testing.assert_allclose(original_values(image), stored.astype(np.float32))


@pytest.fixture()
def measured_film(tmp_path: Path) -> tuple[Path, Sheet]:
    path = write_dicom(tmp_path / "chest.dcm", chest_like(200, 160), photometric="MONOCHROME1")
    sheet = Sheet(
        tuple(
            new_annotation(kind, pts, text)
            for kind, pts, text in (
                ("length", [(10, 10), (60, 90)], ""),
                ("angle", [(80, 20), (60, 40), (90, 60)], ""),
                ("cobb", [(10, 100), (70, 110), (10, 150), (70, 135)], "T5-T12"),
                ("ellipse", [(20, 20), (70, 60)], ""),
                ("rectangle", [(90, 120), (150, 190)], ""),
                ("arrow", [(150, 10), (110, 50)], "nodule"),
                ("text", [(30, 180)], "compare with prior"),
                ("ctr", [(50, 120), (110, 120), (15, 140), (150, 140)], ""),
            )
        )
    )
    return path, sheet


def test_json_export_carries_every_measurement_and_no_patient(
    tmp_path: Path, measured_film: tuple[Path, Sheet]
) -> None:
    path, sheet = measured_film
    image = load_image(path)
    out = export_json(tmp_path / "m.json", sheet, image)
    doc = json.loads(out.read_text())
    assert doc["spacing"] == {
        "row_mm": SPACING_MM[0],
        "col_mm": SPACING_MM[1],
        "source": "PixelSpacing",
    }
    kinds = [a["kind"] for a in doc["annotations"]]
    assert kinds == ["length", "angle", "cobb", "ellipse", "rectangle", "arrow", "text", "ctr"]
    roi = doc["annotations"][4]["measurement"]
    want = original_values(image)[120:190, 90:150]
    assert roi["mean"] == pytest.approx(float(want.mean()), rel=1e-6)
    assert doc["annotations"][7]["measurement"]["ctr"] == pytest.approx(60 / 135)
    assert "TEST" not in out.read_text()  # the patient's name stays out
    with pytest.raises(AnnotationError, match="cannot be written"):
        export_json(tmp_path / "missing" / "m.json", sheet, image)


def test_gsps_of_the_measurements_is_valid_and_on_its_own_layer(
    tmp_path: Path, measured_film: tuple[Path, Sheet]
) -> None:
    path, sheet = measured_film
    image = load_image(path)
    out = write_measurements_gsps(sheet, image, tmp_path / "pr.dcm")
    ok, report = dcmpschk_passes(out)
    assert ok, report
    assert dciodvfy_errors(out) == []
    pr = pydicom.dcmread(out)
    assert pr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"
    assert [layer.GraphicLayer for layer in pr.GraphicLayerSequence] == [LAYER]
    (ann,) = pr.GraphicAnnotationSequence
    assert ann.GraphicLayer == LAYER
    src = pydicom.dcmread(path, stop_before_pixels=True)
    assert ann.ReferencedImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    types = [g.GraphicType for g in ann.GraphicObjectSequence]
    # length, angle, 2 cobb, ellipse, rectangle, arrow shaft + head, 2 ctr
    assert types.count("POLYLINE") == 9 and types.count("ELLIPSE") == 1
    texts = [t.UnformattedTextValue for t in ann.TextObjectSequence]
    assert any(t.startswith("T5-T12: Cobb") and t.endswith(" deg") for t in texts)
    assert "nodule" in texts and "compare with prior" in texts
    assert any(t.startswith("CTR 0.44") for t in texts)
    assert pr.PresentationLUTShape == "INVERSE"  # MONOCHROME1 source
    with pytest.raises(ExportError, match="no measurements"):
        write_measurements_gsps(Sheet(), image, tmp_path / "empty.dcm")


def test_the_simulator_writes_each_films_true_ctr(tmp_path: Path) -> None:
    from fpsm_core.sim import SimConfig, simulate_case, write_dataset

    write_dataset(tmp_path, n=3, seed=5, format="png", size=128)
    with (tmp_path / "measurements.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3
    for i, row in enumerate(rows):
        case = simulate_case((5, i), SimConfig(size=128, seed=5))
        assert float(row["ctr"]) == pytest.approx(case.film_ctr, abs=1e-4)
        assert float(row["ctr_drawn"]) == pytest.approx(case.ctr, abs=1e-4)
        # The film's ratio is the drawn one up to the lung outlines' own width (a few per cent).
        assert abs(case.film_ctr - case.ctr) < 0.05
        (c0, c1), (t0, t1) = case.cardiac_span, case.thoracic_span
        assert t0[0] < c0[0] < c1[0] < t1[0]  # the heart lies within the thorax


def test_a_calibration_goes_out_as_the_presentation_pixel_spacing(tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "nospacing.dcm", chest_like(), spacing=None)
    sheet = Sheet(
        (new_annotation("length", [(10, 10), (40, 50)]),),
        Calibration.from_line([(0, 0), (0, 50)], 20.0),
    )
    out = write_measurements_gsps(sheet, load_image(path), tmp_path / "pr.dcm")
    ok, report = dcmpschk_passes(out)
    assert ok, report
    assert dciodvfy_errors(out) == []
    (area,) = pydicom.dcmread(out).DisplayedAreaSelectionSequence
    assert [float(v) for v in area.PresentationPixelSpacing] == [0.4, 0.4]
    assert "PresentationPixelAspectRatio" not in area
    texts = [
        t.UnformattedTextValue
        for t in pydicom.dcmread(out).GraphicAnnotationSequence[0].TextObjectSequence
    ]
    assert texts == ["20.0 mm - calibrated"]


def test_original_values_of_a_real_monochrome1_cr_are_its_stored_values() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("RG1_UNCR.dcm")  # real PA chest CR, MONOCHROME1, PixelSpacing [0, 0]
    if path is None:
        pytest.skip("pydicom-data is not installed")
    image = load_image(path)
    assert image.inverted and image.spacing_mm is None and header_spacing(image) is None
    stored = pydicom.dcmread(path).pixel_array.astype(np.float32)
    np.testing.assert_array_equal(original_values(image), stored)
    rect = new_annotation("rectangle", [(900.0, 700.0), (1000.0, 800.0)])
    m = measure(rect, original_values(image), None)
    assert m.details["mean"] == pytest.approx(
        stored[700:800, 900:1000].astype(np.float64).mean(), rel=1e-9
    )
    assert (m.details["area"], m.details["area_unit"]) == (10000.0, "px²")

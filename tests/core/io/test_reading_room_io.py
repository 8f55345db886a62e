"""The reading room's Qt-free parts: film headers, priors, hanging, key images, score changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from fpsm_core.compare import score_changes
from fpsm_core.io import index_folder
from fpsm_core.io.film_header import (
    FilmHeader,
    age_text,
    opposite,
    parse_orientation,
    read_film_header,
)
from fpsm_core.io.key_images import KeyImageError, KeyImageStore
from fpsm_core.io.studies import best_match, hanging_order, locate, prior_studies
from tests.synthetic_dicom import chest_like, write_dicom


def tagged_dicom(path: Path, **tags: object) -> Path:
    """A small DX file with the given header attributes set (None deletes one)."""
    write_dicom(path, chest_like(48, 40))
    ds = pydicom.dcmread(path)
    for keyword, value in tags.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    ds.save_as(path)
    return path


def test_film_header_reads_the_corner_facts(tmp_path: Path) -> None:
    path = tagged_dicom(
        tmp_path / "a.dcm",
        PatientName="DOE^JANE",
        PatientID="MRN7",
        PatientSex="F",
        PatientAge="064Y",
        StudyDate="20241105",
        StudyTime="093012",
        AccessionNumber="ACC1",
        InstitutionName="General",
        ViewPosition="AP",
        ImageLaterality="U",
        SeriesNumber=3,
        InstanceNumber=2,
        PatientOrientation=["P", "F"],
        PixelSpacing=None,
        ImagerPixelSpacing=["0.2", "0.2"],
    )
    header = read_film_header(path)
    assert (header.patient_name, header.patient_id) == ("DOE^JANE", "MRN7")
    assert (header.patient_sex, header.patient_age) == ("F", "64Y")
    assert (header.study_date, header.study_time, header.accession) == (
        "20241105",
        "093012",
        "ACC1",
    )
    assert (header.institution, header.modality, header.view_position) == ("General", "DX", "AP")
    assert (header.laterality, header.series_number, header.instance_number) == ("U", 3, 2)
    # The file's own labels win over the view's convention.
    assert header.orientation == ("P", "F")
    assert header.orientation_source == "PatientOrientation"
    assert header.spacing_source == "ImagerPixelSpacing"
    # PHI follows the Basic Profile: names, IDs, dates, accession, institution; not the view.
    for name in ("patient_name", "patient_id", "study_date", "accession", "institution"):
        assert header.is_phi(name), name
    for name in ("modality", "view_position", "series_number"):
        assert not header.is_phi(name), name


def test_orientation_falls_back_to_the_view_and_age_to_the_birth_date(tmp_path: Path) -> None:
    path = tagged_dicom(
        tmp_path / "b.dcm", ViewPosition="LL", PatientBirthDate="19600615", StudyDate="20240614"
    )
    header = read_film_header(path)
    assert header.orientation == ("P", "F")
    assert header.orientation_source == "ViewPosition"
    assert header.patient_age == "63Y"  # the day before the birthday
    assert header.spacing_source == "PixelSpacing"
    assert age_text(None, "bad", "20240101") is None
    assert parse_orientation(["X", "F"]) is None
    assert opposite("LF") == "RH"


def test_a_raster_has_an_empty_header(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    assert read_film_header(path) == FilmHeader()


def test_multi_frame_header_counts_frames_and_cine_rate(tmp_path: Path) -> None:
    path = tagged_dicom(tmp_path / "m.dcm", NumberOfFrames=1, CineRate=25)
    header = read_film_header(path)
    assert header.frames == 1
    assert header.frame_ms == pytest.approx(40.0)


def _study(folder: Path, name: str, patient: str, date: str, view: str = "PA") -> Path:
    from pydicom.uid import generate_uid

    path = tagged_dicom(
        folder / name,
        PatientName=patient,
        PatientID=patient.split("^")[0],
        StudyDate=date,
        StudyInstanceUID=generate_uid(),
        ViewPosition=view,
    )
    return path


def test_a_prior_is_found_for_a_patient_with_two_studies(tmp_path: Path) -> None:
    folder = tmp_path / "studies"
    (folder / "new").mkdir(parents=True)
    (folder / "old").mkdir()
    current = _study(folder / "new", "pa.dcm", "ANNA^A", "20240301")
    prior = _study(folder / "old", "pa.dcm", "ANNA^A", "20220110")
    _study(folder / "old", "other.dcm", "BOB^B", "20200101")  # another patient, earlier
    index = index_folder(folder, cache=False)
    priors = prior_studies(index, current)
    assert len(priors) == 1
    assert [img.path for img in priors[0].images] == [prior.absolute()]
    assert prior_studies(index, prior) == ()  # nothing before the oldest
    assert best_match(priors[0], "PA").path == prior.absolute()


def test_no_prior_without_a_date_or_a_patient_id(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    current = tagged_dicom(folder / "a.dcm", PatientID=None, StudyDate="20240301")
    tagged_dicom(folder / "b.dcm", PatientID=None, StudyDate="20200301")
    index = index_folder(folder, cache=False)
    assert prior_studies(index, current) == ()


def test_hanging_order_puts_the_preferred_view_first(tmp_path: Path) -> None:
    from pydicom.uid import generate_uid

    folder = tmp_path / "one"
    folder.mkdir()
    uid = generate_uid()
    for name, view in (("1.dcm", "LL"), ("2.dcm", "PA")):
        tagged_dicom(
            folder / name,
            StudyInstanceUID=uid,
            ViewPosition=view,
            PatientID="P",
            StudyDate="20240101",
        )
    index = index_folder(folder, cache=False)
    here = locate(index, folder / "1.dcm")
    assert here is not None
    ordered = hanging_order(here.study.images, ("PA", "LL"))
    assert [img.view_position for img in ordered] == ["PA", "LL"]
    assert [img.view_position for img in hanging_order(here.study.images, ("LL", "PA"))] == [
        "LL",
        "PA",
    ]


def test_key_images_survive_reopening_the_store(tmp_path: Path) -> None:
    db = tmp_path / "index.sqlite3"
    store = KeyImageStore(db)
    store.set_key(tmp_path / "a.dcm", "1.2.3", True)
    store.set_key(tmp_path / "b.dcm", None, True)
    store.set_key(tmp_path / "b.dcm", None, False)
    store.close()
    again = KeyImageStore(db)
    assert again.is_key(tmp_path / "elsewhere.dcm", "1.2.3")  # the mark follows the instance
    assert not again.is_key(tmp_path / "b.dcm")
    assert again.marked_paths() == [str((tmp_path / "a.dcm").absolute())]
    again.close()


def test_an_unusable_key_image_file_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite3").mkdir()
    with pytest.raises(KeyImageError, match="cannot be opened"):
        KeyImageStore(tmp_path / "dir.sqlite3")


def test_score_changes_rank_the_largest_change_first() -> None:
    from tests.synthetic_result import synthetic_result

    before = synthetic_result(seed=1, cams=False)
    after = synthetic_result(seed=2, cams=False)
    changes = score_changes(before, after)
    p_before = {f.label: f.probability for f in before.findings}
    p_after = {f.label: f.probability for f in after.findings}
    assert {c.label for c in changes} == set(p_before)
    biggest = max(p_before, key=lambda k: abs(p_after[k] - p_before[k]))
    assert changes[0].label == biggest
    assert changes[0].points == pytest.approx((p_after[biggest] - p_before[biggest]) * 100)
    sizes = [abs(c.points) for c in changes]
    assert sizes == sorted(sizes, reverse=True)
    assert changes[0].text().startswith(f"{biggest} {changes[0].points:+.1f} pts (")
    assert len(score_changes(before, after, top=3)) == 3

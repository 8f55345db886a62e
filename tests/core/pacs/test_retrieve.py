"""C-GET and C-MOVE at study, series and image level, and DICOMweb, against a real Orthanc."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from fpsm_core.pacs import Node, PacsError, RetrieveCancelled, dicomweb, find, retrieve, store
from tests.core.pacs.pacs_fixtures import orthanc  # noqa: F401  (fixture)
from tests.core.pacs.test_pacs import SAMPLES, node


def _header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.mark.parametrize("method", ["get", "move"])
def test_retrieve_at_study_series_and_image_level(
    orthanc: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    method: str,
) -> None:
    pacs = node(orthanc, move_port=orthanc["move_port"])
    store(pacs, SAMPLES)
    src = _header(SAMPLES[4])
    seen: list[tuple[int, int]] = []
    cache = tmp_path / "cache"
    got = retrieve(
        pacs,
        cache,
        src.StudyInstanceUID,
        method=method,  # type: ignore[arg-type]
        progress=lambda d, t: seen.append((d, t)),
        bind="127.0.0.1",
    )
    assert got.folder == cache / src.StudyInstanceUID
    assert src.SOPInstanceUID in {_header(f).SOPInstanceUID for f in got.files}
    assert seen and seen[-1][0] == seen[-1][1] == len(got.files)
    # the cache goes through the study index: the retrieved study is there, with its patient
    index = got.index(cache=False)
    assert [s.study_uid for s in index.studies] == [src.StudyInstanceUID]
    # series and image level into a fresh cache
    series = retrieve(
        pacs,
        tmp_path / "s",
        src.StudyInstanceUID,
        src.SeriesInstanceUID,
        method=method,
        bind="127.0.0.1",  # type: ignore[arg-type]
    )
    assert {_header(f).SeriesInstanceUID for f in series.files} == {src.SeriesInstanceUID}
    one = retrieve(
        pacs,
        tmp_path / "i",
        src.StudyInstanceUID,
        src.SeriesInstanceUID,
        src.SOPInstanceUID,
        method=method,
        bind="127.0.0.1",  # type: ignore[arg-type]
    )
    assert [f.name for f in one.files] == [f"{src.SOPInstanceUID}.dcm"]
    assert pydicom.dcmread(one.files[0]).pixel_array.shape == (src.Rows, src.Columns)


def test_a_cancelled_retrieve_keeps_nothing(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    pacs = node(orthanc)
    store(pacs, SAMPLES[:1])
    src = _header(SAMPLES[0])
    with pytest.raises(RetrieveCancelled, match="was cancelled; nothing was kept"):
        retrieve(pacs, tmp_path / "c", src.StudyInstanceUID, cancel=lambda: True)
    assert list((tmp_path / "c").iterdir()) == []


def test_move_to_an_unknown_destination_is_one_sentence(
    orthanc: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    pacs = node(orthanc, our_aet="STRANGER", move_port=orthanc["move_port"])
    store(pacs, SAMPLES[:1])
    with pytest.raises(PacsError, match="know our AE title 'STRANGER'"):
        retrieve(
            pacs,
            tmp_path / "m",
            _header(SAMPLES[0]).StudyInstanceUID,
            method="move",
            bind="127.0.0.1",
        )
    assert list((tmp_path / "m").iterdir()) == []
    with pytest.raises(PacsError, match="needs the port our storage SCP listens on"):
        retrieve(node(orthanc), tmp_path / "m", "1.2.3", method="move")


def test_find_by_name_accession_date_range_modality_and_body_part(
    orthanc: dict[str, Any],  # noqa: F811
) -> None:
    pacs = node(orthanc)
    store(pacs, SAMPLES)
    src = _header(SAMPLES[1])
    assert [s.StudyInstanceUID for s in find(pacs, "STUDY", PatientName=str(src.PatientName))] == [
        src.StudyInstanceUID
    ]
    assert src.StudyInstanceUID in {
        s.StudyInstanceUID
        for s in find(
            pacs,
            "STUDY",
            StudyDate=f"{src.StudyDate}-{src.StudyDate}",
            ModalitiesInStudy=src.Modality,
        )
    }
    assert find(pacs, "STUDY", StudyDate="19000101-19000102") == []
    if "BodyPartExamined" in src:
        series = find(
            pacs,
            "SERIES",
            StudyInstanceUID=src.StudyInstanceUID,
            BodyPartExamined=str(src.BodyPartExamined),
        )
        assert [s.SeriesInstanceUID for s in series] == [src.SeriesInstanceUID]


def test_dicomweb_search_retrieve_and_store(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    web = Node("web", "", "", 0, url=orthanc["dicomweb"])
    sent = dicomweb.store(web, SAMPLES[5:6])
    src = _header(SAMPLES[5])
    assert sent == [src.SOPInstanceUID]
    studies = dicomweb.search(web, "STUDY", PatientID=str(src.PatientID))
    assert [s.StudyInstanceUID for s in studies] == [src.StudyInstanceUID]
    series = dicomweb.search(
        web, "SERIES", StudyInstanceUID=src.StudyInstanceUID, Modality=src.Modality
    )
    assert [s.SeriesInstanceUID for s in series] == [src.SeriesInstanceUID]
    seen: list[tuple[int, int]] = []
    got = dicomweb.retrieve(
        web, tmp_path / "w", src.StudyInstanceUID, progress=lambda d, t: seen.append((d, t))
    )
    assert [_header(f).SOPInstanceUID for f in got.files] == [src.SOPInstanceUID]
    assert seen[-1] == (1, 1)
    assert pydicom.dcmread(got.files[0]).pixel_array.shape == (src.Rows, src.Columns)
    with pytest.raises(PacsError, match="has no instances of study 1.2.3.4"):
        dicomweb.retrieve(web, tmp_path / "w", "1.2.3.4")
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [src.StudyInstanceUID]


def test_dicomweb_failures_are_one_sentence(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from tests.core.pacs.pacs_fixtures import free_port

    dead = Node("dead", "", "", 0, url=f"http://127.0.0.1:{free_port()}/dicom-web", timeout_s=3)
    with pytest.raises(PacsError, match=r"^cannot reach dead \(http://127.0.0.1:\d+/dicom-web\)"):
        dicomweb.search(dead, "STUDY")
    wrong = Node("wrong", "", "", 0, url=f"{orthanc['url']}/no-such-root")
    with pytest.raises(PacsError, match=r"refused the QIDO-RS search \(HTTP 404"):
        dicomweb.search(wrong, "STUDY")
    bad = tmp_path / "x.dcm"
    bad.write_bytes(b"hello")
    with pytest.raises(PacsError, match=r"x\.dcm is not a DICOM file that can be sent"):
        dicomweb.store(Node("web", "", "", 0, url=orthanc["dicomweb"]), [bad])

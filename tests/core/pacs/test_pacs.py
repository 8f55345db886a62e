"""The PACS client against a real Orthanc: echo, store the sample study, find it; failures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydicom
import pytest

from fpsm_core.pacs import Node, PacsError, echo, find, load_nodes, store
from tests.core.pacs.pacs_fixtures import free_port, orthanc  # noqa: F401  (fixture)

SAMPLES = sorted((Path(__file__).resolve().parents[3] / "resources" / "samples").glob("*.dcm"))


def node(info: dict[str, Any], **kw: Any) -> Node:
    base = {"name": "orthanc", "aet": info["aet"], "host": "127.0.0.1", "port": info["port"]}
    return Node(**(base | kw))


def test_echo_store_and_find_the_sample_study(orthanc: dict[str, Any]) -> None:  # noqa: F811
    pacs = node(orthanc)
    echo(pacs)
    sent = store(pacs, SAMPLES[:2])
    first = pydicom.dcmread(SAMPLES[0], stop_before_pixels=True)
    assert sent[0] == first.SOPInstanceUID
    studies = find(pacs, "STUDY", PatientID=str(first.PatientID))
    assert [s.StudyInstanceUID for s in studies] == [first.StudyInstanceUID]
    assert studies[0].AccessionNumber == first.AccessionNumber
    images = find(pacs, "IMAGE", StudyInstanceUID=first.StudyInstanceUID)
    assert first.SOPInstanceUID in {i.SOPInstanceUID for i in images}
    series = find(pacs, "SERIES", StudyInstanceUID=first.StudyInstanceUID, Modality="DX")
    assert series and all(s.Modality == "DX" for s in series)
    assert find(pacs, "STUDY", PatientID="nobody-here") == []


def test_exported_objects_are_stored_and_found(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from fpsm_core.export import write_outputs
    from fpsm_core.inference import InferenceService
    from fpsm_core.io import load_image
    from tests.core.helpers import tiny_ensemble

    service = InferenceService(tiny_ensemble(tmp_path / "m", n=1), device="cpu")
    image = load_image(SAMPLES[0])
    result = service.predict([image], cams=True)[0]
    files = write_outputs(result, image, tmp_path / "dcm", ("sc", "sr", "gsps")).files
    pacs = node(orthanc)
    store(pacs, files.values())
    series = find(pacs, "SERIES", StudyInstanceUID=image.study_uid)
    assert {"OT", "SR", "PR"} <= {s.Modality for s in series}


def test_dead_port_is_one_sentence() -> None:
    dead = Node(name="dead", aet="NOBODY", host="127.0.0.1", port=free_port(), timeout_s=3)
    with pytest.raises(PacsError, match=r"^cannot reach dead \(NOBODY@127\.0\.0\.1:\d+\)"):
        echo(dead)


def test_wrong_ae_title_is_one_sentence(orthanc: dict[str, Any]) -> None:  # noqa: F811
    with pytest.raises(PacsError, match=r"rejected the association .*'WRONG'"):
        echo(node(orthanc, aet="WRONG"))


def test_non_dicom_payload_is_one_sentence(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    bad = tmp_path / "notes.dcm"
    bad.write_text("not a DICOM file")
    with pytest.raises(PacsError, match=r"notes\.dcm is not a DICOM file that can be sent"):
        store(node(orthanc), [bad])


def test_nodes_file(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    path.write_text('{"nodes": {"pacs": {"aet": "PACS", "host": "127.0.0.1", "port": 104}}}')
    nodes = load_nodes(path)
    assert nodes["pacs"] == Node(name="pacs", aet="PACS", host="127.0.0.1", port=104)
    path.write_text('{"nodes": {"pacs": {"host": "x"}}}')
    with pytest.raises(PacsError, match="nodes.json is not a valid node list"):
        load_nodes(path)


def test_cli_echo_send_find_and_a_dead_node(
    orthanc: dict[str, Any],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fpsm_core.cli.main import main

    inline = ["--host", "127.0.0.1", "--port", str(orthanc["port"]), "--aec", orthanc["aet"]]
    assert main(["pacs", "echo", *inline]) == 0
    assert "C-ECHO succeeded" in capsys.readouterr().out
    assert main(["pacs", "send", *inline, str(SAMPLES[2])]) == 0
    assert "stored 1 instance(s)" in capsys.readouterr().out
    first = pydicom.dcmread(SAMPLES[2], stop_before_pixels=True)
    assert main(["pacs", "find", *inline, "--accession", str(first.AccessionNumber)]) == 0
    assert first.StudyInstanceUID in capsys.readouterr().out
    dead = ["--host", "127.0.0.1", "--port", str(free_port()), "--aec", "X", "--timeout", "3"]
    assert main(["pacs", "echo", *dead]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot reach X@127.0.0.1" in err


def test_get_brings_the_study_back_whole(orthanc: dict[str, Any], tmp_path: Path) -> None:  # noqa: F811
    from fpsm_core.pacs import get

    pacs = node(orthanc)
    store(pacs, SAMPLES[3:4])
    src = pydicom.dcmread(SAMPLES[3], stop_before_pixels=True)
    folder = get(pacs, tmp_path / "cache", src.StudyInstanceUID)
    assert folder == tmp_path / "cache" / src.StudyInstanceUID
    files = list(folder.glob("*.dcm"))
    assert [pydicom.dcmread(f).SOPInstanceUID for f in files] == [src.SOPInstanceUID]
    with pytest.raises(PacsError, match="has no instances of study 1.2.3.4"):
        get(pacs, tmp_path / "cache", "1.2.3.4")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [src.StudyInstanceUID]


def test_a_query_the_pacs_does_not_allow_from_our_ae_title_says_so(
    orthanc: dict[str, Any],  # noqa: F811
) -> None:
    """Orthanc aborts a C-FIND from an AE title it does not list: name that, not 'stopped'."""
    stranger = Node("orthanc", orthanc["aet"], "127.0.0.1", orthanc["port"], our_aet="STRANGER")
    with pytest.raises(PacsError) as err:
        find(stranger, "STUDY", PatientID="*")
    text = str(err.value)
    assert "aborted the C-FIND" in text and "'STRANGER'" in text, text
    assert text.count(". ") == 0 and text.endswith(".")

"""File > Export as DICOM and File > Send to PACS, clicked like a user, against a real Orthanc.

The objects are checked with the real validators (dciodvfy, dcmpschk, dsrdump) and the PACS is
Debian's Orthanc on 127.0.0.1 (the fixture of tests/core/pacs), asked over its REST API what it
received.
"""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pydicom
import pytest
from PySide6.QtCore import Qt

from tests.core.pacs.pacs_fixtures import (  # noqa: F401  (orthanc is a fixture)
    dciodvfy_errors,
    dcmpschk_passes,
    dsrdump_text,
    free_port,
    orthanc,
)

TIMEOUT = 60000


def open_and_wait(qtbot: Any, window: Any, path: Path) -> Any:
    with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
        window.open_path(path)
    return blocker.args[0]


def run_dialog(qtbot: Any, dialog: Any) -> str:
    """Click the dialog's Export/Send button and wait for the worker; returns the message."""
    out = dialog.output
    with qtbot.waitSignal(out.busy_changed, timeout=TIMEOUT, check_params_cb=lambda b: not b):
        qtbot.mouseClick(dialog.go_button, Qt.MouseButton.LeftButton)
    return str(dialog.message.text())


def test_export_as_dicom_writes_valid_sc_sr_gsps_of_the_film_on_screen(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["export_dicom"].trigger()
    dialog = window.dicom_out.dialog
    assert dialog is not None and dialog.kinds() == ("sc", "sr", "gsps")
    out = tmp_path / "dicom out"
    dialog.folder.clear()
    qtbot.keyClicks(dialog.folder, str(out))
    message = run_dialog(qtbot, dialog)
    assert message.startswith("Wrote SC, SR, GSPS to"), message
    files = sorted(p.name for p in out.iterdir())
    assert files == [f"{k}_{dicom_file.stem}.dcm" for k in ("gsps", "sc", "sr")]
    source = pydicom.dcmread(dicom_file)
    for path in out.iterdir():
        assert dciodvfy_errors(path) == [], path.name
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == source.StudyInstanceUID  # filed with the study
        assert ds.PatientID == source.PatientID
    assert dcmpschk_passes(out / f"gsps_{dicom_file.stem}.dcm")[0]
    assert "Probability" in dsrdump_text(out / f"sr_{dicom_file.stem}.dcm")
    assert window.status_label.text() == message  # the status bar says it too


def test_de_identified_export_carries_no_patient_identity(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["export_dicom"].trigger()
    dialog = window.dicom_out.dialog
    dialog.folder.setText(str(tmp_path / "out"))
    qtbot.mouseClick(dialog.deidentify, Qt.MouseButton.LeftButton)
    assert dialog.deidentify.isChecked()
    run_dialog(qtbot, dialog)
    source = pydicom.dcmread(dicom_file)
    for path in (tmp_path / "out").iterdir():
        ds = pydicom.dcmread(path)
        assert ds.PatientID != source.PatientID
        assert str(ds.PatientName) != str(source.PatientName)
        assert ds.StudyInstanceUID != source.StudyInstanceUID


def test_export_without_a_film_or_a_folder_is_one_sentence(
    qtbot: Any, make_window: Any, dicom_file: Path
) -> None:
    window = make_window()
    window.actions_by_name["export_dicom"].trigger()
    dialog = window.dicom_out.dialog
    dialog.folder.setText("/nonexistent-never-written")
    assert not dialog.start()
    assert dialog.message.text() == "Open an image first: there is no film to export."
    open_and_wait(qtbot, window, dicom_file)
    dialog.folder.clear()
    assert not dialog.start()
    assert dialog.message.text() == "Choose the folder to write the DICOM files into."
    for box in dialog.kind_boxes.values():
        box.setChecked(False)
    assert not dialog.start()
    assert "at least one kind" in dialog.message.text()


def test_export_into_a_file_path_is_one_sentence_and_nothing_written(
    qtbot: Any, make_window: Any, dicom_file: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["export_dicom"].trigger()
    dialog = window.dicom_out.dialog
    dialog.folder.setText(str(blocker))
    message = run_dialog(qtbot, dialog)
    assert str(blocker) in message and message.count(". ") == 0
    assert blocker.read_text() == "not a folder"
    assert window.last_error == message


def _orthanc_instances(url: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{url}/instances?expand", timeout=10) as r:
        return json.loads(r.read())  # type: ignore[no-any-return]


def test_send_to_pacs_echoes_and_stores_the_outputs_in_orthanc(
    qtbot: Any,
    make_window: Any,
    dicom_file: Path,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    nodes = tmp_path / "nodes.json"
    nodes.write_text(
        json.dumps({"nodes": {"test-pacs": {"aet": "ORTHANC", "host": "127.0.0.1",
                                            "port": orthanc["port"], "our_aet": "FPSM"}}})
    )  # fmt: skip
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["send_pacs"].trigger()
    dialog = window.dicom_out.dialog
    qtbot.keyClicks(dialog.nodes.nodes_file, str(nodes))
    dialog.nodes.nodes_file.editingFinished.emit()
    assert dialog.nodes.node_combo.currentText() in ("test-pacs", "Typed in below")
    dialog.nodes.node_combo.setCurrentText("test-pacs")
    assert dialog.nodes.aec.text() == "ORTHANC" and not dialog.nodes.aec.isEnabled()
    with qtbot.waitSignal(dialog.output.finished, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.echo_button, Qt.MouseButton.LeftButton)
    assert "answered the C-ECHO" in dialog.message.text()
    before = {i["MainDicomTags"]["SOPInstanceUID"] for i in _orthanc_instances(orthanc["url"])}
    message = run_dialog(qtbot, dialog)
    assert message.startswith("Sent 3 DICOM object(s) (SC, SR, GSPS) to test-pacs"), message
    assert dialog.report is not None
    after = {i["MainDicomTags"]["SOPInstanceUID"] for i in _orthanc_instances(orthanc["url"])}
    assert set(dialog.report.sent) == after - before
    source = pydicom.dcmread(dicom_file)
    studies = {i["ParentSeries"] for i in _orthanc_instances(orthanc["url"])}
    assert studies  # stored under the source's study
    with urllib.request.urlopen(f"{orthanc['url']}/studies?expand", timeout=10) as r:
        uids = {s["MainDicomTags"]["StudyInstanceUID"] for s in json.loads(r.read())}
    assert source.StudyInstanceUID in uids
    assert not any(Path(p).exists() for p in dialog.report.files.values())  # temp folder gone


@pytest.mark.parametrize("what", ["wrong AE title", "dead port"])
def test_a_wrong_node_is_one_sentence(
    qtbot: Any,
    make_window: Any,
    dicom_file: Path,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    what: str,
) -> None:
    window = make_window()
    open_and_wait(qtbot, window, dicom_file)
    window.actions_by_name["send_pacs"].trigger()
    dialog = window.dicom_out.dialog
    dialog.nodes.node_combo.setCurrentText("Typed in below")
    dialog.nodes.host.setText("127.0.0.1")
    dialog.nodes.aec.setText("NOT-ORTHANC" if what == "wrong AE title" else "ORTHANC")
    dialog.nodes.port.setValue(orthanc["port"] if what == "wrong AE title" else free_port())
    message = run_dialog(qtbot, dialog)
    expected = "rejected the association" if what == "wrong AE title" else "cannot reach"
    assert expected in message, message
    assert "Traceback" not in message and message.count("\n") == 0
    assert window.last_error == message

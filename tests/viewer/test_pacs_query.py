"""File > Query PACS against a real Orthanc: find, retrieve into the worklist, triage, cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from fpsm_core.pacs import Node, store
from tests.core.pacs.pacs_fixtures import free_port, orthanc  # noqa: F401  (fixture)
from tests.viewer.helpers import chest_like, write_dicom

TIMEOUT = 60000


@pytest.fixture(scope="module")
def pacs_studies(orthanc: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict:  # noqa: F811
    """Two patients in Orthanc: QUERY-A with one film, QUERY-B with a 12-film study."""
    from pydicom.uid import generate_uid

    folder = tmp_path_factory.mktemp("pacs_studies")
    uids = {"QUERYA": generate_uid(), "QUERYB": generate_uid()}
    files = [write_dicom(folder / "a.dcm", chest_like(seed=1), patient="QUERYA^ANN",
                         study_uid=uids["QUERYA"])]  # fmt: skip
    for i in range(12):
        files.append(
            write_dicom(folder / f"b{i}.dcm", chest_like(seed=10 + i), patient="QUERYB^BEN",
                        study_uid=uids["QUERYB"])
        )  # fmt: skip
    node = Node("orthanc", orthanc["aet"], "127.0.0.1", orthanc["port"])
    store(node, files)
    return {"uids": uids, "node": node}


def open_dialog(window: Any, pacs: dict[str, Any], cache: Path) -> Any:
    window.actions_by_name["query_pacs"].trigger()
    dialog = window.pacs_query.dialog
    form = dialog.nodes
    form.node_combo.setCurrentText("Typed in below")
    form.aec.setText(pacs["aet"])
    form.host.setText("127.0.0.1")
    form.port.setValue(pacs["port"])
    dialog.cache.setText(str(cache))
    return dialog


def find(qtbot: Any, dialog: Any) -> list[Any]:
    with qtbot.waitSignal(dialog.studies_found, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.find_button, Qt.MouseButton.LeftButton)
    return list(blocker.args[0])


def select_row(dialog: Any, row: int) -> None:
    dialog.table.selectionModel().select(
        dialog.table.model().index(row, 0),
        QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows,
    )


def test_find_by_patient_id_retrieve_into_the_worklist_and_triage(
    qtbot: Any,
    make_window: Any,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    pacs_studies: dict,
    tmp_path: Path,
) -> None:
    window = make_window()
    cache = tmp_path / "cache"
    dialog = open_dialog(window, orthanc, cache)
    qtbot.keyClicks(dialog.patient_id, "QUERYA")
    rows = find(qtbot, dialog)
    assert [r.patient_id for r in rows] == ["QUERYA"]
    assert dialog.table.rowCount() == 1 and dialog.table.item(0, 0).text() == "QUERYA^ANN"
    assert dialog.table.item(0, 7).text() == ""  # not cached yet
    select_row(dialog, 0)
    with qtbot.waitSignal(window.triage_done, timeout=TIMEOUT):
        qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    uid = pacs_studies["uids"]["QUERYA"]
    assert len(list((cache / uid).glob("*.dcm"))) == 1
    assert [Path(p).parent for p in window.worklist.paths()] == [cache / uid]
    assert "Retrieved 1 study(ies)" in dialog.message.text()
    assert not any(p.name.startswith(".retrieve-") for p in cache.iterdir())
    # Found again: the table says it is cached, and a second retrieve does not fetch it twice.
    find(qtbot, dialog)
    assert dialog.table.item(0, 7).text() == "cached"


def test_wildcard_name_date_range_and_a_malformed_date(
    qtbot: Any,
    make_window: Any,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    pacs_studies: dict,
    tmp_path: Path,
) -> None:
    window = make_window()
    dialog = open_dialog(window, orthanc, tmp_path / "cache")
    dialog.patient_name.setText("QUERY*")
    dialog.date_from.setText("20240101")
    dialog.date_to.setText("20240131")
    assert {r.patient_id for r in find(qtbot, dialog)} == {"QUERYA", "QUERYB"}
    dialog.date_from.setText("20250101")
    dialog.date_to.setText("")
    assert find(qtbot, dialog) == []
    assert dialog.message.text() == "No study matches."
    dialog.date_from.setText("2024-01-01")
    assert not dialog.search()
    assert dialog.message.text() == "From date '2024-01-01' is not a date of the form YYYYMMDD."


def test_cancel_mid_retrieve_keeps_nothing(
    qtbot: Any,
    make_window: Any,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    pacs_studies: dict,
    tmp_path: Path,
) -> None:
    window = make_window()
    cache = tmp_path / "cache"
    dialog = open_dialog(window, orthanc, cache)
    dialog.patient_id.setText("QUERYB")
    assert len(find(qtbot, dialog)) == 1
    select_row(dialog, 0)
    # Cancel as soon as the first film of twelve has come.
    dialog._worker.progressed.connect(lambda *_: dialog.cancel())
    with qtbot.waitSignal(dialog.failed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.retrieve_button, Qt.MouseButton.LeftButton)
    message = blocker.args[0]
    assert "cancelled" in message and "nothing was kept" in message, message
    uid = pacs_studies["uids"]["QUERYB"]
    assert not (cache / uid).exists()
    assert not any(p.name.startswith(".retrieve-") for p in cache.iterdir())
    assert window.last_error == message
    assert dialog.retrieve_button.isEnabled()  # usable again


@pytest.mark.parametrize("what", ["wrong AE title", "dead port"])
def test_a_refused_query_is_one_sentence(
    qtbot: Any,
    make_window: Any,
    orthanc: dict[str, Any],  # noqa: F811 (the fixture)
    tmp_path: Path,
    what: str,
) -> None:
    window = make_window()
    dialog = open_dialog(window, orthanc, tmp_path / "cache")
    if what == "wrong AE title":
        dialog.nodes.aec.setText("NOBODY")
    else:
        dialog.nodes.port.setValue(free_port())
    with qtbot.waitSignal(dialog.failed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.find_button, Qt.MouseButton.LeftButton)
    message = blocker.args[0]
    assert ("rejected the association" if what == "wrong AE title" else "cannot reach") in message
    assert "\n" not in message and window.last_error == message

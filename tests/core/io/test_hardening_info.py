"""``fpsm info`` without ``--show-phi`` prints no attribute PS3.15's Basic Profile would touch.

Issue 22, class 2: the study UID in file mode; study description, dates, study and series UIDs and
full paths in folder mode and ``--json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from io_fixtures import write_dicom

from fpsm_core.cli.main import main
from fpsm_core.io.deid import TABLE_ROWS, is_identifying

SECRETS = {
    "PatientID": "MRN445566",
    "PatientName": "Doe^Jane",
    "StudyInstanceUID": "1.2.826.0.1.3680043.2.1125.9911",
    "SeriesInstanceUID": "1.2.826.0.1.3680043.2.1125.9912",
    "StudyDescription": "chest film of Jane Doe",
    "StudyDate": "20230517",
}


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "Doe_Jane_MRN445566"
    write_dicom(root / "Doe_Jane_1.dcm", **SECRETS)
    (root / "Doe_Jane_bad.dcm").write_bytes(b"garbage" * 40)
    return root


def _leaks(text: str) -> list[str]:
    words = [*SECRETS.values(), "Jane", "445566", "2023"]
    return [w for w in words if w in text]


@pytest.mark.parametrize("as_json", [False, True])
def test_file_mode_hides_identifiers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    path = write_dicom(tmp_path / "x.dcm", **SECRETS)
    assert main(["info", str(path), *(["--json"] if as_json else [])]) == 0
    out = capsys.readouterr().out
    assert _leaks(out) == []
    assert main(["info", str(path), "--show-phi", *(["--json"] if as_json else [])]) == 0
    shown = capsys.readouterr().out
    assert SECRETS["StudyInstanceUID"] in shown and SECRETS["PatientID"] in shown


@pytest.mark.parametrize("as_json", [False, True])
def test_folder_mode_hides_identifiers_and_found_paths(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    root = _folder(tmp_path)
    flags = ["--no-cache", *(["--json"] if as_json else [])]
    assert main(["info", str(root), *flags]) == 1
    out = capsys.readouterr().out
    # the folder the user typed is echoed as typed; nothing found under it is
    assert [w for w in _leaks(out.replace(str(root), "<root>"))] == []
    assert "Doe_Jane_1" not in out and "Doe_Jane_bad" not in out
    if as_json:
        data = json.loads(out)
        study = data["patients"][0]["studies"][0]
        assert study["study_uid"] is study["study_date"] is study["description"] is None
        assert data["errors"][0]["path"] is None
    assert main(["info", str(root), *flags, "--show-phi"]) == 1
    shown = capsys.readouterr().out
    assert SECRETS["StudyDescription"] in shown and "Doe_Jane_bad.dcm" in shown


def test_hidden_facts_come_from_the_deid_table() -> None:
    assert all(is_identifying(r.keyword) for r in TABLE_ROWS if r.keyword)
    for keyword in ("StudyInstanceUID", "StudyDate", "StudyDescription", "SeriesInstanceUID"):
        assert is_identifying(keyword)
    assert not is_identifying("Rows") and not is_identifying("PhotometricInterpretation")

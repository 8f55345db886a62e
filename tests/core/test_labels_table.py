"""The one labels-CSV reader and writer: one value rule for training, DADAM and the control."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.cli.main import main
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.table import read_labels_csv, write_labels_csv
from fpsm_core.data.records import DatasetError, read_cxrlt
from fpsm_core.errors import FpsmError
from fpsm_core.labels import CXRLT_META_COLUMNS, LABEL_INDEX, LABELS
from fpsm_core.labels_table import (
    LabelsTable,
    LabelsTableError,
    format_label,
    read_labels_table,
    write_labels_table,
)

HEADER = [*CXRLT_META_COLUMNS, *LABELS]


def _row(i: int, **labels: str) -> list[str]:
    cells = {label: "0" for label in LABELS} | labels
    meta = [f"d{i}", f"s{i}", f"t{i}", "PA", "postero-anterior", f"images/d{i}.png"]
    return meta + [cells[label] for label in LABELS]


def _write(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _every_reader(path: Path) -> list[object]:
    """What each user of the labels CSV makes of the file: the table or the error."""
    outcomes: list[object] = []
    for read in (
        read_labels_table,
        read_labels_csv,
        lambda p: read_cxrlt(p, check_files=False),
    ):
        try:
            outcomes.append(read(path))
        except FpsmError as exc:
            outcomes.append(exc)
    return outcomes


@pytest.mark.parametrize("cell", ["true", "-1", "yes", "nan", "2", "1e400", "0,5"])
def test_a_value_outside_the_rule_is_refused_by_every_reader(tmp_path: Path, cell: str) -> None:
    path = _write(tmp_path / "labels.csv", [_row(0), _row(1, Edema=cell)])
    outcomes = _every_reader(path)
    assert all(isinstance(o, FpsmError) for o in outcomes), outcomes
    assert isinstance(outcomes[1], DadamError) and isinstance(outcomes[2], DatasetError)
    for err in outcomes:
        text = str(err)
        assert "\n" not in text and str(path) in text
        assert "row 3" in text and "column 'Edema'" in text and repr(cell)[:6] in text


def test_a_soft_label_is_kept_by_every_reader(tmp_path: Path) -> None:
    path = _write(tmp_path / "labels.csv", [_row(0, Edema="0.7"), _row(1, Edema="0.3")])
    table, dadam, records = _every_reader(path)
    edema = LABEL_INDEX["Edema"]
    assert isinstance(table, LabelsTable) and isinstance(dadam, LabelsTable)
    np.testing.assert_allclose(table.values[:, edema], [0.7, 0.3], rtol=1e-6)
    np.testing.assert_allclose(records.targets[:, edema], [0.7, 0.3], rtol=1e-6)  # type: ignore[attr-defined]
    # DADAM plans on positives, counted from 0.5 as training counts them
    assert dadam.y[:, edema].tolist() == [1, 0] and dadam.counts()["Edema"] == 1
    assert records.positives()[edema] == 1  # type: ignore[attr-defined]


def test_empty_cells_are_zero_and_fpath_case_and_gzip_are_accepted(tmp_path: Path) -> None:
    header = [h.upper() if h == "Edema" else h for h in HEADER]
    header[header.index("path")] = "fpath"
    rows = [_row(0, Edema="", Mass=" 1 ")]
    plain = _write(tmp_path / "labels.csv", rows, header)
    packed = tmp_path / "labels.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    for path in (plain, packed):
        table = read_labels_table(path, require=("path",))
        assert table.values[0, LABEL_INDEX["Edema"]] == 0.0
        assert table.values[0, LABEL_INDEX["Mass"]] == 1.0
        assert table.column("path") == ("images/d0.png",) and table.meta[0]["path"] == (
            "images/d0.png"
        )


def test_a_short_row_names_the_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "labels.csv", [_row(0), _row(1)[:10]])
    for err in _every_reader(path):
        assert isinstance(err, FpsmError)
        assert f"{path} row 3 has 10 cells for 32 columns." in str(err)


def test_a_trailing_value_is_refused_and_a_trailing_comma_ignored(tmp_path: Path) -> None:
    comma = _write(tmp_path / "comma.csv", [_row(0) + [""]])
    assert len(read_labels_table(comma)) == 1
    extra = _write(tmp_path / "extra.csv", [_row(0), _row(1) + ["", "surprise"]])
    for err in _every_reader(extra):
        assert isinstance(err, FpsmError)
        assert "row 3 has a value beyond the 32 columns" in str(err) and "'surprise'" in str(err)


def test_non_utf8_bytes_are_one_sentence(tmp_path: Path) -> None:
    path = _write(tmp_path / "labels.csv", [_row(0)])
    path.write_bytes(path.read_bytes().replace(b"postero", b"post\xe9ro"))
    for err in _every_reader(path):
        assert isinstance(err, FpsmError) and "\n" not in str(err)
        assert f"{path} is not UTF-8 text (byte 0xe9" in str(err)


def test_header_problems(tmp_path: Path) -> None:
    twice = _write(tmp_path / "twice.csv", [], [*HEADER, "edema"])
    with pytest.raises(LabelsTableError, match="names the column 'Edema' twice"):
        read_labels_table(twice)
    no_id = _write(tmp_path / "no_id.csv", [], HEADER[1:])
    with pytest.raises(DadamError, match="has no 'dicom_id' column"):
        read_labels_csv(no_id)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(LabelsTableError, match="is empty"):
        read_labels_table(empty)
    with pytest.raises(LabelsTableError, match="nope.csv does not exist"):
        read_labels_table(tmp_path / "nope.csv")


def test_writer_round_trips_soft_labels_and_synthetic(tmp_path: Path) -> None:
    values = np.zeros((2, len(LABELS)), np.float32)
    values[0, 3], values[1, 5] = 0.25, 1.0
    meta = [{"dicom_id": "a", "path": "a.png"}, {"dicom_id": "b", "path": "b.png"}]
    path = tmp_path / "out.csv"
    assert write_labels_csv(path, zip(meta, values, [0, 1], strict=True)) == 2
    back = read_labels_csv(path)
    np.testing.assert_array_equal(back.values, values)
    assert back.synthetic.tolist() == [0, 1] and back.ids == ["a", "b"]
    assert [format_label(v) for v in (0.0, 1.0, np.float32(0.7))] == ["0", "1", "0.7"]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    plain = tmp_path / "plain.csv"
    write_labels_table(plain, zip(meta, values, [0, 0], strict=True), synthetic=False)
    assert plain.read_text().splitlines()[0].split(",")[-1] == "Tortuous Aorta"


@pytest.mark.parametrize("command", ["cooc", "plan"])
def test_dadam_commands_refuse_what_training_refuses(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path / "labels.csv", [_row(0), _row(1, Nodule="-1")])
    args = ["dadam", "cooc", str(path)]
    if command == "plan":
        args = [
            "dadam",
            "plan",
            "--labels",
            str(path),
            "--library",
            str(tmp_path / "lib.sqlite"),
            "--out",
            str(tmp_path / "p.jsonl"),
        ]
        args += ["--target", "5", "--budget", "3"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsm dadam: ") and "\n" not in err
    assert f"{path} row 3: column 'Nodule' holds '-1'" in err

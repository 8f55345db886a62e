"""train.curves: validation curves of several runs side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from train import curves


def _run(folder: Path, values: list[float]) -> Path:
    folder.mkdir(parents=True)
    rows = ["type,epoch,step,val_mAP"]
    for e, v in enumerate(values, 1):
        rows.append(f"step,{e},{e * 10 - 5},")  # step rows carry no validation
        rows.append(f"epoch,{e},{e * 10},{v}")
    (folder / "metrics.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_runs_line_up_by_epoch_with_the_best_marked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _run(tmp_path / "a", [0.10, 0.30, 0.25])
    b = _run(tmp_path / "b", [0.12])
    assert curves.main([f"deep={a}", str(b)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| epoch | deep | b |"
    assert lines[4:] == ["| 1 | 10.00 | **12.00** |", "| 2 | **30.00** |  |", "| 3 | 25.00 |  |"]


def test_a_missing_run_or_column_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert curves.main([str(tmp_path / "none")]) == 2
    assert "metrics.csv does not exist" in capsys.readouterr().err
    a = _run(tmp_path / "a", [0.1])
    assert curves.main([str(a), "--metric", "val_AUC"]) == 2
    assert "has no column 'val_AUC'" in capsys.readouterr().err

"""Input lists: CXR-LT and MIMIC-CXR-JPG CSVs name the images, by column name."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.main import main
from fpsm_core.pipeline.inputs import InputListError, read_input_list
from tests.core.helpers import tiny_ensemble


def test_cxr_lt_paths_are_relative_to_the_csv_or_the_root(tmp_path: Path) -> None:
    (tmp_path / "list.csv").write_text(
        "dicom_id,subject_id,study_id,ViewPosition,ViewCodeSequence_CodeMeaning,path,Atelectasis\n"
        "a,1,2,PA,postero-anterior,files/p10/p1/s2/a.jpg,0\n"
        "b,1,2,PA,postero-anterior,files/p10/p1/s2/b.jpg,1\n"
        "a,1,2,PA,postero-anterior,files/p10/p1/s2/a.jpg,0\n"
    )
    assert read_input_list(tmp_path / "list.csv") == [
        tmp_path / "files/p10/p1/s2/a.jpg",
        tmp_path / "files/p10/p1/s2/b.jpg",
    ]
    (tmp_path / "l2024.csv").write_text("Atelectasis,fpath\n0,files/x.jpg\n")
    assert read_input_list(tmp_path / "l2024.csv", root=Path("/mimic")) == [
        Path("/mimic/files/x.jpg")
    ]


def test_mimic_metadata_rows_become_the_jpg_layout(tmp_path: Path) -> None:
    (tmp_path / "split.csv").write_text(
        "dicom_id,study_id,subject_id,split\n"
        "02aa804e-bde0afdd,50414267,10000032,train\n"
        "2a2277a9-b0ded155,53189527,10000032.0,test\n"
    )
    assert read_input_list(tmp_path / "split.csv", root=Path("/m")) == [
        Path("/m/files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"),
        Path("/m/files/p10/p10000032/s53189527/2a2277a9-b0ded155.jpg"),
    ]


def test_a_csv_of_neither_layout_is_one_sentence(tmp_path: Path) -> None:
    (tmp_path / "labels.csv").write_text("image,label\nx.png,1\n")
    with pytest.raises(InputListError) as caught:
        read_input_list(tmp_path / "labels.csv")
    assert "labels.csv" in str(caught.value) and "no 'path' or 'fpath' column" in str(caught.value)
    (tmp_path / "holes.csv").write_text("path,Edema\nimages/a.png,1\n,0\n")
    with pytest.raises(InputListError, match="line 3 names no image"):
        read_input_list(tmp_path / "holes.csv")


def test_infer_runs_over_a_cxr_lt_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_ensemble(tmp_path / "model", n=1, size=64)
    (tmp_path / "images").mkdir()
    rng = np.random.default_rng(1)
    for name in ("b", "a"):
        cv2.imwrite(str(tmp_path / "images" / f"{name}.png"), rng.integers(0, 255, (40, 40)))
    (tmp_path / "test.csv").write_text(
        "dicom_id,path\nb,images/b.png\na,images/a.png\nc,images/c.png\n"
    )
    status = main(["infer", str(tmp_path / "test.csv"), "--model", str(model), "--json"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1  # c.png does not exist: one sentence, the rest go on
    assert [Path(r["path"]).name for r in records] == ["b.png", "a.png", "c.png"]
    assert "findings" in records[0] and "c.png" in records[2]["error"]
    (tmp_path / "bad.csv").write_text("x,y\n1,2\n")
    assert main(["infer", str(tmp_path / "bad.csv"), "--model", str(model)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("fpsm infer: input list") and "\n" not in err

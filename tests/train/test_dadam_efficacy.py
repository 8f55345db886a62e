"""train.dadam_control efficacy: the three-arm run's entry point and its patch pool."""

from __future__ import annotations

from pathlib import Path

import pytest

from train import dadam_control
from train.dadam_efficacy import _pool


def test_efficacy_is_a_subcommand_and_the_control_mode_stays(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as done:
        dadam_control.main(["efficacy", "--help"])
    assert done.value.code == 0
    assert "--min-efficacy" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # the positional control mode still wants its folder
        dadam_control.main([])


def test_a_missing_library_is_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("dicom_id,path\n")
    code = dadam_control.main(["efficacy", "--labels", str(labels), "--library",
                               str(tmp_path / "nolib"), "--test-csv", str(labels),
                               "--out", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err


def test_pool_caps_each_class_deterministically(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "dadam"))
    from test_dadam_support import write_dataset

    from fpsm_core.dadam.boxes import read_boxes
    from fpsm_core.dadam.importer import import_boxes
    from fpsm_core.dadam.library import PatchLibrary

    lesions = {i: ["Nodule"] for i in range(6)} | {6: ["Mass"], 7: ["Mass"]}
    images, _labels, boxes = write_dataset(tmp_path / "b", n=10, size=64, lesions=lesions)
    with PatchLibrary(tmp_path / "lib") as lib:
        import_boxes(lib, read_boxes(boxes, "fpsm"), images)
        a = [p.id for p in _pool(lib, 2, seed=3)]
        b = [p.id for p in _pool(lib, 2, seed=3)]
        labels = [p.label for p in _pool(lib, 2, seed=3)]
        assert a == b and labels.count("Nodule") == 2 and labels.count("Mass") == 2
        assert len(_pool(lib, None, seed=0)) == len(lib.patches(None))

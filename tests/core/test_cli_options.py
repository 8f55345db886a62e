"""Every number a user types is range-checked where it enters, in one line naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpsm_core.cli.main import main
from tests.core.helpers import chest_like, write_dicom


@pytest.mark.parametrize(
    ("argv", "option", "expected"),
    [
        (
            ["dadam", "plan", "--labels", "l", "--library", "b", "--out", "o", "--budget", "-1"],
            "--budget",
            "expected a whole number of at least 1, not '-1'",
        ),
        (
            [
                "dadam",
                "plan",
                "--labels",
                "l",
                "--library",
                "b",
                "--out",
                "o",
                "--budget",
                "5",
                "--alpha",
                "1.5",
            ],
            "--alpha",
            "expected a number above 0 and at most 1, not '1.5'",
        ),
        (
            [
                "dadam",
                "plan",
                "--labels",
                "l",
                "--library",
                "b",
                "--out",
                "o",
                "--budget",
                "5",
                "--max-patches",
                "0",
            ],
            "--max-patches",
            "expected a whole number from 1 to 16",
        ),
        (
            [
                "dadam",
                "import",
                "--boxes",
                "b",
                "--images",
                "i",
                "--library",
                "l",
                "--margin",
                "-1",
            ],
            "--margin",
            "expected a number from 0 to 10, not '-1'",
        ),
        (
            ["dadam", "import", "--boxes", "b", "--images", "i", "--library", "l", "--iou", "nan"],
            "--iou",
            "expected a number above 0 and at most 1, not 'nan'",
        ),
        (
            ["dadam", "import", "--boxes", "b", "--images", "i", "--library", "l", "--iou", "inf"],
            "--iou",
            "not 'inf'",
        ),
        (
            [
                "dadam",
                "generate",
                "--plan",
                "p",
                "--library",
                "l",
                "--images",
                "i",
                "--out",
                "o",
                "--limit",
                "0",
            ],
            "--limit",
            "expected a whole number of at least 1, not '0'",
        ),
        (
            ["infer", "x.dcm", "--batch-size", "0"],
            "--batch-size",
            "expected a whole number from 1 to 1024, not '0'",
        ),
        (["infer", "x.dcm", "--top", "1e300"], "--top", "not '1e300'"),
    ],
)
def test_a_number_out_of_range_is_one_line_naming_the_option(
    argv: list[str], option: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert f"argument {option}: " in last and expected in last
    assert "Traceback" not in err


def test_a_long_value_is_not_echoed_whole(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["infer", "x.dcm", "--batch-size", "9" * 400])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert len(last) < 200


def test_inputs_and_options_are_checked_before_the_model_loads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import fpsm_core.inference as inference

    def no_model(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the inputs were checked")

    monkeypatch.setattr(inference, "InferenceService", no_model)
    missing = tmp_path / "missing.dcm"
    assert main(["infer", str(missing)]) == 1
    captured = capsys.readouterr()
    assert "missing.dcm" in captured.out and "1 of 1 files could not be read" in captured.err
    film = write_dicom(tmp_path / "film.dcm", chest_like())
    assert (
        main(["infer", str(film), "--cam-method", "nosuch", "--cams", "--out", str(tmp_path)]) == 2
    )
    err = capsys.readouterr().err
    assert "--cam-method 'nosuch' is not a CAM method" in err and "Traceback" not in err


def test_a_dadam_error_during_the_progress_bar_is_printed_on_its_own_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import types

    import fpsm_core.dadam.generator as generator
    import fpsm_core.dadam.planner as planner
    from fpsm_core.dadam.errors import DadamError

    def half_then_fail(*args: object, progress: object = None, **kwargs: object) -> None:
        progress(1, 2)  # type: ignore[operator]
        raise DadamError(tmp_path / "lib", "is locked by another process")

    monkeypatch.setattr(planner, "read_plan", lambda path: types.SimpleNamespace(items=[1, 2]))
    monkeypatch.setattr(generator, "generate", half_then_fail)
    argv = ["dadam", "generate", "--plan", "p", "--library", "l", "--images", "i", "--out", "o"]
    assert main(argv) != 0
    err = capsys.readouterr().err
    line = next(li for li in err.splitlines() if "is locked by another process" in li)
    assert line.startswith("fpsm dadam")  # not appended to the bar's last line

"""Every number a user types is range-checked where it enters, in one line naming the option."""

from __future__ import annotations

import pytest

from fpsm_core.cli.main import main


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

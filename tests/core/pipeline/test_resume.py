"""Resumable archive runs: a run killed with SIGKILL resumes without redoing or duplicating files."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.main import main
from fpsm_core.labels import LABELS
from tests.core.helpers import tiny_checkpoint, tiny_ensemble

ROOT = Path(__file__).resolve().parents[3]
N = 48


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("archive")
    model = tiny_ensemble(root / "model", n=1, size=64)
    images = root / "films"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(N):
        cv2.imwrite(str(images / f"f{i:03d}.png"), rng.integers(0, 255, (48, 40), dtype=np.uint8))
    return model, images


def _infer(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "fpsm_core.cli", "infer", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _store_rows(out: Path) -> list[str]:
    with sqlite3.connect(out / "results.sqlite") as db:
        return [r[0] for r in db.execute("SELECT path FROM files")]


@pytest.mark.slow
def test_a_killed_run_resumes_without_redoing_or_duplicating(
    archive: tuple[Path, Path], tmp_path: Path
) -> None:
    model, images = archive
    out = tmp_path / "out"
    args = (str(images), "--model", str(model), "--out", str(out), "--json")
    first = _infer(*args, "--batch-size", "2", "--workers", "1")
    assert first.stdout is not None
    printed = [first.stdout.readline() for _ in range(10)]  # five batches streamed
    first.send_signal(signal.SIGKILL)
    first.communicate()
    assert first.returncode == -signal.SIGKILL
    assert all(line.startswith('{"path"') for line in printed)
    survived = _store_rows(out)
    assert 8 <= len(survived) < N  # the batches before the last printed one were committed
    assert not (out / "results.jsonl").exists()  # written from the store at the end only

    second = _infer(*args)
    stdout, stderr = second.communicate(timeout=600)
    assert second.returncode == 0, stderr
    assert f"resuming: {len(survived)} of {N} files already done" in stderr
    redone = [json.loads(line)["path"] for line in stdout.splitlines()]
    assert len(redone) == N - len(survived)
    assert not {os.path.abspath(p) for p in redone} & set(survived)  # nothing done twice

    rows = _store_rows(out)
    assert len(rows) == len(set(rows)) == N
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    expected = sorted(str(p) for p in images.iterdir())
    assert [r["path"] for r in records] == expected  # input order, each file once
    table = list(csv.reader((out / "predictions.csv").open()))
    assert table[0] == ["dicom_id", *LABELS]
    assert [r[0] for r in table[1:]] == [Path(p).stem for p in expected]


def test_a_changed_file_is_redone_and_failures_are_listed_again(
    archive: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, images = archive
    folder = tmp_path / "few"
    folder.mkdir()
    for name in ("f000.png", "f001.png"):
        (folder / name).write_bytes((images / name).read_bytes())
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    out = tmp_path / "out"
    argv = ["infer", str(folder), "--model", str(model), "--out", str(out), "--json"]
    assert main(argv) == 1
    capsys.readouterr()

    changed = folder / "f001.png"
    cv2.imwrite(str(changed), np.full((40, 40), 7, dtype=np.uint8))
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["path"] for line in captured.out.splitlines()] == [str(changed)]
    assert "resuming: 2 of 3 files already done" in captured.err
    listed = [line for line in captured.err.splitlines() if "failed in an earlier run" in line]
    assert len(listed) == 1 and "broken.png" in listed[0]
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [Path(r["path"]).name for r in records] == ["broken.png", "f000.png", "f001.png"]
    assert "broken.png" in records[0]["error"]

    same = Path(shutil.copytree(model, tmp_path / "copy_of_model"))  # same weights elsewhere
    assert main(["infer", str(folder), "--model", str(same), "--out", str(out), "--json"]) == 1
    assert capsys.readouterr().out == ""  # the model's identity is its weights, not its folder
    other = tiny_checkpoint(tmp_path / "other", seed=5, size=64, untrained=True)
    argv_other = ["infer", str(folder), "--model", str(other), "--out", str(out), "--json"]
    assert main(argv_other) == 1  # another model: every file again
    assert len(capsys.readouterr().out.splitlines()) == 3


def test_a_store_that_is_not_ours_is_one_sentence(
    archive: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, images = archive
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.sqlite").write_bytes(b"this is no database" * 50)
    status = main(["infer", str(images / "f000.png"), "--model", str(model), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err
    assert "results.sqlite' is not an fpsm output store" in err


def test_a_missing_file_is_a_failure_in_the_outputs_and_the_status(
    archive: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, images = archive
    missing = tmp_path / "gone.png"
    out = tmp_path / "out"
    argv = [
        "infer",
        str(images / "f000.png"),
        str(missing),
        "--model",
        str(model),
        "--out",
        str(out),
    ]
    for _ in range(2):  # the first run, then a resumed one with nothing left to do
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert "1 of 2 files could not be read." in err
        records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
        assert [Path(r["path"]).name for r in records] == ["f000.png", "gone.png"]
        assert "gone.png" in records[1]["error"]
    assert "failed in an earlier run: Cannot load" in err and "gone.png" in err
    cv2.imwrite(str(missing), np.zeros((40, 40), dtype=np.uint8))  # it turns up: done this time
    assert main(argv) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert "findings" in records[1]

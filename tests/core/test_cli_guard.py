"""The one guard of the ``fpsm`` command: user mistakes are one line, bugs keep their traceback."""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.main import _guarded, environment_sentence, main
from tests.core.helpers import tiny_ensemble

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ensemble(tmp_path_factory.mktemp("model") / "ens", n=1)


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("films")
    rng = np.random.default_rng(0)
    for i in range(40):
        cv2.imwrite(str(folder / f"f{i:02d}.png"), rng.integers(0, 255, (40, 48), dtype=np.uint8))
    return folder


def _fpsm(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "fpsm_core.cli.main", *args],
        cwd=ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_bad_device_is_one_sentence_naming_the_option(model_dir: Path, films: Path) -> None:
    proc = _fpsm("infer", str(films / "f00.png"), "--model", str(model_dir), "--device", "tpu")
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 2
    assert "Traceback" not in err
    assert err.strip().splitlines() == [
        "fpsm infer: --device 'tpu' is not a device; expected auto (CUDA, then MPS, then CPU), "
        "cpu, cuda, cuda:N or mps."
    ]


def test_output_piped_into_head_ends_quietly(model_dir: Path, films: Path) -> None:
    proc = _fpsm("infer", str(films), "--model", str(model_dir), "--json")
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()  # what `| head -1` reads, then it closes the pipe
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=600)
    assert first.startswith('{"path"')
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err
    assert proc.returncode == 141  # what a shell reports for a process SIGPIPE stopped


@pytest.mark.parametrize("kind", ["file", "under-a-file"])
def test_an_unusable_out_is_one_sentence(
    model_dir: Path, films: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if kind == "file" else blocker / "sub"
    status = main(["infer", str(films / "f00.png"), "--model", str(model_dir), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and "\n" not in err and "Traceback" not in err
    words = "already exists and is in the way" if kind == "file" else "is a file, not a folder"
    assert err == f"fpsm infer: '{out}' {words}." or (
        kind == "under-a-file"
        and err == f"fpsm infer: '{out}' has a part that is a file, not a folder."
    )


def _namespace(func: object) -> argparse.Namespace:
    return argparse.Namespace(command="demo", func=func)


def test_a_programming_error_keeps_its_traceback_and_asks_for_a_report(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(args: argparse.Namespace) -> int:
        return {}["missing"]  # type: ignore[no-any-return]

    assert _guarded(_namespace(broken)) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError: 'missing'" in err
    assert err.strip().splitlines()[-1].startswith("fpsm demo: this is a bug in fpsm")
    assert "please report it" in err


def test_a_junk_database_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "library.sqlite"
    junk.write_bytes(b"x" * 4096)

    def query(args: argparse.Namespace) -> int:
        with sqlite3.connect(junk) as db:
            db.execute("select * from patches").fetchall()
        return 0

    args = _namespace(query)
    args.library = junk
    assert _guarded(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert err.startswith(f"fpsm demo: a database cannot be used while working on '{junk}'")


def test_deep_nesting_and_memory_name_the_inputs(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    assert environment_sentence(RecursionError(), [f"'{deep}'"]) == (
        f"an input is nested too deeply to read while working on '{deep}'."
    )
    assert environment_sentence(MemoryError()).startswith("out of memory: ")
    try:
        (tmp_path / "nope" / "x").read_text()
    except OSError as exc:
        assert environment_sentence(exc) == f"'{tmp_path / 'nope' / 'x'}' does not exist."

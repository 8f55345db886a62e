"""torchrun sharding: 2 gloo ranks split the files by rank and merge what one process writes."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.main import main
from fpsm_core.pipeline.shard import Ranks, shard
from tests.core.helpers import tiny_ensemble

ROOT = Path(__file__).resolve().parents[3]


def test_shares_are_strided_disjoint_and_complete() -> None:
    items = list(range(11))
    shares = [shard(items, Ranks(rank=r, world_size=3)) for r in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7, 10], [2, 5, 8]]
    assert sorted(sum(shares, [])) == items  # nothing padded, nothing repeated


def _comparable(record: dict) -> dict:
    return {k: v for k, v in record.items() if k != "timing_ms"}


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_ranks_merge_into_the_single_process_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tiny_ensemble(tmp_path / "model", n=2, size=64)
    films = tmp_path / "films"
    films.mkdir()
    rng = np.random.default_rng(3)
    for i in range(9):
        cv2.imwrite(str(films / f"f{i}.png"), rng.integers(0, 255, (50 + i, 44), dtype=np.uint8))
    (films / "broken.png").write_bytes(b"\x89PNG truncated")
    args = [str(films), "--model", str(model), "--device", "cpu", "--json", "--batch-size", "2"]

    single = tmp_path / "single"
    assert main(["infer", *args, "--out", str(single), "--threads", "1"]) == 1  # broken.png
    capsys.readouterr()

    ranked = tmp_path / "ranked"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         "-m", "fpsm_core.cli", "infer", *args, "--out", str(ranked), "--threads", "1"],
        cwd=ROOT, env=env, text=True, capture_output=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode != 0  # one file failed on some rank: the job fails, as a single run does
    assert "Traceback (most recent call last):\n  File" not in proc.stdout

    names = sorted(p.name for p in films.iterdir())
    rank0 = _records(ranked / "results.rank0.jsonl")
    rank1 = _records(ranked / "results.rank1.jsonl")
    assert [Path(r["path"]).name for r in rank0] == names[0::2]
    assert [Path(r["path"]).name for r in rank1] == names[1::2]

    merged = [_comparable(r) for r in _records(ranked / "results.jsonl")]
    expected = [_comparable(r) for r in _records(single / "results.jsonl")]
    assert merged == expected  # same rows, same probabilities to the last printed digit
    with (ranked / "predictions.csv").open() as a, (single / "predictions.csv").open() as b:
        assert list(csv.reader(a)) == list(csv.reader(b))

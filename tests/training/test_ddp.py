"""DDP under torchrun on CPU: two gloo processes train one model and rank 0 writes the files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fpsm_core.model import load_checkpoint
from tests.training.helpers import make_dataset, tiny_config

REPO = Path(__file__).resolve().parents[2]


def _torchrun(config: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "train.fit", str(config), "--quiet", *extra,
    ]  # fmt: skip
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_gloo_two_process_run_trains_and_resumes(tmp_path: Path) -> None:
    csv_path = make_dataset(tmp_path / "data", n=32)
    out = tmp_path / "run"
    config = tiny_config(csv_path, out, **{"optim.batch_size": 4, "optim.epochs": 1})
    config_path = tmp_path / "ddp.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    done = _torchrun(config_path)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = load_checkpoint(out / "tiny.json").meta
    assert meta.provenance["world_size"] == 2
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    epochs = [h for h in history if h["type"] == "epoch"]
    assert len(epochs) == 1  # only rank 0 writes
    # 24 training images, 12 per rank in 3 batches of 4: every image seen once in the epoch
    assert epochs[0]["train_images_seen"] == 24
    state = json.loads((out / "train_state.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    # a second epoch continues from the saved state on both ranks
    again = _torchrun(config_path, "--resume", "--epochs", "2")
    assert again.returncode == 0, again.stderr[-3000:]
    epochs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs if e["type"] == "epoch"] == [1, 2]

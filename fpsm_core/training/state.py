"""The resume state of a training run, in safetensors + JSON (never a pickle).

``train_state.json`` describes the run position (epoch, micro-batches done in it, optimizer step),
the best score so far, the history, the loss-scaler and random-generator states, and names the
tensor file ``train_state-<step>.safetensors`` that holds the model, EMA and AdamW tensors plus each
rank's torch generator states. The tensor file is written first under a new name and the JSON is
replaced atomically afterwards, so an interruption while saving leaves the previous state intact.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from fpsm_core.errors import FpsmError

STATE_FORMAT = "fpsm-train-state"
STATE_JSON = "train_state.json"


class ResumeError(FpsmError):
    """A resume state that is missing, foreign or does not fit the configured run."""


@dataclass
class RunPosition:
    """Where a run stands; mutable, owned by the trainer."""

    epoch: int = 0
    batches_in_epoch: int = 0
    step: int = 0
    best_score: float = float("-inf")
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed_s: float = 0.0


@dataclass(frozen=True)
class LoadedState:
    position: RunPosition
    model: dict[str, torch.Tensor]
    ema: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any]
    scaler: dict[str, Any] | None
    rng: dict[str, Any]
    config: dict[str, Any]
    world_size: int


def capture_rng() -> dict[str, Any]:
    """This process's random generator states (torch CPU/CUDA as tensors, others as JSON)."""
    state: dict[str, Any] = {
        "python": _py_state_to_json(random.getstate()),
        "numpy": _np_state_to_json(tuple(np.random.get_state(legacy=True))),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    random.setstate(_py_state_from_json(state["python"]))
    np.random.set_state(_np_state_from_json(state["numpy"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_state(
    directory: Path,
    *,
    position: RunPosition,
    model: Mapping[str, torch.Tensor],
    ema: Mapping[str, torch.Tensor] | None,
    optimizer: Mapping[str, Any],
    scaler: Mapping[str, Any] | None,
    rngs: Sequence[Mapping[str, Any]],
    config: Mapping[str, Any],
) -> Path:
    """Write the state (rank 0 only); ``rngs`` holds one :func:`capture_rng` per rank."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in model.items():
        tensors[f"model.{key}"] = value.detach().cpu().contiguous()
    for key, value in (ema or {}).items():
        tensors[f"ema.{key}"] = value.detach().cpu().contiguous()
    optim_json = {"param_groups": optimizer["param_groups"], "scalars": {}}
    for pid, slots in optimizer["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                optim_json["scalars"][f"{pid}.{name}"] = value
    rng_json = []
    for rank, rng in enumerate(rngs):
        tensors[f"rng.{rank}.torch"] = rng["torch"].contiguous()
        if "cuda" in rng:
            tensors[f"rng.{rank}.cuda"] = rng["cuda"].contiguous()
        rng_json.append({"python": rng["python"], "numpy": rng["numpy"]})
    tensor_name = f"train_state-{position.step:08d}.safetensors"
    tmp = directory / f".{tensor_name}.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / tensor_name)
    data = {
        "format": STATE_FORMAT,
        "format_version": 1,
        "tensors": tensor_name,
        "epoch": position.epoch,
        "batches_in_epoch": position.batches_in_epoch,
        "step": position.step,
        "best_score": position.best_score if np.isfinite(position.best_score) else None,
        "best_epoch": position.best_epoch,
        "elapsed_s": position.elapsed_s,
        "history": position.history,
        "optimizer": optim_json,
        "scaler": dict(scaler) if scaler else None,
        "rng": rng_json,
        "world_size": len(rngs),
        "has_ema": ema is not None,
        "config": dict(config),
    }
    json_path = directory / STATE_JSON
    tmp_json = directory / f".{STATE_JSON}.tmp"
    tmp_json.write_text(json.dumps(data, indent=1, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp_json, json_path)
    for old in directory.glob("train_state-*.safetensors"):
        if old.name != tensor_name:
            old.unlink(missing_ok=True)
    return json_path


def load_state(path: Path, rank: int = 0) -> LoadedState:
    """Read a state written by :func:`save_state`; ``path`` is the run folder or the JSON."""
    json_path = path / STATE_JSON if path.is_dir() else path
    if not json_path.is_file():
        raise ResumeError(f"{json_path} does not exist; there is no run to resume there.")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ResumeError(f"{json_path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
        raise ResumeError(f"{json_path} is not an FPSM training state.")
    tensor_path = json_path.parent / str(data["tensors"])
    if not tensor_path.is_file():
        raise ResumeError(f"{json_path} names {tensor_path.name}, which does not exist.")
    tensors = load_file(str(tensor_path), device="cpu")
    model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
    ema = (
        {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")} if data["has_ema"] else None
    )
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in data["optimizer"]["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer = {"state": state, "param_groups": data["optimizer"]["param_groups"]}
    for group in optimizer["param_groups"]:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    world = int(data["world_size"])
    r = rank if rank < world else 0
    rng = dict(data["rng"][r])
    rng["torch"] = tensors[f"rng.{r}.torch"]
    if f"rng.{r}.cuda" in tensors:
        rng["cuda"] = tensors[f"rng.{r}.cuda"]
    position = RunPosition(
        epoch=int(data["epoch"]),
        batches_in_epoch=int(data["batches_in_epoch"]),
        step=int(data["step"]),
        best_score=float("-inf") if data["best_score"] is None else float(data["best_score"]),
        best_epoch=int(data["best_epoch"]),
        history=list(data["history"]),
        elapsed_s=float(data.get("elapsed_s", 0.0)),
    )
    return LoadedState(
        position=position,
        model=model,
        ema=ema,
        optimizer=optimizer,
        scaler=data.get("scaler"),
        rng=rng,
        config=dict(data["config"]),
        world_size=world,
    )


# What an exact resume cannot change: the architecture, and what decides the batch order and the
# learning-rate schedule.
RESUME_FIXED_MODEL = ("backbone", "levels", "aggregation", "synthetic_embedding", "in_chans")
RESUME_FIXED_OPTIM = ("batch_size", "accumulate")


def check_resumable(
    where: Path,
    state: LoadedState,
    config: Mapping[str, Any],
    *,
    world_size: int,
    ema: bool,
) -> None:
    """Refuse to resume a saved run with a config or a process count it cannot continue exactly.

    Args:
        where: the run folder or state file (for messages).
        state: the saved state.
        config: this run's config as ``TrainConfig.to_dict()``.
        world_size: this run's number of processes.
        ema: this run keeps an EMA of the weights.

    Raises:
        ResumeError: one sentence naming the field that differs.
    """
    saved = state.config
    for key in RESUME_FIXED_MODEL:
        if saved["model"][key] != config["model"][key]:
            raise ResumeError(
                f"{where}: the saved run has model.{key}={saved['model'][key]!r}, this config "
                f"{config['model'][key]!r}; resume the same architecture."
            )
    for key in RESUME_FIXED_OPTIM:
        if saved["optim"][key] != config["optim"][key]:
            raise ResumeError(
                f"{where}: optim.{key} was {saved['optim'][key]}, now {config['optim'][key]}; "
                "exact resume needs the same value."
            )
    if state.world_size != world_size:
        raise ResumeError(
            f"{where}: the run used {state.world_size} process(es), this one "
            f"{world_size}; exact resume needs the same number."
        )
    if ema and state.ema is None:
        raise ResumeError(f"{where}: the saved run had no EMA but this config asks for one.")


def _json_default(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in a training state")


def _py_state_to_json(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _py_state_from_json(data: Sequence[Any]) -> tuple[Any, ...]:
    return (data[0], tuple(data[1]), data[2])


def _np_state_to_json(state: tuple[Any, ...]) -> list[Any]:
    name, keys, pos, has_gauss, cached = state
    return [name, np.asarray(keys).tolist(), int(pos), int(has_gauss), float(cached)]


def _np_state_from_json(data: Sequence[Any]) -> tuple[Any, ...]:
    return (data[0], np.asarray(data[1], dtype=np.uint32), data[2], data[3], data[4])

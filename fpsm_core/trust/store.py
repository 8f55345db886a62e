"""Where trust lives in a checkpoint: a sidecar safetensors file and a versioned JSON section.

A checkpoint ``NAME`` gains ``NAME.trust.safetensors`` (the gate's means, bases and variances and
the calibration's slopes and biases; float16/float32 tensors, a few hundred kB) and a
``"trust"`` section in ``NAME.json``::

    "trust": {"version": 1, "file": "NAME.trust.safetensors", "sha256": "...",
              "weights_sha256": "<the weights it was fitted on>", "gate": {...},
              "calibration": {...}, "fitted": {...}}

Why a sidecar and not extra tensors in ``NAME.safetensors``: fitting trust must not rewrite the
weights file, whose SHA-256 is the model's identity in every result; ``load_state_dict(strict=True)``
stays strict; and the weights' float16 policy does not touch the statistics. The section records
the weights' hash it was fitted on, so a gate left over from other weights is refused. Loading
never fails the model: a missing, altered or stale sidecar makes the gate and calibration
unavailable, with one sentence saying why (``MemberTrust.note``).

An ensemble's own part (its gate threshold over the mean member score, its calibrated
thresholds) is a ``"trust"`` section in ``ensemble.json``.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fpsm_core import __version__
from fpsm_core.model.checkpoint import (
    CheckpointMeta,
    read_checkpoint_meta,
    sha256_file,
    update_checkpoint_meta,
)
from fpsm_core.trust.calibration import PlattCalibration
from fpsm_core.trust.gate import METHOD, LevelGaussian, MemberGate

TRUST_VERSION = 1
SIDECAR_SUFFIX = ".trust.safetensors"
THRESHOLD_RULE = "maximum F1 on the calibration split, on calibrated probabilities"
NO_GATE = "the gate is unavailable: the checkpoint has no trust data (run fpsm calibrate)."


@dataclass(frozen=True, eq=False)
class MemberTrust:
    """What one member knows about its own trustworthiness.

    Attributes:
        gate: the distribution gate, or None.
        calibration: per-class Platt scaling, or None (probabilities are then uncalibrated).
        thresholds: per-class thresholds on the calibrated probabilities (with ``calibration``).
        note: why the gate or calibration is unavailable ("" when both loaded).
        section: the JSON section as stored (empty without one).
    """

    gate: MemberGate | None = None
    calibration: PlattCalibration | None = None
    thresholds: tuple[float, ...] | None = None
    note: str = NO_GATE
    section: Mapping[str, Any] = field(default_factory=dict)


def sidecar_path(json_path: Path) -> Path:
    return json_path.with_name(json_path.stem + SIDECAR_SUFFIX)


def save_member_trust(
    json_path: str | Path,
    gate: MemberGate | None,
    calibration: PlattCalibration | None,
    thresholds: Sequence[float] | None,
    info: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``NAME.trust.safetensors`` and the ``trust`` section of ``NAME.json``.

    Args:
        json_path: the checkpoint's JSON (or any path naming the checkpoint).
        gate, calibration: what was fitted (either may be None).
        thresholds: calibrated-scale thresholds (with ``calibration``).
        info: extra fields for the section (data used, measured ECE...).

    Returns:
        The sidecar's path.
    """
    meta = read_checkpoint_meta(json_path)
    json_file = Path(json_path).with_suffix(".json")
    tensors: dict[str, torch.Tensor] = {}
    gate_info: dict[str, Any] | None = None
    if gate is not None:
        for g in gate.levels:
            prefix = f"gate.level{g.level}"
            tensors[f"{prefix}.means"] = torch.from_numpy(g.means.astype(np.float16))
            tensors[f"{prefix}.basis"] = torch.from_numpy(g.basis.astype(np.float16))
            tensors[f"{prefix}.eigenvalues"] = torch.from_numpy(g.eigenvalues.astype(np.float32))
            tensors[f"{prefix}.residual_variance"] = torch.tensor(
                [g.residual_variance], dtype=torch.float32
            )
        tensors["gate.level_mean"] = torch.from_numpy(gate.level_mean.astype(np.float64))
        tensors["gate.level_std"] = torch.from_numpy(gate.level_std.astype(np.float64))
        gate_info = {
            "method": METHOD,
            "levels": [g.level for g in gate.levels],
            "rank": int(gate.levels[0].basis.shape[1]),
            "quantile": gate.quantile,
            "threshold": gate.threshold,
            "combine_levels": "mean of per-level scores standardised on held-out images",
            "n_train": gate.n_train,
            "n_heldout": gate.n_heldout,
        }
    cal_info: dict[str, Any] | None = None
    if calibration is not None:
        tensors["calibration.slope"] = torch.from_numpy(calibration.slope.astype(np.float64))
        tensors["calibration.bias"] = torch.from_numpy(calibration.bias.astype(np.float64))
        if thresholds is None or len(thresholds) != calibration.num_classes:
            raise ValueError("calibrated thresholds must come with the calibration, one per class.")
        cal_info = {
            "method": "per-class Platt scaling of the summed logit",
            "n_fit": calibration.n_fit,
            "thresholds": [float(t) for t in thresholds],
            "threshold_rule": THRESHOLD_RULE,
        }
    side = sidecar_path(json_file)
    save_file(
        {k: v.contiguous() for k, v in tensors.items()},
        str(side),
        metadata={"format": "fpsm-trust"},
    )
    section: dict[str, Any] = {
        "version": TRUST_VERSION,
        "file": side.name,
        "sha256": sha256_file(side),
        "weights_sha256": meta.weights_sha256,
        "gate": gate_info,
        "calibration": cal_info,
        "fitted": {
            "code_version": __version__,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            **(dict(info) if info else {}),
        },
    }
    update_checkpoint_meta(json_file, trust=section)
    return side


def load_member_trust(meta: CheckpointMeta, json_path: Path, levels: Sequence[int]) -> MemberTrust:
    """Read a member's trust data; never raises for a user's file, says why instead."""
    section = meta.trust
    if not section:
        return MemberTrust()
    name = json_path.name
    try:
        version = int(section.get("version", 0))
    except (TypeError, ValueError):
        version = 0
    if version != TRUST_VERSION:
        return MemberTrust(
            note=f"the gate is unavailable: {name} has trust data of version "
            f"{section.get('version')!r}; this program reads version {TRUST_VERSION}.",
            section=section,
        )
    if section.get("weights_sha256") != meta.weights_sha256:
        return MemberTrust(
            note=f"the gate is unavailable: the trust data in {name} were fitted on other "
            "weights (run fpsm calibrate again).",
            section=section,
        )
    side = json_path.parent / str(section.get("file", ""))
    if not side.is_file():
        return MemberTrust(
            note=f"the gate is unavailable: {side.name} named in {name} does not exist.",
            section=section,
        )
    if sha256_file(side) != section.get("sha256"):
        return MemberTrust(
            note=f"the gate is unavailable: {side} does not match the SHA-256 recorded in "
            f"{name}; it was changed or corrupted.",
            section=section,
        )
    try:
        tensors = {k: v.numpy() for k, v in load_file(str(side), device="cpu").items()}
        gate = _gate(section.get("gate"), tensors, levels)
        calibration, thresholds = _calibration(section.get("calibration"), tensors, meta)
    except (SafetensorError, OSError, KeyError, TypeError, ValueError) as exc:
        return MemberTrust(
            note=f"the gate is unavailable: {side} cannot be read ({exc}).", section=section
        )
    note = "" if gate is not None else NO_GATE
    return MemberTrust(gate, calibration, thresholds, note, section)


def _gate(
    info: Mapping[str, Any] | None, tensors: Mapping[str, np.ndarray], levels: Sequence[int]
) -> MemberGate | None:
    if not info:
        return None
    stored = [int(x) for x in info["levels"]]
    if stored != [int(x) for x in levels]:
        raise ValueError(f"the gate has levels {stored}, the model {list(levels)}")
    gaussians = tuple(
        LevelGaussian(
            level=lv,
            means=tensors[f"gate.level{lv}.means"].astype(np.float32),
            basis=tensors[f"gate.level{lv}.basis"].astype(np.float32),
            eigenvalues=tensors[f"gate.level{lv}.eigenvalues"].astype(np.float32),
            residual_variance=float(tensors[f"gate.level{lv}.residual_variance"][0]),
        )
        for lv in stored
    )
    return MemberGate(
        levels=gaussians,
        level_mean=tensors["gate.level_mean"].astype(np.float64),
        level_std=tensors["gate.level_std"].astype(np.float64),
        threshold=float(info["threshold"]),
        quantile=float(info["quantile"]),
        n_train=int(info.get("n_train", 0)),
        n_heldout=int(info.get("n_heldout", 0)),
    )


def _calibration(
    info: Mapping[str, Any] | None, tensors: Mapping[str, np.ndarray], meta: CheckpointMeta
) -> tuple[PlattCalibration | None, tuple[float, ...] | None]:
    if not info:
        return None, None
    cal = PlattCalibration(
        slope=tensors["calibration.slope"].astype(np.float64),
        bias=tensors["calibration.bias"].astype(np.float64),
        n_fit=int(info.get("n_fit", 0)),
    )
    thresholds = tuple(float(t) for t in info["thresholds"])
    if cal.num_classes != len(meta.labels) or len(thresholds) != len(meta.labels):
        raise ValueError(
            f"the calibration has {cal.num_classes} classes for {len(meta.labels)} labels"
        )
    return cal, thresholds


def write_ensemble_trust(ensemble_json: str | Path, section: Mapping[str, Any]) -> None:
    """Set the ``trust`` section of an ``ensemble.json`` (other fields untouched)."""
    path = Path(ensemble_json)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["trust"] = {"version": TRUST_VERSION, **dict(section)}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

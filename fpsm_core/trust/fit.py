"""Fitting trust for a model: the gate on training images, calibration and thresholds on held-out ones.

``fit_trust`` is the one entry point (``fpsm calibrate`` and the end of training call it). It runs
every member once over both record sets (:mod:`fpsm_core.trust.features`), then

* per member: the gate's Gaussians from the training images' pooled features; its level
  standardisation and threshold (``quantile`` of held-out scores) and its per-class Platt
  scaling from the held-out images; thresholds re-chosen on the calibrated held-out
  probabilities (maximum F1, the rule training uses);
* for an ensemble directory: the threshold of the mean member score at the same quantile of the
  held-out images, and the ensemble's thresholds on its mean calibrated probability.

The held-out images must not have been trained on (the training split's validation part is the
natural choice), or the threshold and the calibration will be too confident.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.data.records import RecordSet
from fpsm_core.model.ensemble import ENSEMBLE_FILE, Ensemble, load_model
from fpsm_core.trust.calibration import (
    PlattCalibration,
    calibrated_thresholds,
    calibration_report,
    fit_platt,
    sigmoid,
)
from fpsm_core.trust.features import Collected, collect
from fpsm_core.trust.gate import (
    DEFAULT_QUANTILE,
    DEFAULT_RANK,
    MemberGate,
    fit_member_gate,
    heldout_threshold,
)
from fpsm_core.trust.store import THRESHOLD_RULE, save_member_trust, write_ensemble_trust


@dataclass(frozen=True, eq=False)
class FittedTrust:
    """What was fitted, before it is written.

    Attributes:
        gates, calibrations, thresholds: per member.
        ensemble_threshold: the gate threshold of the mean member score (held-out quantile).
        ensemble_thresholds: thresholds of the mean calibrated probability.
        summary: measured figures on the held-out images (ECE before/after, flag rates).
    """

    gates: tuple[MemberGate, ...]
    calibrations: tuple[PlattCalibration, ...]
    thresholds: tuple[np.ndarray, ...]
    ensemble_threshold: float
    ensemble_thresholds: np.ndarray
    summary: Mapping[str, Any] = field(default_factory=dict)


def fit_from_outputs(
    ensemble: Ensemble,
    train: Collected,
    train_targets: np.ndarray,
    heldout: Collected,
    heldout_targets: np.ndarray,
    known: np.ndarray | None = None,
    quantile: float = DEFAULT_QUANTILE,
    rank: int = DEFAULT_RANK,
) -> FittedTrust:
    """Fit gates and calibrations from collected outputs (nothing is written)."""
    gates, cals, thresholds, member_scores, cal_probs, raw_probs = [], [], [], [], [], []
    members_summary = []
    for m, member in enumerate(ensemble.members):
        gate, scores = fit_member_gate(
            member.model.levels,
            train.members[m].features,
            train_targets,
            heldout.members[m].features,
            quantile=quantile,
            rank=rank,
        )
        cal = fit_platt(heldout.members[m].logits, heldout_targets, known)
        probs = cal.probabilities(heldout.members[m].logits)
        raw = sigmoid(heldout.members[m].logits)
        t = calibrated_thresholds(probs, heldout_targets)
        gates.append(gate)
        cals.append(cal)
        thresholds.append(t)
        member_scores.append(scores)
        cal_probs.append(probs)
        raw_probs.append(raw)
        members_summary.append(
            {
                "name": ensemble.member_names[m],
                "ece_before": _ece(raw, heldout_targets, ensemble.labels),
                "ece_after": _ece(probs, heldout_targets, ensemble.labels),
                "gate_threshold": gate.threshold,
            }
        )
    mean_scores = np.mean(np.stack(member_scores), axis=0)
    ens_threshold = heldout_threshold(mean_scores, quantile)
    ens_probs = np.mean(np.stack(cal_probs), axis=0)
    ens_raw = np.mean(np.stack(raw_probs), axis=0)
    ens_t = calibrated_thresholds(ens_probs, heldout_targets)
    summary = {
        "n_train": int(train_targets.shape[0]),
        "n_heldout": int(heldout_targets.shape[0]),
        "quantile": quantile,
        "ece_before": _ece(ens_raw, heldout_targets, ensemble.labels),
        "ece_after": _ece(ens_probs, heldout_targets, ensemble.labels),
        "mean_probability_before": float(ens_raw.mean()),
        "mean_probability_after": float(ens_probs.mean()),
        "prevalence": float((heldout_targets >= 0.5).mean()),
        "flagged_per_image_before": float(
            (ens_raw >= np.asarray(ensemble.thresholds)).sum(axis=1).mean()
        ),
        "flagged_per_image_after": float((ens_probs >= ens_t).sum(axis=1).mean()),
        "positives_per_image": float((heldout_targets >= 0.5).sum(axis=1).mean()),
        "members": members_summary,
    }
    return FittedTrust(
        gates=tuple(gates),
        calibrations=tuple(cals),
        thresholds=tuple(thresholds),
        ensemble_threshold=ens_threshold,
        ensemble_thresholds=ens_t,
        summary=summary,
    )


def _ece(probs: np.ndarray, targets: np.ndarray, labels: tuple[str, ...]) -> float:
    return round(calibration_report(probs, targets, labels).overall.ece, 6)


def save_fitted(
    ensemble: Ensemble, fitted: FittedTrust, info: Mapping[str, Any] | None = None
) -> list[Path]:
    """Write every member's sidecar and JSON section, and the ensemble's section; returns files."""
    written: list[Path] = []
    for m, member in enumerate(ensemble.members):
        written.append(
            save_member_trust(
                member.json_path,
                fitted.gates[m],
                fitted.calibrations[m],
                [float(t) for t in fitted.thresholds[m]],
                info={**(dict(info) if info else {}), **fitted.summary["members"][m]},
            )
        )
        written.append(member.json_path)
    ensemble_json = ensemble.path / ENSEMBLE_FILE if ensemble.path.is_dir() else None
    if ensemble_json is not None and ensemble_json.is_file():
        from fpsm_core.model.checkpoint import read_checkpoint_meta

        hashes = [read_checkpoint_meta(m.json_path).weights_sha256 for m in ensemble.members]
        summary = {k: v for k, v in fitted.summary.items() if k != "members"}
        write_ensemble_trust(
            ensemble_json,
            {
                "member_weights_sha256": hashes,
                "gate": {
                    "score": "mean of the members' gate scores",
                    "quantile": fitted.summary["quantile"],
                    "threshold": fitted.ensemble_threshold,
                    "n_heldout": fitted.summary["n_heldout"],
                },
                "calibration": {
                    "probability": "mean of the members' calibrated probabilities",
                    "thresholds": [float(t) for t in fitted.ensemble_thresholds],
                    "threshold_rule": THRESHOLD_RULE,
                },
                "fitted": {**(dict(info) if info else {}), **summary},
            },
        )
        written.append(ensemble_json)
    return written


def fit_trust(
    model: Ensemble | str | Path,
    train: RecordSet,
    heldout: RecordSet,
    *,
    quantile: float = DEFAULT_QUANTILE,
    rank: int = DEFAULT_RANK,
    max_train: int | None = 1200,
    batch_size: int = 16,
    device: str = "cpu",
    info: Mapping[str, Any] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    write: bool = True,
) -> FittedTrust:
    """Fit the gate and the calibration of a checkpoint or ensemble and store them beside it.

    Args:
        model: a loaded :class:`Ensemble` or the path of a checkpoint / ensemble directory.
        train: the training images (the gate's statistics; at most ``max_train`` are used).
        heldout: images not trained on (threshold quantile, calibration, thresholds).
        quantile: held-out quantile of the gate threshold (0.99: about 1 % false alarms).
        rank: principal directions of the gate's covariance.
        info: recorded in the trust sections (e.g. the data used).
        progress: ``progress(stage, done, total)``.
        write: store the result beside the model (False: fit and return only).

    Returns:
        What was fitted, with measured figures in ``summary``.
    """
    ensemble = model if isinstance(model, Ensemble) else load_model(model)
    train = train.sample(max_train, seed=0)

    def stage(name: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda d, t: progress(name, d, t))

    train_out = collect(ensemble, list(train.paths), batch_size, device, stage("train"))
    held_out = collect(ensemble, list(heldout.paths), batch_size, device, stage("held-out"))
    known = train.known & heldout.known
    fitted = fit_from_outputs(
        ensemble,
        train_out,
        train.targets[train_out.kept],
        held_out,
        heldout.targets[held_out.kept],
        known=known,
        quantile=quantile,
        rank=rank,
    )
    failures = len(train_out.failures) + len(held_out.failures)
    full_info = {**(dict(info) if info else {}), "unreadable_images": failures}
    if write:
        save_fitted(ensemble, fitted, full_info)
    return fitted

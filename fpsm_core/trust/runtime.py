"""Trust at inference time: one object per loaded model that calibrates and judges inputs.

:func:`load_ensemble_trust` reads every member's trust data (and the ensemble's own section of
``ensemble.json``) once; the inference service then asks it for calibrated member probabilities,
the ensemble's combined probability, and an :class:`InputVerdict` per image.

Rules, in one place:

* probabilities are calibrated only when every member has a calibration (a mix would average
  calibrated and uncalibrated numbers); then each member's probability is its Platt-scaled
  probability, the ensemble's is their mean, and the thresholds are the calibrated ones;
* the gate is available only when every member has one; the ensemble's score is the mean of the
  members' scores, its threshold the one fitted on the ensemble's held-out scores (ensemble.json),
  else the mean of the members' thresholds;
* an input is out of distribution when a check gives a reason or the score exceeds the threshold;
  in distribution when the gate passes it and no check objects; unknown (None) without a gate and
  without a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fpsm_core.model.ensemble import Ensemble
from fpsm_core.trust.calibration import sigmoid
from fpsm_core.trust.checks import Reason
from fpsm_core.trust.gate import ensemble_score
from fpsm_core.trust.store import MemberTrust, load_member_trust

OUTSIDE = "outside the model's training distribution: findings not reliable"


@dataclass(frozen=True)
class InputVerdict:
    """Whether an input is like what the model was trained on.

    Attributes:
        in_distribution: False when any check or the gate objects; True when the gate passes it
            and no check objects; None when no gate is available and no check objects.
        ood_score: the gate's score (higher = less like training), None without a gate.
        threshold: the gate's threshold, None without a gate.
        reasons: every reason found, checks first, then the gate's.
        note: why the gate is unavailable ("" when it ran).
    """

    in_distribution: bool | None
    ood_score: float | None
    threshold: float | None
    reasons: tuple[Reason, ...] = ()
    note: str = ""

    @property
    def flagged(self) -> bool:
        """True when the findings must not be relied on (the viewer's "needs a human")."""
        return self.in_distribution is False

    @property
    def summary(self) -> str:
        """The verdict in one line, for reports (the SR) and captions."""
        if self.in_distribution is False:
            why = "; ".join(r.sentence.rstrip(".") for r in self.reasons)
            return "outside the model's training distribution: findings not reliable" + (
                f" ({why})" if why else ""
            )
        if self.in_distribution is None:
            return f"not checked ({self.note})" if self.note else "not checked"
        score = (
            ""
            if self.ood_score is None or self.threshold is None
            else (f" (score {self.ood_score:.3g}, threshold {self.threshold:.3g})")
        )
        return f"like the model's training images{score}"

    def to_json(self) -> dict[str, Any]:
        return {
            "in_distribution": self.in_distribution,
            "ood_score": None if self.ood_score is None else round(self.ood_score, 4),
            "threshold": None if self.threshold is None else round(self.threshold, 4),
            "reasons": [r.to_json() for r in self.reasons],
            "note": self.note or None,
        }


@dataclass(frozen=True, eq=False)
class EnsembleTrust:
    """A loaded model's trust data.

    Attributes:
        members: each member's :class:`MemberTrust`, ensemble order.
        gate_threshold: the ensemble's gate threshold (None without a gate).
        calibrated: whether the probabilities this model reports are calibrated.
        thresholds: the ensemble's calibrated thresholds (None when not calibrated).
        note: why the gate (or calibration) is unavailable, "" when all is there.
    """

    members: tuple[MemberTrust, ...]
    gate_threshold: float | None
    calibrated: bool
    thresholds: tuple[float, ...] | None
    note: str = ""
    section: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_gate(self) -> bool:
        return self.gate_threshold is not None

    def member_probabilities(self, index: int, logits: np.ndarray) -> np.ndarray:
        """(B, C) logits of member ``index`` to the probabilities it reports."""
        cal = self.members[index].calibration
        if self.calibrated and cal is not None:
            return cal.probabilities(logits).astype(np.float32)
        return sigmoid(logits).astype(np.float32)

    def member_score(self, index: int, features: Sequence[np.ndarray]) -> np.ndarray | None:
        """(B,) gate scores of member ``index`` from its pooled features; None without a gate."""
        gate = self.members[index].gate
        if not self.has_gate or gate is None:
            return None
        return gate.score(features)

    def verdict(
        self, member_scores: Sequence[float] | None, reasons: Sequence[Reason]
    ) -> InputVerdict:
        """Judge one image from its members' gate scores and its check reasons."""
        found = list(reasons)
        score = ensemble_score(list(member_scores)) if member_scores is not None else None
        threshold = self.gate_threshold if score is not None else None
        if score is not None and threshold is not None and score > threshold:
            found.append(
                Reason(
                    "outside_distribution",
                    f"Its features are unlike the training images' (gate score {score:.2f} above "
                    f"the threshold {threshold:.2f}).",
                )
            )
        if found:
            inside: bool | None = False
        else:
            inside = True if score is not None else None
        return InputVerdict(
            inside, score, threshold, tuple(found), "" if score is not None else self.note
        )


def load_ensemble_trust(ensemble: Ensemble) -> EnsembleTrust:
    """Read the trust data of every member and of the ensemble itself."""
    members = tuple(
        load_member_trust(m.meta, m.json_path, m.model.levels) for m in ensemble.members
    )
    section = _ensemble_section(ensemble)
    distinct = {t.note for t in members if t.note}
    if len(distinct) == 1 and all(t.note for t in members):
        note = distinct.pop()  # the same for every member: say it once
    else:
        note = "; ".join(
            f"{n}: {t.note}" for n, t in zip(ensemble.member_names, members, strict=True) if t.note
        )
    gate_threshold: float | None = None
    if all(t.gate is not None for t in members):
        own = (section.get("gate") or {}).get("threshold") if section else None
        gate_threshold = (
            float(own)
            if own is not None
            else float(np.mean([t.gate.threshold for t in members if t.gate is not None]))
        )
    calibrated = all(t.calibration is not None for t in members)
    thresholds: tuple[float, ...] | None = None
    if calibrated:
        own_t = (section.get("calibration") or {}).get("thresholds") if section else None
        if own_t is not None and len(own_t) == len(ensemble.labels):
            thresholds = tuple(float(t) for t in own_t)
        else:
            thresholds = tuple(
                float(np.mean([t.thresholds[i] for t in members if t.thresholds is not None]))
                for i in range(len(ensemble.labels))
            )
    return EnsembleTrust(members, gate_threshold, calibrated, thresholds, note, section)


def _ensemble_section(ensemble: Ensemble) -> Mapping[str, Any]:
    """The ensemble.json trust section, if it was fitted for exactly these members' weights."""
    raw = ensemble.info.get("trust")
    if not isinstance(raw, dict) or int(raw.get("version", 0) or 0) != 1:
        return {}
    hashes = [m.meta.weights_sha256 for m in ensemble.members]
    if raw.get("member_weights_sha256") != hashes:
        return {}
    return raw


def describe(trust: EnsembleTrust) -> dict[str, Any]:
    """What a result records about the model's trust data."""
    return {
        "calibrated": trust.calibrated,
        "gate": trust.has_gate,
        "gate_threshold": trust.gate_threshold,
        "trust_note": trust.note or None,
    }

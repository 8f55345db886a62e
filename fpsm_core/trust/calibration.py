"""Calibrated probabilities: per-class Platt scaling, expected calibration error, reliability data.

A model trained with the asymmetric loss (negative clipping, focusing on negatives) reports
probabilities far above the prevalence: on held-out simulated films the demo's mean probability is
0.36 where 8.5 % of the labels are present. Temperature scaling alone cannot fix that (it keeps a
logit of 0 at 0.5), so each class gets Platt's two parameters, ``p = sigmoid(a * z + b)`` on the
model's summed logit ``z`` (Platt 1999), fitted on held-out validation logits by Newton's method on
the regularised log-loss with Platt's smoothed targets ``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``,
which keeps the fit finite for classes with no or few validation positives. Plain numpy: nothing
beyond the model is needed at run time.

Thresholds are re-chosen on the calibrated scores by the rule training uses
(:func:`fpsm_core.metrics.f1_optimal_threshold`: maximum F1 on the validation set, 0.5 where the
class has no validation positive).

ECE uses 15 equal-width bins (Guo et al. 2017, "On Calibration of Modern Neural Networks"): the
count-weighted mean of ``|fraction positive - mean probability|`` over the bins, per class and over
every (image, class) pair ("overall").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fpsm_core.metrics import f1_optimal_threshold

ECE_BINS = 15
# A weak pull of (a, b) towards (1, 0): the fit stays finite when a class's validation scores
# separate perfectly, and barely moves well-determined classes (it equals one pseudo-observation).
RIDGE = 1e-2


@dataclass(frozen=True)
class PlattCalibration:
    """Per-class ``sigmoid(slope * logit + bias)``.

    Attributes:
        slope, bias: (C,) float64.
        n_fit: validation images the parameters came from.
    """

    slope: np.ndarray
    bias: np.ndarray
    n_fit: int = 0

    @property
    def num_classes(self) -> int:
        return int(self.slope.shape[0])

    def calibrated_logits(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) or (C,) logits mapped to calibrated logits."""
        return np.asarray(logits, dtype=np.float64) * self.slope + self.bias

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """(N, C) or (C,) logits to calibrated probabilities (float64)."""
        return sigmoid(self.calibrated_logits(logits))


def sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -z))


def logit(p: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def fit_platt(
    logits: np.ndarray, targets: np.ndarray, known: np.ndarray | None = None
) -> PlattCalibration:
    """Fit per-class Platt scaling on validation logits.

    Args:
        logits: (N, C) uncalibrated logits (the model's summed logit, or the logit of an ensemble's
            mean probability).
        targets: (N, C) 0/1 labels (soft labels are thresholded at 0.5).
        known: (C,) bool; classes the data does not annotate keep the identity map.

    Returns:
        The calibration.
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64) >= 0.5
    if z.ndim != 2 or z.shape != y.shape:
        raise ValueError(f"logits {z.shape} and targets {y.shape} must both be (N, C).")
    c = z.shape[1]
    slope, bias = np.ones(c), np.zeros(c)
    for j in range(c):
        if known is not None and not bool(known[j]):
            continue
        slope[j], bias[j] = _fit_one(z[:, j], y[:, j])
    return PlattCalibration(slope=slope, bias=bias, n_fit=int(z.shape[0]))


def _fit_one(z: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    n_pos = float(y.sum())
    n_neg = float(y.size - n_pos)
    t = np.where(y, (n_pos + 1.0) / (n_pos + 2.0), 1.0 / (n_neg + 2.0))
    params = np.array([1.0, 0.0])
    prior = np.array([1.0, 0.0])
    x = np.stack([z, np.ones_like(z)], axis=1)

    def loss(w: np.ndarray) -> float:
        s = x @ w
        # -[t log sigmoid(s) + (1 - t) log(1 - sigmoid(s))] = logaddexp(0, s) - t * s
        return float(np.sum(np.logaddexp(0.0, s) - t * s) + RIDGE * np.sum((w - prior) ** 2))

    current = loss(params)
    for _ in range(100):
        p = sigmoid(x @ params)
        grad = x.T @ (p - t) + 2 * RIDGE * (params - prior)
        hess = (x * (p * (1 - p))[:, None]).T @ x + 2 * RIDGE * np.eye(2)
        step = np.linalg.solve(hess, grad)
        scale = 1.0
        while scale > 1e-6:  # backtracking keeps every Newton step a descent step
            trial = params - scale * step
            value = loss(trial)
            if value <= current:
                break
            scale /= 2
        else:
            break
        converged = current - value < 1e-10 * max(1.0, abs(current))
        params, current = trial, value
        if converged:
            break
    return float(params[0]), float(params[1])


def calibrated_thresholds(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per-class thresholds on calibrated scores: maximum F1 on validation (0.5 without positives)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = (np.asarray(targets) >= 0.5).astype(np.int64)
    return np.array([f1_optimal_threshold(y[:, j], p[:, j]) for j in range(p.shape[1])])


@dataclass(frozen=True)
class Reliability:
    """Reliability-diagram data over ``ECE_BINS`` equal-width bins of predicted probability.

    Attributes:
        edges: (B + 1,) bin edges, 0 to 1.
        counts: (B,) predictions in each bin.
        mean_probability: (B,) mean predicted probability per bin (NaN where empty).
        fraction_positive: (B,) observed frequency of positives per bin (NaN where empty).
        ece: expected calibration error.
    """

    edges: np.ndarray
    counts: np.ndarray
    mean_probability: np.ndarray
    fraction_positive: np.ndarray
    ece: float

    def to_json(self) -> dict[str, object]:
        def clean(values: np.ndarray) -> list[float | None]:
            return [None if not np.isfinite(v) else round(float(v), 6) for v in values]

        return {
            "ece": round(self.ece, 6),
            "edges": [round(float(e), 6) for e in self.edges],
            "counts": [int(n) for n in self.counts],
            "mean_probability": clean(self.mean_probability),
            "fraction_positive": clean(self.fraction_positive),
        }


def reliability(
    probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS
) -> Reliability:
    """Reliability data and ECE for any array of probabilities with 0/1 targets of the same shape."""
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = (np.asarray(targets, dtype=np.float64) >= 0.5).ravel().astype(np.float64)
    if p.shape != y.shape:
        raise ValueError("probabilities and targets must have the same shape.")
    edges = np.linspace(0.0, 1.0, bins + 1)
    # right-closed bins, the first one closed on both sides: p = 0 falls in bin 0, p = 1 in the last
    index = np.clip(np.searchsorted(edges, p, side="left") - 1, 0, bins - 1)
    counts = np.bincount(index, minlength=bins).astype(np.int64)
    sum_p = np.bincount(index, weights=p, minlength=bins)
    sum_y = np.bincount(index, weights=y, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(counts > 0, sum_p / counts, np.nan)
        frac = np.where(counts > 0, sum_y / counts, np.nan)
    total = max(int(counts.sum()), 1)
    gaps = np.where(counts > 0, np.abs(np.nan_to_num(frac) - np.nan_to_num(mean_p)), 0.0)
    ece = float(np.sum(counts * gaps) / total)
    return Reliability(edges, counts, mean_p, frac, ece)


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """ECE over all (image, class) pairs, 15 equal-width bins."""
    return reliability(probabilities, targets).ece


@dataclass(frozen=True)
class CalibrationReport:
    """ECE and reliability data per class and overall, for one set of probabilities."""

    overall: Reliability
    per_class: tuple[Reliability, ...]
    labels: tuple[str, ...]
    mean_probability: float
    prevalence: float
    flagged_per_image: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "ece": round(self.overall.ece, 6),
            "mean_probability": round(self.mean_probability, 6),
            "prevalence": round(self.prevalence, 6),
            "flagged_per_image": None
            if self.flagged_per_image is None
            else round(self.flagged_per_image, 4),
            "overall": self.overall.to_json(),
            "per_class": {
                label: r.to_json() for label, r in zip(self.labels, self.per_class, strict=True)
            },
        }


def calibration_report(
    probabilities: np.ndarray,
    targets: np.ndarray,
    labels: Sequence[str],
    thresholds: Sequence[float] | np.ndarray | None = None,
) -> CalibrationReport:
    """ECE and reliability per class and overall; with thresholds, findings flagged per image."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = (np.asarray(targets) >= 0.5).astype(np.float64)
    flagged = None
    if thresholds is not None:
        flagged = float((p >= np.asarray(thresholds, dtype=np.float64)).sum(axis=1).mean())
    return CalibrationReport(
        overall=reliability(p, y),
        per_class=tuple(reliability(p[:, j], y[:, j]) for j in range(p.shape[1])),
        labels=tuple(labels),
        mean_probability=float(p.mean()),
        prevalence=float(y.mean()),
        flagged_per_image=flagged,
    )

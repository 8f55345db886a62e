"""Classification metrics of the paper's tables, in numpy, equal to scikit-learn's.

Table 1 reports per class and macro: mAP (average precision), AUC, F1, recall and precision over the
26 CXR-LT findings; Table 3 reports Cohen's kappa, accuracy, AUPRC and AUC for the binary MURA task.
Average precision and ROC AUC follow scikit-learn's definitions exactly (step-wise AP without
interpolation, trapezoidal AUC with tied scores handled as one threshold), so figures are comparable
with the CXR-LT leaderboard; scikit-learn itself is only a test dependency.

A class with no positives or no negatives in ``y_true`` has no AP/AUC; it is left out of every macro
average and named in the report's ``"excluded"`` list rather than silently counted as 0 or 1.
Thresholds are applied as ``probability >= threshold``, the rule the inference service uses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from fpsm_core.errors import FpsmError
from fpsm_core.labels import LABELS

DEFAULT_THRESHOLD = 0.5
_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")  # noqa: B009 - numpy < 2


class MetricsError(FpsmError):
    """Inputs that cannot be scored (shape mismatch, non-binary targets, NaN scores)."""


def _check_binary(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true).ravel()
    y_score = np.asarray(y_score, dtype=np.float64).ravel()
    if y_true.shape != y_score.shape:
        raise MetricsError(f"y_true has {y_true.size} values but y_score has {y_score.size}.")
    if not np.all(np.isfinite(y_score)):
        raise MetricsError("y_score contains NaN or infinite values.")
    values = np.unique(y_true)
    if not np.all(np.isin(values, (0, 1))):
        raise MetricsError(f"y_true must hold only 0 and 1, found {values[:5].tolist()}.")
    return y_true.astype(np.int64), y_score


def _binary_clf_curve(
    y_true: np.ndarray, y_score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative false/true positives at each distinct score, highest score first."""
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score = y_score[order]
    y_true = y_true[order]
    distinct = np.where(np.diff(y_score))[0]
    threshold_idxs = np.r_[distinct, y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[threshold_idxs]
    fps = 1 + threshold_idxs - tps
    return fps, tps, y_score[threshold_idxs]


def precision_recall_curve(
    y_true: np.ndarray, y_score: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and thresholds, as ``sklearn.metrics.precision_recall_curve``.

    Returns:
        precision and recall with a final (1, 0) point appended, and the increasing thresholds.
    """
    y_true, y_score = _check_binary(y_true, y_score)
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score)
    ps = tps + fps
    precision = np.divide(tps, ps, out=np.zeros_like(tps), where=ps != 0)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    sl = slice(None, None, -1)
    return np.r_[precision[sl], 1.0], np.r_[recall[sl], 0.0], thresholds[sl]


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the step-wise PR curve, ``sum_n (R_n - R_{n-1}) P_n`` (NaN without positives)."""
    y_true, y_score = _check_binary(y_true, y_score)
    if y_true.sum() == 0:
        return float("nan")
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def roc_curve(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct score, starting at (0, 0)."""
    y_true, y_score = _check_binary(y_true, y_score)
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score)
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    fpr = fps / fps[-1] if fps[-1] > 0 else np.full_like(fps, np.nan)
    tpr = tps / tps[-1] if tps[-1] > 0 else np.full_like(tps, np.nan)
    return fpr, tpr, np.r_[np.inf, thresholds]


def roc_auc(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Trapezoidal area under the ROC curve (NaN when only one class is present)."""
    y_true, y_score = _check_binary(y_true, y_score)
    positives = int(y_true.sum())
    if positives == 0 or positives == y_true.size:
        return float("nan")
    fpr, tpr, _ = roc_curve(y_true, y_score)
    return float(_trapezoid(tpr, fpr))


def confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of binary predictions."""
    t = np.asarray(y_true).astype(bool).ravel()
    p = np.asarray(y_pred).astype(bool).ravel()
    tp = int(np.sum(t & p))
    fp = int(np.sum(~t & p))
    fn = int(np.sum(t & ~p))
    return tp, fp, fn, int(t.size - tp - fp - fn)


def precision_recall_f1(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of binary predictions; 0 where undefined (scikit-learn's default)."""
    tp, fp, fn, _ = confusion_counts(y_true, y_pred)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return precision, recall, f1


def cohen_kappa(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Cohen's kappa of two binary raters (``sklearn.metrics.cohen_kappa_score``)."""
    tp, fp, fn, tn = confusion_counts(y_true, y_pred)
    n = tp + fp + fn + tn
    if n == 0:
        return float("nan")
    observed = (tp + tn) / n
    expected = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / (n * n)
    if expected == 1.0:
        return float("nan")
    return float((observed - expected) / (1.0 - expected))


def f1_optimal_threshold(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """The threshold that maximises F1 on these scores (``>=`` rule).

    The threshold lies halfway between the chosen score and the next lower distinct score, so that
    the decision does not hinge on float rounding of a probability equal to it. Without positives
    (F1 undefined) the default 0.5 is returned.
    """
    y_true, y_score = _check_binary(y_true, y_score)
    if y_true.sum() == 0:
        return DEFAULT_THRESHOLD
    fps, tps, thresholds = _binary_clf_curve(y_true, y_score)
    fn = tps[-1] - tps
    f1 = 2 * tps / np.maximum(2 * tps + fps + fn, 1e-12)
    best = int(np.argmax(f1))  # first maximum = highest threshold among ties: fewest positives
    upper = thresholds[best]
    lower = thresholds[best + 1] if best + 1 < thresholds.size else upper - 1e-6
    return float((upper + lower) / 2.0)


def f1_optimal_thresholds(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Per-class F1-optimal thresholds for (N, C) targets and probabilities."""
    y_true, y_prob = _as_matrix(y_true, y_prob)
    return np.array(
        [f1_optimal_threshold(y_true[:, c], y_prob[:, c]) for c in range(y_true.shape[1])],
        dtype=np.float64,
    )


def _as_matrix(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_true.ndim == 1:
        y_true = y_true[:, None]
    if y_prob.ndim == 1:
        y_prob = y_prob[:, None]
    if y_true.shape != y_prob.shape:
        raise MetricsError(f"y_true has shape {y_true.shape} but y_prob has {y_prob.shape}.")
    return y_true, y_prob


def multilabel_report(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    thresholds: Sequence[float] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The paper's Table 1 metrics, per class and macro.

    Args:
        y_true: (N, C) 0/1 targets.
        y_prob: (N, C) probabilities.
        thresholds: per-class decision thresholds for F1/recall/precision (default 0.5 each).
        labels: class names (default the 26 CXR-LT labels when C is 26, else ``class_<i>``).

    Returns:
        ``{"mAP", "AUC", "F1", "recall", "precision"}`` macro averages as fractions over the classes
        that have both positives and negatives (NaN when none has), ``"per_class"`` (name -> dict
        with ``AP, AUC, F1, recall, precision, threshold, positives, negatives``; AP/AUC NaN where
        undefined), ``"excluded"`` (names left out of the macro), ``"n_samples"``, ``"labels"`` and
        ``"thresholds"``.
    """
    y_true, y_prob = _as_matrix(y_true, y_prob)
    n, c = y_true.shape
    names = _label_names(labels, c)
    th = _thresholds(thresholds, c)
    per_class: dict[str, dict[str, float | int]] = {}
    included: list[str] = []
    excluded: list[str] = []
    for i, name in enumerate(names):
        t, p = y_true[:, i], y_prob[:, i]
        positives = int(np.sum(t == 1))
        precision, recall, f1 = precision_recall_f1(t, p >= th[i])
        per_class[name] = {
            "AP": average_precision(t, p),
            "AUC": roc_auc(t, p),
            "F1": f1,
            "recall": recall,
            "precision": precision,
            "threshold": float(th[i]),
            "positives": positives,
            "negatives": n - positives,
        }
        (included if 0 < positives < n else excluded).append(name)

    def macro(key: str) -> float:
        values = [float(per_class[name][key]) for name in included]
        return float(np.mean(values)) if values else float("nan")

    return {
        "mAP": macro("AP"),
        "AUC": macro("AUC"),
        "F1": macro("F1"),
        "recall": macro("recall"),
        "precision": macro("precision"),
        "per_class": per_class,
        "excluded": excluded,
        "n_samples": n,
        "labels": list(names),
        "thresholds": [float(x) for x in th],
    }


def binary_report(
    y_true: np.ndarray, y_prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float | int]:
    """The paper's Table 3 metrics for a binary task (MURA): kappa, accuracy, AUPRC, AUC.

    Returns:
        ``{"kappa", "accuracy", "AUPRC", "AUC", "F1", "recall", "precision", "threshold",
        "positives", "negatives", "n_samples"}``.
    """
    t, p = _check_binary(y_true, y_prob)
    pred = p >= threshold
    precision, recall, f1 = precision_recall_f1(t, pred)
    positives = int(t.sum())
    return {
        "kappa": cohen_kappa(t, pred),
        "accuracy": float(np.mean(pred == t.astype(bool))) if t.size else float("nan"),
        "AUPRC": average_precision(t, p),
        "AUC": roc_auc(t, p),
        "F1": f1,
        "recall": recall,
        "precision": precision,
        "threshold": float(threshold),
        "positives": positives,
        "negatives": int(t.size - positives),
        "n_samples": int(t.size),
    }


def _label_names(labels: Sequence[str] | None, c: int) -> tuple[str, ...]:
    if labels is not None:
        if len(labels) != c:
            raise MetricsError(f"{len(labels)} label names for {c} columns.")
        return tuple(labels)
    return LABELS if c == len(LABELS) else tuple(f"class_{i}" for i in range(c))


def _thresholds(thresholds: Sequence[float] | np.ndarray | None, c: int) -> np.ndarray:
    if thresholds is None:
        return np.full(c, DEFAULT_THRESHOLD)
    th = np.asarray(thresholds, dtype=np.float64).ravel()
    if th.size != c:
        raise MetricsError(f"{th.size} thresholds for {c} classes.")
    return th

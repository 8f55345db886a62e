"""The paper's metrics equal scikit-learn's on the same inputs (ties, tiny sets, missing classes)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    cohen_kappa_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fpsm_core import metrics as M
from fpsm_core.labels import LABELS


def _case(seed: int, n: int, c: int, decimals: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < rng.uniform(0.05, 0.6, size=c)).astype(int)
    p = np.round(np.clip(0.3 * y + rng.random((n, c)) * 0.8, 0, 1), decimals)  # ties on purpose
    return y, p


@pytest.mark.parametrize("seed", range(6))
def test_multilabel_report_equals_sklearn(seed: int) -> None:
    y, p = _case(seed, n=80, c=26)
    y[:, 3] = 0  # a class without positives
    y[:, 5] = 1  # and one without negatives
    thresholds = np.random.default_rng(seed).uniform(0.2, 0.7, size=26)
    report = M.multilabel_report(y, p, thresholds)
    valid = [i for i in range(26) if 0 < y[:, i].sum() < len(y)]
    assert report["excluded"] == [LABELS[3], LABELS[5]]
    aps, aucs, f1s, recs, precs = [], [], [], [], []
    for i in valid:
        per = report["per_class"][LABELS[i]]
        pred = p[:, i] >= thresholds[i]
        aps.append(average_precision_score(y[:, i], p[:, i]))
        aucs.append(roc_auc_score(y[:, i], p[:, i]))
        f1s.append(f1_score(y[:, i], pred, zero_division=0))
        recs.append(recall_score(y[:, i], pred, zero_division=0))
        precs.append(precision_score(y[:, i], pred, zero_division=0))
        assert per["AP"] == pytest.approx(aps[-1], abs=1e-12)
        assert per["AUC"] == pytest.approx(aucs[-1], abs=1e-12)
        assert per["F1"] == pytest.approx(f1s[-1], abs=1e-12)
        assert per["recall"] == pytest.approx(recs[-1], abs=1e-12)
        assert per["precision"] == pytest.approx(precs[-1], abs=1e-12)
        assert per["positives"] == int(y[:, i].sum())
    assert report["mAP"] == pytest.approx(np.mean(aps), abs=1e-12)
    assert report["AUC"] == pytest.approx(np.mean(aucs), abs=1e-12)
    assert report["F1"] == pytest.approx(np.mean(f1s), abs=1e-12)
    assert report["recall"] == pytest.approx(np.mean(recs), abs=1e-12)
    assert report["precision"] == pytest.approx(np.mean(precs), abs=1e-12)
    # scikit-learn's own macro over the same classes
    assert report["mAP"] == pytest.approx(
        average_precision_score(y[:, valid], p[:, valid], average="macro"), abs=1e-12
    )
    assert report["AUC"] == pytest.approx(
        roc_auc_score(y[:, valid], p[:, valid], average="macro"), abs=1e-12
    )
    assert np.isnan(report["per_class"][LABELS[3]]["AP"])
    assert np.isnan(report["per_class"][LABELS[5]]["AUC"])


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 6)), min_size=2, max_size=40),
)
def test_binary_curves_equal_sklearn_with_heavy_ties(pairs: list[tuple[bool, int]]) -> None:
    y = np.array([int(a) for a, _ in pairs])
    s = np.array([b / 6 for _, b in pairs])
    if y.sum() == 0 or y.sum() == len(y):
        assert np.isnan(M.roc_auc(y, s))
        return
    assert M.average_precision(y, s) == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.roc_auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    ours = M.precision_recall_curve(y, s)
    theirs = precision_recall_curve(y, s)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-12)


def test_binary_report_equals_sklearn() -> None:
    y, p = _case(7, n=200, c=1)
    y, p = y[:, 0], p[:, 0]
    r = M.binary_report(y, p, threshold=0.55)
    pred = p >= 0.55
    assert r["kappa"] == pytest.approx(cohen_kappa_score(y, pred), abs=1e-12)
    assert r["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=1e-12)
    assert r["AUPRC"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert r["AUC"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert r["positives"] + r["negatives"] == 200


def test_f1_optimal_thresholds_reach_the_best_f1() -> None:
    y, p = _case(3, n=120, c=4, decimals=3)
    th = M.f1_optimal_thresholds(y, p)
    for i in range(4):
        best = max(f1_score(y[:, i], p[:, i] >= t) for t in np.unique(p[:, i]))
        assert f1_score(y[:, i], p[:, i] >= th[i]) == pytest.approx(best)
        assert not np.any(np.isclose(p[:, i], th[i]))  # the threshold sits between scores
    no_pos = M.f1_optimal_threshold(np.zeros(5), np.linspace(0, 1, 5))
    assert no_pos == 0.5


def test_metrics_reject_bad_inputs() -> None:
    with pytest.raises(M.MetricsError, match="shape"):
        M.multilabel_report(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(M.MetricsError, match="only 0 and 1"):
        M.average_precision(np.array([0, 2, 1]), np.array([0.1, 0.2, 0.3]))
    with pytest.raises(M.MetricsError, match="NaN"):
        M.roc_auc(np.array([0, 1]), np.array([np.nan, 0.3]))
    with pytest.raises(M.MetricsError, match="thresholds"):
        M.multilabel_report(np.zeros((3, 2)), np.zeros((3, 2)), thresholds=[0.5])

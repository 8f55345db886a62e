"""Label co-occurrence: the correlation matrix DADAM must keep, and each class's closest partner.

As in the paper's Fig. 2d the matrix holds absolute Pearson correlations between the 0/1 label
columns (the phi coefficient) with a zero diagonal. A class that is constant in the data (never or
always present) has no defined correlation and gets a zero row and column.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fpsm_core.labels import LABELS


def correlation_matrix(y: np.ndarray) -> np.ndarray:
    """Absolute label correlations with a zero diagonal.

    Args:
        y: (N, C) 0/1 label matrix.

    Returns:
        (C, C) float64 matrix in [0, 1].
    """
    x = np.asarray(y, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected an (N, C) label matrix, got shape {x.shape}")
    n = x.shape[0]
    c = x.shape[1]
    if n < 2:
        return np.zeros((c, c))
    # Sufficient statistics keep this O(N C^2) with one matrix product, fine for 300k x 26.
    mean = x.mean(axis=0)
    cov = (x.T @ x) / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    ok = std > 1e-12
    denom = np.outer(np.where(ok, std, 1.0), np.where(ok, std, 1.0))
    corr = np.abs(cov / denom)
    corr[~ok, :] = 0.0
    corr[:, ~ok] = 0.0
    np.fill_diagonal(corr, 0.0)
    return np.clip(corr, 0.0, 1.0)


def most_correlated(
    corr: np.ndarray,
    labels: Sequence[str] = LABELS,
    *,
    exclude: Collection[str] = ("No Finding",),
    candidates: Collection[str] | None = None,
) -> dict[str, str | None]:
    """Each class's most correlated other class.

    Args:
        corr: (C, C) matrix from :func:`correlation_matrix`.
        labels: Names of its rows.
        exclude: Classes never chosen as a partner ("No Finding" is anti-correlated with everything,
            so its absolute correlation would otherwise win).
        candidates: If given, partners are chosen only among these (e.g. classes with patches).

    Returns:
        Class -> partner, or None when every allowed correlation is zero.
    """
    out: dict[str, str | None] = {}
    allowed = [
        j
        for j, name in enumerate(labels)
        if name not in exclude and (candidates is None or name in candidates)
    ]
    for i, name in enumerate(labels):
        best, best_v = None, 0.0
        for j in allowed:
            if j != i and corr[i, j] > best_v:
                best, best_v = labels[j], float(corr[i, j])
        out[name] = best
    return out


@dataclass(frozen=True)
class MatrixDistance:
    """How far two correlation matrices are apart (off-diagonal entries).

    Attributes:
        frobenius: Frobenius norm of the difference.
        mean_abs: Mean absolute difference over the off-diagonal entries.
        max_abs: Largest absolute difference.
        worst: (row label, column label) of the largest difference.
    """

    frobenius: float
    mean_abs: float
    max_abs: float
    worst: tuple[str, str]

    def as_dict(self) -> Mapping[str, object]:
        return {
            "frobenius": self.frobenius,
            "mean_abs": self.mean_abs,
            "max_abs": self.max_abs,
            "worst": list(self.worst),
        }


def matrix_distance(a: np.ndarray, b: np.ndarray, labels: Sequence[str] = LABELS) -> MatrixDistance:
    """Distance between two correlation matrices of the same classes."""
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    off = ~np.eye(d.shape[0], dtype=bool)
    i, j = np.unravel_index(int(np.argmax(np.where(off, d, -1.0))), d.shape)
    return MatrixDistance(
        frobenius=float(np.sqrt((d[off] ** 2).sum())),
        mean_abs=float(d[off].mean()) if off.any() else 0.0,
        max_abs=float(d[off].max()) if off.any() else 0.0,
        worst=(labels[int(i)], labels[int(j)]),
    )

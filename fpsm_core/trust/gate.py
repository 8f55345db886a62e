"""The distribution gate: is this image's pyramid of features like the training images'?

Lee et al. 2018, "A Simple Unified Framework for Detecting Out-of-Distribution Samples and
Adversarial Attacks" (NeurIPS): fit class-conditional Gaussians with one shared covariance to a
network's features and score a new input by its Mahalanobis distance to the closest class mean,
at several layers, combining the layers' scores. Here the layers are the FPSM's own pyramid levels,
and the features are the pooled vectors the level heads already see (no extra pass; pooling the
maps ``forward_all`` returns costs microseconds).

Per level ``l`` (``LevelGaussian``):

* the classes are the labels with at least ``MIN_CLASS_IMAGES`` positive training images, plus
  the mean of all images (so an image with no kept label has a mean to be near); CXR-LT labels
  overlap, so an image contributes to the mean of every class it is positive for;
* the shared covariance is the within-class scatter (each image weighted once), estimated as a
  probabilistic PCA (Tipping & Bishop 1999): the top ``rank`` eigen-directions keep their
  variances and the rest share their mean variance. With 1,000-odd images and up to 2,048
  channels the sample covariance is singular; this estimate is well-conditioned, and it keeps the
  discarded directions in the score (an input unlike training often moves exactly there);
* the score is ``min_c (x - mu_c)^T Sigma^-1 (x - mu_c)``.

The member's score standardises each level's score by its mean and standard deviation on held-out
in-distribution images and averages the levels. The threshold is the ``quantile`` (default 0.99)
of held-out in-distribution scores, so about 1 % of in-distribution images are expected to be
flagged (measured in ``docs/trust.md``). An ensemble's score is the mean of its members' scores,
thresholded at the same quantile of the ensemble's held-out scores (stored in ``ensemble.json``);
an ensemble without its own threshold uses the mean of its members' thresholds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

MIN_CLASS_IMAGES = 10
DEFAULT_RANK = 64
DEFAULT_QUANTILE = 0.99
METHOD = "class-conditional Gaussian, shared PPCA covariance, Mahalanobis (Lee et al. 2018)"


@dataclass(frozen=True, eq=False)
class LevelGaussian:
    """One pyramid level's class means and shared covariance.

    Attributes:
        level: the paper's level number.
        means: (G, d) the overall mean, then the kept classes' means.
        basis: (d, k) orthonormal principal directions of the within-class scatter.
        eigenvalues: (k,) variances along ``basis``.
        residual_variance: the variance of every direction outside ``basis``.
    """

    level: int
    means: np.ndarray
    basis: np.ndarray
    eigenvalues: np.ndarray
    residual_variance: float

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])

    @cached_property
    def _tensors(self) -> tuple[torch.Tensor, ...]:
        means = torch.from_numpy(self.means.astype(np.float64))
        basis = torch.from_numpy(self.basis.astype(np.float64))
        eig = torch.from_numpy(self.eigenvalues.astype(np.float64))
        return means, basis, means @ basis, (means * means).sum(dim=1), eig

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(N, d) pooled features to (N,) squared Mahalanobis distance to the closest mean.

        Computed with torch in float64: numpy's BLAS keeps its own thread pool, which on a busy
        CPU made these few small products 50x slower than the same ones on torch's pool (the
        pool the forward pass already uses); see bench/bench_trust.py.
        """
        means, basis, mb, m2, eig = self._tensors
        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(features), dtype=torch.float64)
            sq = (x * x).sum(dim=1)[:, None] - 2.0 * x @ means.T + m2[None, :]  # (N, G)
            dz = (x @ basis)[:, None, :] - mb[None, :, :]  # (N, G, k)
            inside = (dz * dz).sum(dim=2)
            d2 = (dz * dz / eig).sum(dim=2) + (sq - inside).clamp(min=0.0) / self.residual_variance
            return np.asarray(d2.min(dim=1).values.numpy())

    def stored(self) -> LevelGaussian:
        """The same statistics rounded to float16, as the checkpoint stores them."""
        return LevelGaussian(
            level=self.level,
            means=self.means.astype(np.float16).astype(np.float32),
            basis=self.basis.astype(np.float16).astype(np.float32),
            eigenvalues=self.eigenvalues.astype(np.float32),
            residual_variance=float(np.float32(self.residual_variance)),
        )


def fit_level(
    level: int,
    features: np.ndarray,
    targets: np.ndarray,
    rank: int = DEFAULT_RANK,
    min_class_images: int = MIN_CLASS_IMAGES,
) -> LevelGaussian:
    """Fit one level's Gaussians on training images' pooled features.

    Args:
        features: (N, d) pooled features of the training images.
        targets: (N, C) their labels (0/1; soft labels thresholded at 0.5).
        rank: principal directions kept with their own variance.
        min_class_images: a class needs this many positives to get its own mean.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(targets) >= 0.5
    n, d = x.shape
    if n < 2:
        raise ValueError("the gate needs at least two training images.")
    kept = [j for j in range(y.shape[1]) if int(y[:, j].sum()) >= min_class_images]
    means = [x.mean(axis=0)] + [x[y[:, j]].mean(axis=0) for j in kept]
    # Within-class scatter, each image weighted once across the classes it belongs to.
    member = y[:, kept] if kept else np.zeros((n, 0), dtype=bool)
    groups = member.sum(axis=1)
    scatter = np.zeros((d, d))
    orphans = groups == 0
    if orphans.any():
        r = x[orphans] - means[0]
        scatter += r.T @ r
    for g, j in enumerate(kept, start=1):
        rows = y[:, j]
        w = 1.0 / groups[rows]
        r = x[rows] - means[g]
        scatter += (r * w[:, None]).T @ r
    cov = scatter / n
    values, vectors = np.linalg.eigh(cov)
    values, vectors = values[::-1], vectors[:, ::-1]
    floor = max(float(values[0]), 1e-12) * 1e-6
    values = np.maximum(values, floor)
    k = int(min(rank, d, n - 1))
    rest = values[k:]
    residual = float(rest.mean()) if rest.size else float(values[-1])
    return LevelGaussian(
        level=int(level),
        means=np.stack(means).astype(np.float32),
        basis=vectors[:, :k].astype(np.float32),
        eigenvalues=values[:k].astype(np.float32),
        residual_variance=max(residual, floor),
    )


@dataclass(frozen=True, eq=False)
class MemberGate:
    """One model's gate: its levels' Gaussians, their standardisation and the threshold.

    Attributes:
        levels: one :class:`LevelGaussian` per model level, in the model's ``levels`` order.
        level_mean, level_std: (L,) held-out in-distribution mean and spread of each level's score.
        threshold: flag scores above this.
        quantile: the held-out quantile the threshold sits at.
        n_train, n_heldout: images the statistics and the threshold came from.
    """

    levels: tuple[LevelGaussian, ...]
    level_mean: np.ndarray
    level_std: np.ndarray
    threshold: float
    quantile: float
    n_train: int = 0
    n_heldout: int = 0

    def level_scores(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """Per-level squared Mahalanobis distances, (N, L)."""
        if len(features) != len(self.levels):
            raise ValueError(f"{len(features)} feature levels for a {len(self.levels)}-level gate.")
        return np.stack([g.distances(f) for g, f in zip(self.levels, features, strict=True)], 1)

    def score(self, features: Sequence[np.ndarray]) -> np.ndarray:
        """(N,) the member's score: the mean over levels of the standardised level scores."""
        z = (self.level_scores(features) - self.level_mean) / self.level_std
        return np.asarray(z.mean(axis=1))


def fit_member_gate(
    levels: Sequence[int],
    train_features: Sequence[np.ndarray],
    train_targets: np.ndarray,
    heldout_features: Sequence[np.ndarray],
    quantile: float = DEFAULT_QUANTILE,
    rank: int = DEFAULT_RANK,
) -> tuple[MemberGate, np.ndarray]:
    """Fit a member's gate; returns it and its scores on the held-out images.

    The Gaussians come from the training images; the level standardisation and the threshold come
    from the held-out images, scored with the float16-rounded statistics that are stored.
    """
    if not 0.5 <= quantile < 1.0:
        raise ValueError(f"the gate quantile must lie in [0.5, 1), not {quantile}.")
    gaussians = tuple(
        fit_level(lv, f, train_targets, rank=rank).stored()
        for lv, f in zip(levels, train_features, strict=True)
    )
    raw = np.stack([g.distances(f) for g, f in zip(gaussians, heldout_features, strict=True)], 1)
    mean = raw.mean(axis=0)
    std = np.maximum(raw.std(axis=0), 1e-6 * np.maximum(np.abs(mean), 1.0))
    scores = ((raw - mean) / std).mean(axis=1)
    gate = MemberGate(
        levels=gaussians,
        level_mean=mean.astype(np.float64),
        level_std=std.astype(np.float64),
        threshold=heldout_threshold(scores, quantile),
        quantile=float(quantile),
        n_train=int(train_features[0].shape[0]),
        n_heldout=int(raw.shape[0]),
    )
    return gate, scores


def heldout_threshold(scores: np.ndarray, quantile: float) -> float:
    """The ``quantile`` of held-out in-distribution scores (the next observed score above it)."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), quantile, method="higher"))


def ensemble_score(member_scores: Sequence[float | None]) -> float | None:
    """The ensemble's score: the mean of its members' scores (None when a member has no gate)."""
    if not member_scores or any(s is None for s in member_scores):
        return None
    return float(np.mean([float(s) for s in member_scores if s is not None]))

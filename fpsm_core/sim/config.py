"""What the simulator draws: image size, class prevalences and how the findings go together.

Labels are drawn from a Gaussian copula: every finding has a latent normal score made of a few shared
clinical factors (an intensive-care patient, heart failure, infection, trauma, a tumour, old age) plus
its own noise, and is positive when the score passes the threshold that gives its configured
prevalence. The marginal prevalences are therefore exact and the factors give the co-occurrences that
CXR-LT shows (devices with effusion and atelectasis, cardiomegaly with edema, fracture with
pneumothorax and subcutaneous emphysema...). "No Finding" is not drawn: as in CheXpert-style labels
it is positive exactly when no finding other than "Support Devices" is.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from types import MappingProxyType

import numpy as np

from fpsm_core.errors import FpsmError
from fpsm_core.labels import LABEL_INDEX, LABELS, NUM_CLASSES


class SimConfigError(FpsmError):
    """Simulation settings that cannot be used (a size, a prevalence, a label name)."""


# CXR-LT 2023 training-set positives (264,849 images), rounded: a guide to the long tail, not data.
CXRLT_TRAIN_COUNTS: Mapping[str, int] = MappingProxyType(
    {
        "Atelectasis": 61_000,
        "Calcification of the Aorta": 3_300,
        "Cardiomegaly": 66_000,
        "Consolidation": 15_000,
        "Edema": 38_000,
        "Emphysema": 6_000,
        "Enlarged Cardiomediastinum": 29_000,
        "Fibrosis": 1_900,
        "Fracture": 10_000,
        "Hernia": 3_500,
        "Infiltration": 7_000,
        "Lung Lesion": 1_600,
        "Lung Opacity": 73_000,
        "Mass": 5_000,
        "Nodule": 9_000,
        "Pleural Effusion": 64_000,
        "Pleural Other": 900,
        "Pleural Thickening": 3_000,
        "Pneumomediastinum": 900,
        "Pneumonia": 21_000,
        "Pneumoperitoneum": 543,
        "Pneumothorax": 11_000,
        "Subcutaneous Emphysema": 3_000,
        "Support Devices": 89_140,
        "Tortuous Aorta": 3_600,
    }
)
CXRLT_TRAIN_IMAGES = 264_849
_NORMAL = NormalDist()

FACTORS: tuple[str, ...] = ("icu", "cardiac", "infection", "trauma", "tumour", "age")

# Loadings of each finding's latent score on the shared factors (squared sums stay below 0.85).
DEFAULT_LOADINGS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "Atelectasis": {"icu": 0.45, "infection": 0.25, "age": 0.15},
        "Calcification of the Aorta": {"age": 0.7},
        "Cardiomegaly": {"cardiac": 0.7, "age": 0.25},
        "Consolidation": {"infection": 0.65, "icu": 0.2},
        "Edema": {"cardiac": 0.6, "icu": 0.3},
        "Emphysema": {"age": 0.45},
        "Enlarged Cardiomediastinum": {"cardiac": 0.55, "age": 0.2},
        "Fibrosis": {"age": 0.45},
        "Fracture": {"trauma": 0.7, "age": 0.15},
        "Hernia": {"age": 0.5},
        "Infiltration": {"infection": 0.55},
        "Lung Lesion": {"tumour": 0.6},
        "Lung Opacity": {"infection": 0.55, "icu": 0.3, "cardiac": 0.15},
        "Mass": {"tumour": 0.75},
        "Nodule": {"tumour": 0.6, "age": 0.15},
        "Pleural Effusion": {"cardiac": 0.45, "icu": 0.4, "tumour": 0.15},
        "Pleural Other": {"age": 0.3, "trauma": 0.2},
        "Pleural Thickening": {"age": 0.4, "tumour": 0.2},
        "Pneumomediastinum": {"trauma": 0.65, "icu": 0.2},
        "Pneumonia": {"infection": 0.7},
        "Pneumoperitoneum": {"icu": 0.45, "trauma": 0.3},
        "Pneumothorax": {"trauma": 0.55, "icu": 0.35},
        "Subcutaneous Emphysema": {"trauma": 0.75, "icu": 0.2},
        "Support Devices": {"icu": 0.8, "cardiac": 0.15},
        "Tortuous Aorta": {"age": 0.65},
    }
)


def default_prevalences() -> dict[str, float]:
    """Per-class prevalence from the CXR-LT 2023 training counts ("No Finding" is derived)."""
    return {name: n / CXRLT_TRAIN_IMAGES for name, n in CXRLT_TRAIN_COUNTS.items()}


@dataclass(frozen=True)
class SimConfig:
    """Everything that decides what a simulated data set contains.

    Attributes:
        size: output image side in pixels (square images).
        prevalences: positive rate of each drawn finding (every CXR-LT label but "No Finding").
        loadings: each finding's loadings on :data:`FACTORS`; the copula's correlation structure.
        min_prevalence: floor applied to every prevalence, to thin the tail for small demo sets.
        ap_fraction: share of antero-posterior (bedside) films among patients with no device.
        fov_mm: range of the field of view (mm across the image), which sets the pixel spacing.
        seed: base seed of a data set; case ``i`` uses a seed derived from ``(seed, i)``.
    """

    size: int = 512
    prevalences: Mapping[str, float] = field(default_factory=default_prevalences)
    loadings: Mapping[str, Mapping[str, float]] = field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_LOADINGS.items()}
    )
    min_prevalence: float = 0.0
    ap_fraction: float = 0.15
    fov_mm: tuple[float, float] = (320.0, 420.0)
    seed: int = 0

    def __post_init__(self) -> None:
        if not 64 <= self.size <= 4096:  # below 64 px the smallest findings vanish
            raise SimConfigError(f"Image size {self.size} is outside 64..4096 pixels.")
        unknown = (set(self.prevalences) | set(self.loadings)) - (set(LABELS) - {"No Finding"})
        if unknown:
            raise SimConfigError(f"Unknown or underived labels in the config: {sorted(unknown)}.")
        for name, p in self.prevalences.items():
            if not 0.0 <= p <= 1.0:
                raise SimConfigError(f"Prevalence of {name!r} is {p}, not a probability.")
        for name, row in self.loadings.items():
            if set(row) - set(FACTORS):
                raise SimConfigError(
                    f"Loadings of {name!r} name unknown factors {sorted(set(row) - set(FACTORS))}."
                )
            if sum(v * v for v in row.values()) >= 1.0:
                raise SimConfigError(f"Loadings of {name!r} have a squared sum of 1 or more.")

    def effective_prevalences(self) -> np.ndarray:
        """Prevalence of every label in ``LABELS`` order after the floor ("No Finding" = NaN)."""
        out = np.full(NUM_CLASSES, np.nan)
        for name in LABELS:
            if name != "No Finding":
                out[LABEL_INDEX[name]] = max(self.prevalences.get(name, 0.0), self.min_prevalence)
        return out


@dataclass(frozen=True)
class LabelModel:
    """The copula's matrices, precomputed once per config."""

    loadings: np.ndarray  # (NUM_CLASSES, len(FACTORS)); zero row for "No Finding"
    noise_scale: np.ndarray  # (NUM_CLASSES,)
    thresholds: np.ndarray  # (NUM_CLASSES,); +inf for "No Finding"

    @classmethod
    def from_config(cls, config: SimConfig) -> LabelModel:
        loadings = np.zeros((NUM_CLASSES, len(FACTORS)))
        for name, row in config.loadings.items():
            for factor, value in row.items():
                loadings[LABEL_INDEX[name], FACTORS.index(factor)] = value
        noise = np.sqrt(1.0 - (loadings**2).sum(axis=1))
        prev = config.effective_prevalences()
        thresholds = np.full(NUM_CLASSES, np.inf)
        drawn = ~np.isnan(prev)
        thresholds[drawn] = [
            _NORMAL.inv_cdf(min(max(1.0 - q, 1e-12), 1 - 1e-12)) for q in prev[drawn]
        ]
        return cls(loadings, noise, thresholds)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw one case's labels (bool, ``LABELS`` order) and its factor scores."""
        factors = rng.standard_normal(len(FACTORS))
        score = self.loadings @ factors + self.noise_scale * rng.standard_normal(NUM_CLASSES)
        labels = score > self.thresholds
        others = np.delete(labels, [LABEL_INDEX["No Finding"], LABEL_INDEX["Support Devices"]])
        labels[LABEL_INDEX["No Finding"]] = not others.any()
        return labels, factors

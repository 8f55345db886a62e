"""Load the simulator's bundled real-data assets (lung outlines, NIH box sizes) from ``resources/sim``.

Both files are small JSON derived from PyPI wheels by :mod:`fpsm_core.sim.build_assets`. When the
folder is missing (an installed package without the resources) the simulator falls back to a
procedural lung outline and to built-in size ranges, so it never fails for want of an asset.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np

RESOURCE_DIR = Path(__file__).resolve().parents[2] / "resources" / "sim"


def _fallback_lung(left: bool) -> np.ndarray:
    """A smooth lung outline in the unit box of both lungs (used when no template file exists)."""
    t = np.linspace(0.0, 2.0 * np.pi, 64, endpoint=False)
    x = 0.5 + 0.5 * np.sin(t)
    y = 0.5 - 0.5 * np.cos(t)
    y = np.where(y > 0.5, 0.5 + (y - 0.5) * (0.9 + 0.1 * x), y)  # flatter base
    lung = np.stack([0.02 + 0.42 * x, y], axis=1)
    return np.stack([1.0 - lung[:, 0], lung[:, 1]], axis=1) if left else lung


@functools.lru_cache(maxsize=1)
def lung_templates() -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """Pairs of (image-left = patient-right lung, image-right lung) outlines in the unit box."""
    path = RESOURCE_DIR / "lung_contours.json"
    if not path.is_file():
        return ((_fallback_lung(False), _fallback_lung(True)),)
    doc = json.loads(path.read_text())
    return tuple(
        (np.asarray(t["right_lung"], np.float32), np.asarray(t["left_lung"], np.float32))
        for t in doc["templates"]
    )


@functools.lru_cache(maxsize=1)
def box_size_quantiles() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per CXR-LT label, the 5/25/50/75/95 % quantiles of NIH box width and height (image fractions)."""
    path = RESOURCE_DIR / "box_stats.json"
    if not path.is_file():
        return {}
    doc = json.loads(path.read_text())
    return {
        name: (np.asarray(s["width"], np.float64), np.asarray(s["height"], np.float64))
        for name, s in doc["classes"].items()
    }


def sample_box_fraction(
    rng: np.random.Generator, label: str, default: tuple[float, float]
) -> tuple[float, float]:
    """Draw a (width, height) image fraction from the NIH quantiles of ``label``.

    Interpolates the inverse CDF between the 5 % and 95 % quantiles; ``default`` gives the
    (low, high) range of a square box when the label has no statistics.
    """
    stats = box_size_quantiles().get(label)
    levels = np.array([0.05, 0.25, 0.5, 0.75, 0.95])
    if stats is None:
        side = float(rng.uniform(*default))
        return side, side
    u = float(rng.uniform(0.05, 0.95))
    return float(np.interp(u, levels, stats[0])), float(np.interp(u, levels, stats[1]))

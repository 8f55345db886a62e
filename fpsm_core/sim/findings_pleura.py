"""Findings of the pleura and of gas outside the lungs: effusion, pneumothorax, pleural thickening
and plaques, pneumomediastinum, pneumoperitoneum and subcutaneous emphysema.

Each painter follows the contract of :mod:`fpsm_core.sim.findings`: it draws into the scene and
returns one boolean mask per instance.
"""

from __future__ import annotations

import numpy as np

from fpsm_core.sim.scene import (
    Scene,
    bezier,
    blob_polygon,
    blur,
    draw_line,
    draw_lines,
    fill_poly,
    side_of,
    stamp,
)


def _pick_sides(rng: np.random.Generator, right: float, left: float) -> list[int]:
    """Patient right (image left, 0), left (1) or both, with the given single-side odds."""
    u = rng.uniform()
    return [0] if u < right else [1] if u < right + left else [0, 1]


def pleural_effusion(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A basal opacity with a meniscus rising laterally; small ones only blunt the angle."""
    masks = []
    rows = np.arange(scene.size, dtype=np.float32)[:, None]
    cols = np.arange(scene.size, dtype=np.float32)[None, :]
    for side in _pick_sides(rng, 0.45, 0.25):
        lung = side_of(scene, side)
        poly = scene.lungs[side]
        cp, lung_h = scene.marks["cp_y"][side], scene.marks["lung_h"]
        height = lung_h * (
            rng.uniform(0.08, 0.16) if rng.uniform() < 0.4 else rng.uniform(0.18, 0.5)
        )
        medial, lateral = (
            (poly[:, 0].max(), poly[:, 0].min())
            if side == 0
            else (poly[:, 0].min(), poly[:, 0].max())
        )
        s = np.clip((cols - medial) / (lateral - medial), 0, 1)
        meniscus = cp - height * (0.55 + 0.45 * s**2)
        depth = np.clip((rows - meniscus) / scene.mm(rng.uniform(15, 35)), 0, 1)
        fluid = depth * lung
        # Fluid replaces aerated lung: it hides the dome and the costophrenic angle.
        soft_fluid = blur(fluid.astype(np.float32), scene.mm(2.5))
        scene.air *= 1.0 - rng.uniform(0.85, 0.95) * soft_fluid
        scene.soft += soft_fluid * rng.uniform(0.5, 1.5)
        scene.markings_keep *= 1.0 - 0.8 * fluid
        masks.append(fluid > 0.15)
    return masks


def pneumothorax(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A lucent rim without lung markings, bounded by a thin visceral pleural line."""
    side = int(rng.uniform() < 0.5)
    poly = scene.lungs[side]
    hilum = np.asarray(scene.marks["hila"][side])
    factor = rng.uniform(0.62, 0.9)
    # The lung collapses towards the hilum, more at the apex than at the base.
    weight = np.clip((poly[:, 1].max() - poly[:, 1]) / (poly[:, 1].max() - poly[:, 1].min()), 0, 1)
    shrink = 1.0 - (1.0 - factor) * (0.1 + 0.9 * weight)[:, None]
    collapsed = hilum + (poly - hilum) * shrink
    collapsed_mask = fill_poly(np.zeros((scene.size, scene.size), np.uint8), collapsed, 1)
    lung = side_of(scene, side)
    rows = np.arange(scene.size)[:, None]
    dome = scene.marks["dome_y"][side]
    heart = np.asarray(scene.marks["heart_mask"], bool)
    rim = (lung > 0) & (collapsed_mask == 0) & ~heart & (rows < dome)
    rim_f = rim.astype(np.float32)
    scene.markings_keep *= 1.0 - blur(rim_f, 0.8)
    scene.air += blur(rim_f, 0.8) * rng.uniform(0.8, 1.6)
    # Visceral pleural line: the part of the collapsed outline that faces the rim.
    line = draw_line(
        scene.blank(), np.vstack([collapsed, collapsed[:1]]), max(1.0, scene.mm(0.8)), 1.0
    )
    line *= blur(rim_f, scene.mm(2.0)) > 0.05
    scene.soft += blur(line, 0.5) * rng.uniform(1.5, 2.5)
    return [rim]


def pleural_thickening(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A smooth band along the lateral chest wall, or an apical cap."""
    side = int(rng.uniform() < 0.5)
    poly = scene.lungs[side]
    n = len(poly)
    if rng.uniform() < 0.35:  # apical cap: around the top point (index 0 of the outline)
        idx = np.arange(-4, 5) % n
    else:
        lateral = int(np.argmin(poly[:, 0]) if side == 0 else np.argmax(poly[:, 0]))
        span = int(rng.integers(4, 10))
        idx = np.arange(lateral - span, lateral + span // 2) % n
    raw = draw_line(scene.blank(), poly[idx], max(3.0, scene.mm(rng.uniform(4, 10)) * 2), 1.0)
    band = raw * side_of(scene, side)
    scene.soft += blur(band, scene.mm(1.5)) * rng.uniform(2.0, 3.2)
    scene.markings_keep *= 1.0 - band
    return [band > 0.5 if (band > 0.5).any() else raw > 0.5]


def pleural_other(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Calcified pleural plaques: irregular dense plates over the wall or the diaphragm."""
    masks = []
    for _ in range(int(rng.integers(1, 4))):
        side = int(rng.uniform() < 0.5)
        poly = scene.lungs[side]
        point = poly[int(rng.integers(len(poly)))]
        inward = np.asarray(scene.marks["hila"][side]) - point
        centre = point + inward / np.linalg.norm(inward) * scene.mm(rng.uniform(3, 10))
        radius = max(1.5, scene.mm(rng.uniform(6, 16)))
        plaque = blob_polygon(rng, tuple(centre), radius, 0.6, n=24)
        masks.append(stamp(scene, scene.bone, plaque, rng.uniform(0.8, 1.5), 1.0, rounded=False))
    return masks


def pneumomediastinum(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Gas streaks along the heart and mediastinum, rising into the neck, with a pleural line."""
    heart = scene.marks["heart_poly"]
    left_border = heart[heart[:, 0] > np.median(heart[:, 0])]
    left_border = left_border[np.argsort(left_border[:, 1])]
    offset = scene.mm(rng.uniform(2, 5))
    streak = left_border + [offset, 0]
    trachea = scene.marks["trachea"]
    neck = np.asarray(trachea)[: len(trachea) // 2] + [scene.mm(rng.uniform(12, 18)), 0]
    gas = draw_lines(scene.blank(), [streak, neck], scene.mm(rng.uniform(2, 4)), 1.0)
    pleura = draw_line(scene.blank(), streak + [scene.mm(3), 0], max(1.0, scene.mm(0.8)), 1.0)
    scene.air += blur(gas, 0.8) * rng.uniform(2.0, 3.0)
    scene.soft += blur(pleura, 0.5) * 1.5
    return [(gas > 0.5) | (pleura > 0.5)]


def _crescent(scene: Scene, rng: np.random.Generator, side: int) -> np.ndarray | None:
    """Free gas under one dome; None when that dome shows no free edge (hidden by the heart)."""
    poly = scene.lungs[side]
    dome = scene.marks["dome_y"][side]
    base = poly[poly[:, 1] > dome - scene.mm(20)]
    if side == 1:  # under the left dome, free gas shows lateral to the heart
        base = base[base[:, 0] > np.asarray(scene.marks["heart_poly"])[:, 0].max() - scene.mm(10)]
    base = base[np.argsort(base[:, 0])]
    if len(base) < 3:
        return None
    diaphragm = max(1.0, scene.mm(rng.uniform(3, 5)))
    thick = max(2.0, scene.mm(rng.uniform(6, 18)))
    t = np.linspace(0, np.pi, len(base))
    upper = base + [0, diaphragm]
    lower = base + np.stack([np.zeros(len(base)), diaphragm + thick * np.sin(t)], axis=1)
    crescent = np.vstack([upper, lower[::-1]])
    mask = stamp(scene, scene.air, crescent, rng.uniform(3.0, 5.0), 0.8, rounded=False)
    return mask if mask.any() else None


def pneumoperitoneum(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A crescent of free gas under a hemidiaphragm (mostly the right)."""
    masks = [
        m for side in _pick_sides(rng, 0.7, 0.15) if (m := _crescent(scene, rng, side)) is not None
    ]
    if not masks:  # the left dome was all behind the heart: the right one always shows
        right = _crescent(scene, rng, 0)
        masks = [] if right is None else [right]
    return masks


def subcutaneous_emphysema(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Streaky gas along the muscle planes of the lateral chest wall, sometimes the neck."""
    masks = []
    for side in _pick_sides(rng, 0.4, 0.4):
        wall_x = scene.marks["lung_left_x" if side == 0 else "lung_right_x"]
        apex, lung_h = scene.marks["apex_y"], scene.marks["lung_h"]
        outward = -1 if side == 0 else 1
        top = apex + lung_h * rng.uniform(0.0, 0.3)
        bottom = top + lung_h * rng.uniform(0.3, 0.6)
        lines = []
        for _ in range(int(rng.integers(12, 30))):
            y = rng.uniform(top, bottom)
            x = wall_x[int(np.clip(y, 0, scene.size - 1))] + outward * scene.mm(rng.uniform(8, 30))
            d = scene.mm(rng.uniform(8, 25))
            slope = rng.uniform(0.4, 1.2)
            pts = bezier(
                np.array(
                    [
                        [x, y],
                        [x + outward * d * 0.3, y + d * slope * 0.5 + rng.normal(0, 2)],
                        [x + outward * d * 0.5, y + d * slope],
                    ]
                ),
                6,
            )
            lines.append(pts)
        gas = draw_lines(scene.blank(), lines, scene.mm(rng.uniform(1.5, 3.0)), 1.0)
        gas *= scene.marks["body_mask"]
        scene.air += blur(gas, 0.7) * rng.uniform(1.5, 2.5)
        if gas.max() > 0.5:
            masks.append(gas > 0.5)
    return masks

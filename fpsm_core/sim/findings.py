"""Findings of the lung parenchyma, and the registry of every finding painter (:data:`PAINTERS`).

A painter takes the scene (anatomy already drawn) and its own random stream, adds its densities or
lucencies to the scene's layers and returns one boolean mask per instance (two nodules, a
bilateral effusion...). The masks are the ground truth: boxes are their tight bounding boxes.
Sizes are physical (millimetres through ``scene.mm``), so the contrast of a lesion follows its
thickness the way it does on film: a 6 mm nodule is faint, a 6 cm mass is white.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from fpsm_core.sim.assets import sample_box_fraction
from fpsm_core.sim.findings_other import (
    aortic_calcification,
    cardiomegaly,
    enlarged_cardiomediastinum,
    fracture,
    hernia,
    support_devices,
    tortuous_aorta,
)
from fpsm_core.sim.findings_pleura import (
    pleural_effusion,
    pleural_other,
    pleural_thickening,
    pneumomediastinum,
    pneumoperitoneum,
    pneumothorax,
    subcutaneous_emphysema,
)
from fpsm_core.sim.scene import (
    Scene,
    blob_polygon,
    blur,
    draw_lines,
    inside,
    random_point_in,
    side_of,
    smooth_noise,
    stamp,
    window,
)

Painter = Callable[[Scene, np.random.Generator], list[np.ndarray]]


def _lung_site(
    scene: Scene,
    rng: np.random.Generator,
    margin_mm: float,
    side: int | None = None,
    zone: tuple[float, float] = (0.0, 1.0),
    behind_heart: float = 0.1,
) -> tuple[float, float]:
    """A point inside a lung, ``margin_mm`` from its edge, in a vertical zone (0 = apex, 1 = base)."""
    base = scene.lung_mask if side is None else side_of(scene, side)
    region = inside(scene, side, scene.mm(margin_mm))
    if rng.uniform() >= behind_heart:
        region = region & ~scene.marks["heart_mask"]
    apex, lung_h = scene.marks["apex_y"], scene.marks["lung_h"]
    rows = np.arange(scene.size)[:, None]
    lo, hi = apex + zone[0] * lung_h, apex + zone[1] * lung_h
    zoned = region & ((rows >= lo) & (rows <= hi))
    point = random_point_in(rng, zoned if zoned.any() else (region if region.any() else base))
    if point is None:
        return scene.size / 2, scene.size / 2
    return point


def nodule(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """One to three round, well-defined nodules of 5 to 30 mm."""
    masks = []
    for _ in range(1 + int(rng.uniform() < 0.25) + int(rng.uniform() < 0.08)):
        diameter = float(np.exp(rng.uniform(np.log(5.0), np.log(30.0))))
        centre = _lung_site(scene, rng, diameter / 2 + 3)
        poly = blob_polygon(rng, centre, scene.mm(diameter / 2), 0.12, n=32)
        edge = max(0.6, scene.mm(diameter) * 0.18)
        masks.append(stamp(scene, scene.soft, poly, diameter / 10 * rng.uniform(0.9, 1.3), edge))
    return masks


def mass(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A lobulated, sometimes spiculated mass of 30 to 80 mm."""
    diameter = float(np.exp(rng.uniform(np.log(32.0), np.log(80.0))))
    centre = _lung_site(scene, rng, diameter / 3, zone=(0.1, 0.85))
    poly = blob_polygon(rng, centre, scene.mm(diameter / 2), 0.35, n=48)
    mask = stamp(
        scene,
        scene.soft,
        poly,
        diameter / 10 * rng.uniform(0.8, 1.1),
        scene.mm(diameter) * 0.12,
        within=scene.lung_mask.astype(np.float32),
    )
    if rng.uniform() < 0.4:  # spicules
        r = scene.mm(diameter / 2)
        angles = rng.uniform(0, 2 * np.pi, int(rng.integers(6, 14)))
        spikes = [
            np.array(
                [
                    [centre[0] + r * 0.8 * np.cos(a), centre[1] + r * 0.8 * np.sin(a)],
                    [
                        centre[0] + r * rng.uniform(1.1, 1.4) * np.cos(a),
                        centre[1] + r * rng.uniform(1.1, 1.4) * np.sin(a),
                    ],
                ]
            )
            for a in angles
        ]
        layer = draw_lines(scene.blank(), spikes, scene.mm(1.2), 1.0)
        scene.soft += blur(layer, 0.7) * 1.0
        mask |= layer > 0.5
    return [mask]


def lung_lesion(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A cavitating lesion: a thick-walled ring around a lucent centre, sometimes with fluid."""
    diameter = float(rng.uniform(18.0, 55.0))
    centre = _lung_site(scene, rng, diameter / 2 + 3, zone=(0.05, 0.75))
    r = scene.mm(diameter / 2)
    outer = blob_polygon(rng, centre, r, 0.18, n=40)
    mask = stamp(scene, scene.soft, outer, diameter / 10 * 0.55, r * 0.15)
    inner = blob_polygon(rng, centre, r * rng.uniform(0.45, 0.7), 0.15, n=32)
    cavity = scene.blank()
    stamp(scene, cavity, inner, 1.0, r * 0.06, rounded=False)
    if rng.uniform() < 0.4:  # air-fluid level
        cavity[int(centre[1] + r * rng.uniform(0.0, 0.3)) :, :] *= 0.2
    scene.soft -= cavity * diameter / 10 * 0.5
    return [mask]


def _cloud(
    scene: Scene,
    rng: np.random.Generator,
    centre: tuple[float, float],
    size_px: tuple[float, float],
    patchiness: float,
) -> np.ndarray:
    """A random cloud-shaped region (float 0/1, full size) around ``centre``."""
    w, h = size_px
    pts = np.array([[centre[0] - w / 2, centre[1] - h / 2], [centre[0] + w / 2, centre[1] + h / 2]])
    win, (x0, y0) = window(scene.size, pts, 2)
    local = np.zeros((win[0].stop - win[0].start, win[1].stop - win[1].start), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        c = (centre[0] - x0 + rng.normal(0, w / 5), centre[1] - y0 + rng.normal(0, h / 5))
        axes = (w / 2 * rng.uniform(0.35, 0.7), h / 2 * rng.uniform(0.35, 0.7))
        cv2.ellipse(
            local,
            (int(c[0]), int(c[1])),
            (max(1, int(axes[0])), max(1, int(axes[1]))),
            rng.uniform(0, 180),
            0,
            360,
            1.0,
            -1,
        )
    field = blur(local, max(1.0, min(w, h) * 0.12))
    if patchiness > 0 and local.size > 16:
        noise = smooth_noise(rng, max(local.shape), scene.mm(4), down=2)[
            : local.shape[0], : local.shape[1]
        ]
        field = field + patchiness * 0.25 * noise
    full = scene.blank()
    full[win] = (field > 0.5).astype(np.float32)
    return full


def _airspace(
    scene: Scene,
    rng: np.random.Generator,
    label: str,
    density: tuple[float, float],
    patchiness: float,
    zone: tuple[float, float],
    bronchograms: bool,
    sides: list[int],
) -> list[np.ndarray]:
    masks = []
    for side in sides:
        wf, hf = sample_box_fraction(rng, label, (0.1, 0.25))
        size_px = (
            max(scene.mm(25), wf * scene.size * 0.9),
            max(scene.mm(25), hf * scene.size * 0.9),
        )
        centre = _lung_site(scene, rng, 10, side=side, zone=zone, behind_heart=0.2)
        region = _cloud(scene, rng, centre, size_px, patchiness) * side_of(scene, side)
        if region.sum() < 4:
            continue
        edge = scene.mm(rng.uniform(3, 7))
        amount = blur(region, edge) * rng.uniform(*density)
        if bronchograms:
            tree = scene.blank()
            start = np.array(centre) + rng.normal(0, 3, 2)
            lines = []
            for _ in range(int(rng.integers(2, 5))):
                angle = rng.uniform(0, 2 * np.pi)
                end = start + scene.mm(rng.uniform(15, 35)) * np.array(
                    [np.cos(angle), np.sin(angle)]
                )
                mid = (start + end) / 2 + rng.normal(0, scene.mm(3), 2)
                lines.append(np.stack([start, mid, end]))
            draw_lines(tree, lines, scene.mm(2.5), 1.0)
            amount -= blur(tree, 0.8) * region * density[0] * 0.6
        scene.soft += amount
        masks.append(region > 0.5)
    return masks


def _sides(rng: np.random.Generator, bilateral: float) -> list[int]:
    if rng.uniform() < bilateral:
        return [0, 1]
    return [int(rng.uniform() < 0.45)]


def consolidation(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Dense, homogeneous lobar or segmental opacity with air bronchograms."""
    return _airspace(
        scene, rng, "Pneumonia", (3.5, 5.0), 0.3, (0.15, 0.95), True, _sides(rng, 0.15)
    )


def pneumonia(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Patchy airspace opacity, mostly in the lower zones."""
    return _airspace(scene, rng, "Pneumonia", (2.4, 3.6), 0.9, (0.35, 1.0), False, _sides(rng, 0.2))


def lung_opacity(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Hazy, ill-defined (ground-glass) opacity."""
    return _airspace(
        scene, rng, "Infiltration", (1.5, 2.4), 0.5, (0.1, 1.0), False, _sides(rng, 0.3)
    )


def infiltration(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Streaky, reticulonodular opacity in a patch of lung."""
    masks = _airspace(
        scene, rng, "Infiltration", (0.4, 0.8), 0.6, (0.1, 1.0), False, _sides(rng, 0.25)
    )
    for mask in masks:
        dots = (smooth_noise(rng, scene.size, scene.mm(1.5), down=2) > 1.0).astype(np.float32)
        scene.soft += blur(dots * mask, 0.8) * rng.uniform(0.8, 1.4)
    return masks


def atelectasis(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Plate-like bands above the domes, or a basal wedge of collapsed lung."""
    side = int(rng.uniform() < 0.5)
    lung = side_of(scene, side)
    masks = []
    if rng.uniform() < 0.6:
        for _ in range(1 + int(rng.uniform() < 0.3)):
            centre = _lung_site(scene, rng, 12, side=side, zone=(0.6, 0.88))
            length = scene.mm(rng.uniform(30, 80))
            angle = np.deg2rad(rng.normal(0, 12))
            d = np.array([np.cos(angle), np.sin(angle)]) * length / 2
            band = np.stack(
                [np.array(centre) - d, np.array(centre) + rng.normal(0, 2, 2), np.array(centre) + d]
            )
            raw = draw_lines(scene.blank(), [band], max(2.0, scene.mm(rng.uniform(3, 8))), 1.0)
            layer = raw * lung
            scene.soft += blur(layer, scene.mm(1.2)) * rng.uniform(1.6, 2.6)
            masks.append(layer > 0.5 if (layer > 0.5).any() else raw > 0.5)
    else:
        dome = scene.marks["dome_y"][side]
        heart = scene.marks["heart_poly"]
        edge_x = float(heart[:, 0].min() if side == 0 else heart[:, 0].max())
        width = scene.mm(rng.uniform(35, 70)) * (-1 if side == 0 else 1)
        tip_y = dome - scene.mm(rng.uniform(50, 90))
        wedge = np.array(
            [
                [edge_x - 0.3 * width, tip_y],
                [edge_x + width, dome + scene.mm(5)],
                [edge_x - 0.4 * width, dome + scene.mm(5)],
            ]
        )
        density = rng.uniform(2.5, 3.5)
        mask = stamp(scene, scene.soft, wedge, density, scene.mm(3), False, lung.astype(np.float32))
        if not mask.any():  # the wedge missed the lung: the collapse is where it was drawn
            mask = stamp(scene, scene.soft, wedge, density, scene.mm(3), rounded=False)
        masks.append(mask)
    return masks


def edema(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Bilateral perihilar haze ("bat wings") with Kerley B lines at the bases."""
    masks = []
    for side, hilum in enumerate(scene.marks["hila"]):
        outward = -1 if side == 0 else 1
        centre = (
            hilum[0] + outward * scene.mm(rng.uniform(10, 25)),
            hilum[1] + scene.mm(rng.uniform(-5, 15)),
        )
        size = (scene.mm(rng.uniform(60, 95)), scene.mm(rng.uniform(80, 130)))
        region = _cloud(scene, rng, centre, size, 0.4) * side_of(scene, side)
        scene.soft += blur(region, scene.mm(8)) * rng.uniform(2.2, 3.5)
        cp = scene.marks["cp_y"][side]
        wall = scene.marks["lung_left_x" if side == 0 else "lung_right_x"]
        lines = []
        for _ in range(int(rng.integers(3, 8))):
            y = cp - scene.mm(rng.uniform(8, 50))
            x = wall[int(np.clip(y, 0, scene.size - 1))] - outward * scene.mm(1)
            lines.append(
                np.array(
                    [[x, y], [x - outward * scene.mm(rng.uniform(10, 20)), y + rng.normal(0, 1)]]
                )
            )
        kerley = draw_lines(scene.blank(), lines, scene.mm(1.0), 1.0) * side_of(scene, side)
        scene.soft += blur(kerley, 0.6) * 1.2
        masks.append((region > 0.5) | (kerley > 0.5))
    return masks


def emphysema(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Hyperinflated (see anatomy), hyperlucent upper lungs with pruned vessels and bullae."""
    rows = np.arange(scene.size, dtype=np.float32)[:, None]
    apex, lung_h = scene.marks["apex_y"], scene.marks["lung_h"]
    upper = np.clip(1.0 - (rows - apex) / (0.7 * lung_h), 0, 1)
    scene.air += upper * scene.lung_mask * rng.uniform(0.8, 1.6)
    scene.markings_keep *= 1.0 - 0.5 * upper * scene.lung_mask
    for _ in range(int(rng.integers(0, 3))):
        centre = _lung_site(scene, rng, 15, zone=(0.0, 0.45))
        bulla = blob_polygon(rng, centre, scene.mm(rng.uniform(12, 30)), 0.1)
        keep = scene.blank()
        stamp(scene, keep, bulla, 1.0, 1.0, rounded=False)
        scene.markings_keep *= 1.0 - keep
        scene.air += keep * 0.8
    return [side_of(scene, 0) > 0, side_of(scene, 1) > 0]


def fibrosis(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """Fine reticulation in the basal and peripheral lung, both sides."""
    masks = []
    for side in (0, 1):
        lung = side_of(scene, side)
        periphery = (lung > 0) & ~(inside(scene, side, scene.mm(rng.uniform(25, 40))) > 0)
        rows = np.arange(scene.size)[:, None]
        apex, lung_h = scene.marks["apex_y"], scene.marks["lung_h"]
        region = periphery & (rows > apex + lung_h * rng.uniform(0.4, 0.6))
        ys, xs = np.nonzero(region)
        if len(xs) == 0:
            continue
        idx = rng.integers(len(xs), size=int(np.clip(len(xs) / scene.mm(6) ** 2 * 2, 20, 400)))
        starts = np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64)
        angles = rng.uniform(0, 2 * np.pi, len(idx))
        lengths = rng.uniform(3, 8, len(idx)) / scene.spacing
        ends = starts + np.stack([np.cos(angles), np.sin(angles)], axis=1) * lengths[:, None]
        net = draw_lines(scene.blank(), list(np.stack([starts, ends], axis=1)), scene.mm(0.9), 1.0)
        scene.soft += blur(net * region, 0.7) * rng.uniform(0.8, 1.3)
        masks.append(region)
    return masks


PAINTERS: tuple[tuple[str, Painter], ...] = (
    ("Cardiomegaly", cardiomegaly),
    ("Enlarged Cardiomediastinum", enlarged_cardiomediastinum),
    ("Tortuous Aorta", tortuous_aorta),
    ("Calcification of the Aorta", aortic_calcification),
    ("Emphysema", emphysema),
    ("Fibrosis", fibrosis),
    ("Edema", edema),
    ("Lung Opacity", lung_opacity),
    ("Infiltration", infiltration),
    ("Pneumonia", pneumonia),
    ("Consolidation", consolidation),
    ("Atelectasis", atelectasis),
    ("Nodule", nodule),
    ("Mass", mass),
    ("Lung Lesion", lung_lesion),
    ("Hernia", hernia),
    ("Pleural Thickening", pleural_thickening),
    ("Pleural Other", pleural_other),
    ("Pleural Effusion", pleural_effusion),
    ("Pneumothorax", pneumothorax),
    ("Pneumomediastinum", pneumomediastinum),
    ("Pneumoperitoneum", pneumoperitoneum),
    ("Subcutaneous Emphysema", subcutaneous_emphysema),
    ("Fracture", fracture),
    ("Support Devices", support_devices),
)

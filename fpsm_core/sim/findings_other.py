"""Findings of the heart, aorta, bones and devices: cardiomegaly, enlarged cardiomediastinum,
tortuous and calcified aorta, hiatal hernia, rib fracture and support devices.

Cardiomegaly, an enlarged mediastinum and a tortuous aorta are drawn by the anatomy (a bigger
heart, a wider mediastinum, a wavy aorta); their painters only return the structure's mask. The
others draw into the scene, following the contract of :mod:`fpsm_core.sim.findings`.
"""

from __future__ import annotations

import cv2
import numpy as np

from fpsm_core.sim.scene import (
    Scene,
    bezier,
    blur,
    draw_line,
    draw_lines,
    fill_ellipse,
    fill_poly,
    stamp,
)


def cardiomegaly(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """The enlarged heart itself (cardiothoracic ratio above 0.5, drawn by the anatomy)."""
    return [np.asarray(scene.marks["heart_mask"], bool)]


def enlarged_cardiomediastinum(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """The widened upper mediastinum (drawn by the anatomy)."""
    x0, y0, x1, y1 = scene.marks["mediastinum_box"]
    box = np.array([[x0, max(0.0, y0)], [x1, max(0.0, y0)], [x1, y1], [x0, y1]])
    return [fill_poly(np.zeros((scene.size, scene.size), np.uint8), box, 1) > 0]


def tortuous_aorta(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """The wavy descending aorta and prominent knob (drawn by the anatomy)."""
    aorta = np.asarray(scene.marks["aorta"])
    band = draw_line(scene.blank(), aorta, scene.mm(24), 1.0)
    x, y, r = scene.marks["knob"]
    fill_ellipse(band, (x, y), (r, r * 0.9), 0, 1.0)
    return [band > 0.5]


def aortic_calcification(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A thin calcified arc along the rim of the aortic knob."""
    x, y, r = scene.marks["knob"]
    start = rng.uniform(-150, -90)
    t = np.deg2rad(np.linspace(start, start + rng.uniform(50, 110), 16))
    radius = r * rng.uniform(0.8, 0.95)
    arc = np.stack([x + radius * np.cos(t), y + radius * 0.9 * np.sin(t)], axis=1)
    layer = draw_line(scene.blank(), arc, max(1.0, scene.mm(rng.uniform(1.5, 3.0))), 1.0)
    scene.bone += blur(layer, 0.5) * rng.uniform(1.5, 2.5)
    return [layer > 0.5]


def hernia(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A hiatal hernia: a retrocardiac round opacity with an air-fluid level."""
    cx = scene.marks["cx"]
    dome = max(scene.marks["dome_y"])
    r = scene.mm(rng.uniform(22, 40))
    centre = (cx + scene.mm(rng.uniform(0, 25)), dome - r * rng.uniform(0.6, 1.0))
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    poly = np.stack([centre[0] + r * np.cos(t), centre[1] + r * 0.85 * np.sin(t)], axis=1)
    mask = stamp(scene, scene.soft, poly, rng.uniform(1.5, 2.5), scene.mm(2.0), rounded=False)
    gas = scene.blank()
    stamp(scene, gas, poly, 1.0, 0.8, rounded=False)
    gas[int(centre[1] - r * rng.uniform(-0.1, 0.4)) :, :] = 0  # gas above the fluid level
    scene.air += gas * rng.uniform(3.0, 5.0)
    return [mask]


def fracture(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """A rib fracture: the rib broken with a gap and a step between its two pieces."""
    ribs = [r for r in scene.marks["ribs"] if r["kind"] == "posterior" and 2 <= r["index"] <= 8]
    rib = ribs[int(rng.integers(len(ribs)))]
    points = rib["points"]
    k = int(rng.integers(len(points) // 3, len(points) - 4))
    tangent = points[k + 1] - points[k - 1]
    tangent /= np.linalg.norm(tangent)
    normal = np.array([-tangent[1], tangent[0]])
    step = normal * rib["width"] * rng.uniform(0.3, 0.6) * rng.choice([-1, 1])
    gap = max(
        1,
        int(
            round(
                scene.mm(rng.uniform(1.5, 3.0))
                / max(1e-6, float(np.linalg.norm(points[1] - points[0])))
            )
        ),
    )
    rib["breaks"] = (k, gap, step)
    site = points[k] + tangent * gap * 0.5 * np.linalg.norm(points[1] - points[0])
    r = rib["width"] * 0.9
    disc = fill_ellipse(np.zeros((scene.size, scene.size), np.uint8), tuple(site), (r, r), 0, 1)
    return [disc > 0]


def _tube(scene: Scene, path: np.ndarray, width_mm: float, density: float) -> np.ndarray:
    """A radiopaque tube along ``path``: faint walls with a dense marker stripe."""
    walls = draw_line(scene.blank(), path, scene.mm(width_mm), 0.3)
    stripe = draw_line(scene.blank(), path, max(1.0, scene.mm(1.2)), 1.0)
    layer = np.maximum(walls, stripe)
    scene.bone += blur(layer, 0.5) * density
    return layer > 0.3


def _ett(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    trachea = np.asarray(scene.marks["trachea"])
    carina_y = scene.marks["carina"][1]
    tip_y = carina_y - scene.mm(rng.uniform(25, 70))
    path = trachea[trachea[:, 1] <= tip_y]
    path = np.vstack(
        [[path[0, 0], -5.0], path, [[np.interp(tip_y, trachea[:, 1], trachea[:, 0]), tip_y]]]
    )
    return [_tube(scene, path, rng.uniform(7, 9), rng.uniform(5.0, 7.0))]


def _ng_tube(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    cx = scene.marks["cx"]
    x_stom, y_stom, _ = scene.marks["stomach"]
    dome = max(scene.marks["dome_y"])
    x_eso = cx + scene.mm(rng.uniform(2, 10))
    path = bezier(
        np.array(
            [
                [x_eso - scene.mm(8), -5.0],
                [x_eso, dome * 0.5],
                [x_eso, dome],
                [x_stom, y_stom + scene.mm(rng.uniform(10, 40))],
            ]
        ),
        40,
    )
    return [_tube(scene, path, rng.uniform(3, 5), rng.uniform(4.0, 6.0))]


def _central_line(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    cx, thorax_hw = scene.marks["cx"], scene.marks["thorax_hw"]
    clav_y = scene.marks["clavicle_y"]
    heart_top = float(np.asarray(scene.marks["heart_poly"])[:, 1].min())
    sign = -1 if rng.uniform() < 0.65 else 1
    entry = (cx + sign * thorax_hw * rng.uniform(0.5, 0.8), clav_y + scene.mm(rng.uniform(0, 15)))
    svc_x = cx - scene.mm(rng.uniform(12, 22))
    tip = (svc_x + scene.mm(rng.normal(0, 3)), heart_top + scene.mm(rng.uniform(-10, 25)))
    path = bezier(
        np.array(
            [
                entry,
                (svc_x + sign * scene.mm(25), entry[1] + scene.mm(8)),
                (svc_x, entry[1] + scene.mm(30)),
                tip,
            ]
        ),
        30,
    )
    return [_tube(scene, path, 2.5, rng.uniform(4.0, 6.0))]


def _pacemaker(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    cx, thorax_hw = scene.marks["cx"], scene.marks["thorax_hw"]
    clav_y = scene.marks["clavicle_y"]
    sign = 1 if rng.uniform() < 0.7 else -1
    centre = (
        cx + sign * thorax_hw * rng.uniform(0.45, 0.7),
        clav_y + scene.mm(rng.uniform(25, 45)),
    )
    w, h = scene.mm(rng.uniform(40, 52)), scene.mm(rng.uniform(36, 46))
    layer = scene.blank()
    box = cv2.boxPoints(((centre[0], centre[1]), (w, h), rng.uniform(-20, 20)))
    fill_poly(layer, box, 1.0)
    heart = np.asarray(scene.marks["heart_poly"])
    apex = heart[np.argmax(heart[:, 0] + heart[:, 1])]
    svc = (cx - scene.mm(15), heart[:, 1].min() - scene.mm(20))
    leads = [
        bezier(
            np.array(
                [
                    centre,
                    (centre[0], centre[1] + scene.mm(30)),
                    svc,
                    (apex[0] - scene.mm(15), apex[1] - scene.mm(10)),
                ]
            ),
            40,
        )
    ]
    if rng.uniform() < 0.6:
        leads.append(
            bezier(np.array([centre, svc, (svc[0] - scene.mm(10), svc[1] + scene.mm(45))]), 30)
        )
    draw_lines(layer, leads, max(1.0, scene.mm(1.5)), 1.0)
    scene.bone += blur(layer, 0.5) * rng.uniform(5.0, 8.0)
    return [layer > 0.3]


def _ecg_leads(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    layer = scene.blank()
    pads = []
    body = np.asarray(scene.marks["body_mask"])
    ys, xs = np.nonzero(body)
    for _ in range(int(rng.integers(2, 5))):
        i = int(rng.integers(len(xs)))
        c = (float(xs[i]), float(ys[i]))
        fill_ellipse(layer, c, (scene.mm(6), scene.mm(6)), 0, 0.35)
        fill_ellipse(layer, c, (scene.mm(2), scene.mm(2)), 0, 1.0)
        pads.append(fill_ellipse(np.zeros_like(layer), c, (scene.mm(6), scene.mm(6)), 0, 1.0) > 0.5)
        end = (
            c[0] + scene.mm(rng.uniform(-80, 80)),
            -5.0 if rng.uniform() < 0.5 else scene.size + 5.0,
        )
        wire = bezier(
            np.array([c, (c[0] + scene.mm(rng.normal(0, 40)), (c[1] + end[1]) / 2), end]), 20
        )
        draw_line(layer, wire, max(1.0, scene.mm(0.8)), 0.6)
    scene.bone += blur(layer, 0.5) * rng.uniform(3.0, 4.5)
    return pads  # one box per electrode; the wires run off the film


def support_devices(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """One to four of: endotracheal tube, nasogastric tube, central line, pacemaker, ECG leads."""
    kinds = [
        (_ett, 0.45),
        (_ng_tube, 0.4),
        (_central_line, 0.45),
        (_pacemaker, 0.15),
        (_ecg_leads, 0.3),
    ]
    chosen = [fn for fn, p in kinds if rng.uniform() < p]
    if not chosen:
        chosen = [kinds[int(rng.integers(len(kinds)))][0]]
    return [mask for fn in chosen for mask in fn(scene, rng)]

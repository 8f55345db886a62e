"""Procedural chest anatomy: body, lungs from real outlines, heart, mediastinum, spine, ribs, clavicles.

:func:`build_anatomy` draws one patient into a :class:`~fpsm_core.sim.scene.Scene` and records the
landmarks that findings need (hila, domes, heart, aortic knob, ribs...). Shape, size, pose and
habitus vary per case; the few labels that change anatomy rather than add to it (Cardiomegaly,
Enlarged Cardiomediastinum, Emphysema, Tortuous Aorta) are honoured here. Every random number is
drawn in the same order whatever the labels, so toggling a label changes only what it must.
Ribs are recorded as polylines and drawn by :func:`draw_ribs` after the findings, so that a rib
fracture can break one of them.
"""

from __future__ import annotations

import cv2
import numpy as np

from fpsm_core.sim.assets import lung_templates
from fpsm_core.sim.scene import (
    Scene,
    bezier,
    blur,
    draw_line,
    draw_lines,
    fill_ellipse,
    fill_poly,
    smooth_noise,
)


def _row_extent(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the first and last set column of a mask (NaN where the row is empty)."""
    any_row = mask.any(axis=1)
    first = np.where(any_row, mask.argmax(axis=1), np.nan).astype(np.float64)
    last = np.where(any_row, mask.shape[1] - 1 - mask[:, ::-1].argmax(axis=1), np.nan)
    return first, last.astype(np.float64)


def _fill_rows(values: np.ndarray) -> np.ndarray:
    """Carry the nearest defined value into NaN rows (above the apex, below the bases)."""
    idx = np.arange(len(values))
    ok = ~np.isnan(values)
    return np.interp(idx, idx[ok], values[ok]) if ok.any() else np.zeros_like(values)


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _body(
    scene: Scene,
    rng: np.random.Generator,
    cx: float,
    thorax_hw: float,
    apex_y: float,
    lung_h: float,
) -> None:
    """Soft tissue of neck, shoulders, arms, chest wall and abdomen (elliptic cross-sections)."""
    s = scene.size
    # The body is smooth: compute it on a half-resolution grid (in full-resolution units).
    n = s // 2 if s >= 128 else s
    grid = (np.arange(n, dtype=np.float32) + 0.5) * (s / n) - 0.5
    y = grid[:, None]
    dx = np.abs(grid[None, :] - cx)
    wall = scene.mm(rng.uniform(14, 34))  # chest-wall soft tissue outside the ribs
    thick = rng.uniform(19, 25)
    neck_hw = scene.mm(rng.uniform(48, 60))
    shoulder_y = apex_y - scene.mm(rng.uniform(30, 60))
    slope = scene.mm(rng.uniform(60, 100))
    axilla_y = apex_y + 0.3 * lung_h
    arm_end = axilla_y + lung_h * rng.uniform(0.0, 0.35)
    waist = rng.uniform(0.86, 1.0)
    # The chest wall follows the rib cage, i.e. the lungs' lateral edges, smoothed.
    lateral = np.maximum(cx - scene.marks["lung_left_x"], scene.marks["lung_right_x"] - cx)
    lateral = np.maximum.accumulate(lateral)  # below its widest level the cage does not narrow
    kernel = np.ones(max(1, int(scene.mm(40)))) / max(1, int(scene.mm(40)))
    lateral = np.convolve(np.pad(lateral, len(kernel), mode="edge"), kernel, "same")[
        len(kernel) : -len(kernel)
    ]
    cage = np.maximum(np.interp(grid, np.arange(s), lateral), 0.7 * thorax_hw)[:, None]
    chest_hw = (cage + wall) * (
        1 - (1 - waist) * _smoothstep((y - apex_y - lung_h) / (0.4 * lung_h))
    )
    chest = thick * np.sqrt(np.clip(1.0 - (dx / chest_hw) ** 2, 0.0, 1.0)) * (y >= shoulder_y)
    abdomen = 1 + 0.12 * _smoothstep((y - apex_y - 0.9 * lung_h) / (0.3 * lung_h))
    chest = chest * abdomen
    neck = 0.6 * thick * np.sqrt(np.clip(1.0 - (dx / neck_hw) ** 2, 0.0, 1.0))
    # Shoulders: the trapezius slopes from the neck to the shoulder joints.
    joint = thorax_hw + wall + scene.mm(rng.uniform(5, 25))
    outline = neck_hw + (joint - neck_hw) * _smoothstep((y - shoulder_y) / slope)
    shoulders = 0.75 * thick * np.sqrt(np.clip(1.0 - (dx / outline) ** 2, 0.0, 1.0))
    shoulders = shoulders * (y >= shoulder_y) * (1 - _smoothstep((y - axilla_y) / scene.mm(40)))
    body = np.maximum(np.maximum(chest, neck), shoulders).astype(np.float32)
    if n != s:
        body = cv2.resize(body, (s, s), interpolation=cv2.INTER_LINEAR)
    # Arms hang down and out from the shoulder joints, leaving the film at its upper corners.
    arms = scene.blank()
    for sign in (-1, 1):
        top = (cx + sign * (joint - scene.mm(30)), shoulder_y + 0.5 * slope)
        bottom = (cx + sign * (joint + scene.mm(rng.uniform(40, 130))), arm_end + lung_h)
        draw_line(arms, np.array([top, bottom]), scene.mm(rng.uniform(80, 100)), 1.0)
    arms = np.sqrt(blur(arms, scene.mm(14))) * rng.uniform(8, 11)
    body = np.maximum(body, arms)
    scene.soft += blur(body, scene.mm(2.0))
    scene.marks["body_mask"] = (body > 0.5).astype(np.uint8)
    scene.marks["wall_mm"] = wall * scene.spacing


def _lungs(
    scene: Scene,
    rng: np.random.Generator,
    cx: float,
    thorax_hw: float,
    apex_y: float,
    lung_h: float,
    emphysema: bool,
) -> None:
    templates = lung_templates()
    right, left = templates[int(rng.integers(len(templates)))]
    lung_w = 2 * thorax_hw
    x0 = cx - thorax_hw + scene.mm(rng.normal(0, 3))
    polys = []
    for k, outline in enumerate((right, left)):
        pts = outline.astype(np.float64).copy()
        if emphysema:  # hyperinflation: flatter, lower domes
            base = np.clip((pts[:, 1] - 0.6) / 0.4, 0, 1)
            pts[:, 1] = pts[:, 1] + 0.1 * base * (1 - np.abs(pts[:, 1] - 1.0))
        sx = lung_w * rng.uniform(0.97, 1.03)
        sy = lung_h * (rng.uniform(0.97, 1.0) if k == 0 else rng.uniform(0.99, 1.03))
        poly = np.stack([x0 + pts[:, 0] * sx, apex_y + pts[:, 1] * sy], axis=1)
        polys.append(poly)
    scene.lungs = polys
    mask = np.zeros((scene.size, scene.size), np.uint8)
    for poly in polys:
        fill_poly(mask, poly, 1)
    scene.lung_mask = mask
    side_masks = []
    for poly in polys:
        m = np.zeros_like(mask)
        fill_poly(m, poly, 1)
        side_masks.append(m)
    scene.marks["lung_sides"] = side_masks
    first, last = _row_extent(mask.astype(bool))
    scene.marks["lung_left_x"] = _fill_rows(first)
    scene.marks["lung_right_x"] = _fill_rows(last)
    # Dome top and costophrenic angle per side, read off each outline.
    domes, cps = [], []
    for poly in polys:
        xs = poly[:, 0]
        mid = np.abs(xs - xs.mean()) < 0.2 * (xs.max() - xs.min())
        domes.append(float(poly[mid, 1].max()))
        cps.append(float(poly[:, 1].max()))
    scene.marks["dome_y"] = domes
    scene.marks["cp_y"] = cps
    dist = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    crisp = 1.0 - np.exp(-dist / max(1.0, scene.mm(7)))
    deep = 1.0 - np.exp(-dist / max(1.0, scene.mm(45)))
    air_depth = rng.uniform(13, 16) * (1.25 if emphysema else 1.0)
    air = air_depth * (0.5 * crisp + 0.5 * deep)
    scene.air += blur(air.astype(np.float32), scene.mm(0.8))
    texture = smooth_noise(rng, scene.size, scene.mm(6)) * 0.35
    scene.soft += texture * mask


def _heart_and_mediastinum(
    scene: Scene,
    rng: np.random.Generator,
    cx: float,
    thorax_hw: float,
    apex_y: float,
    lung_h: float,
    labels: dict[str, bool],
    ap: bool,
) -> None:
    u_ctr, u_right = rng.uniform(), rng.uniform(0.26, 0.36)
    ctr = 0.53 + 0.13 * u_ctr if labels["Cardiomegaly"] else 0.40 + 0.08 * u_ctr
    if ap and not labels["Cardiomegaly"]:
        ctr = min(0.49, ctr * 1.06)
    width = ctr * 2 * thorax_hw
    enlarged = labels["Enlarged Cardiomediastinum"]
    med_hw = scene.mm(rng.uniform(24, 32)) * (rng.uniform(1.45, 1.8) if enlarged else 1.0)
    right_b, left_b = cx - width * u_right, cx + width * (1 - u_right)  # image-left / image-right
    dome = max(scene.marks["dome_y"])
    bottom = dome + scene.mm(rng.uniform(2, 8))
    top = apex_y + lung_h * rng.uniform(0.36, 0.44)
    h = bottom - top
    r1, r2, l1, l2 = rng.uniform(0.25, 0.45, 4)
    right_border = bezier(
        np.array(
            [
                [cx - med_hw * 0.8, top],
                [right_b + 0.02 * width, top + r1 * h],
                [right_b - 0.02 * width, top + (0.55 + r2 * 0.5) * h],
                [right_b + 0.1 * width, bottom],
            ]
        ),
        20,
    )
    left_border = bezier(
        np.array(
            [
                [cx + med_hw * 0.7, top - 0.05 * h],
                [cx + (0.25 + 0.3 * l1) * width, top + 0.05 * h],
                [left_b + 0.04 * width, top + (0.45 + 0.4 * l2) * h],
                [left_b - 0.12 * width, bottom + 0.05 * h],
            ]
        ),
        20,
    )
    heart = np.vstack([right_border, left_border[::-1]])
    # Scale about the centre so that the horizontal extent is exactly the drawn CTR (a label).
    mid = (heart[:, 0].max() + heart[:, 0].min()) / 2
    heart[:, 0] = mid + (heart[:, 0] - mid) * width / (heart[:, 0].max() - heart[:, 0].min())
    heart_mask = np.zeros((scene.size, scene.size), np.float32)
    fill_poly(heart_mask, heart, 1.0)
    scene.marks["heart_poly"] = heart
    scene.marks["heart_mask"] = heart_mask > 0.5
    scene.marks["ctr"] = float(width / (2 * thorax_hw))
    hy = heart[:, 1]
    # Upper mediastinum and aortic knob.
    top = apex_y - scene.mm(40)
    heart_top = float(hy.min())
    med = np.array(
        [
            [cx - med_hw * 1.05, top],
            [cx + med_hw * 0.95, top],
            [cx + med_hw, heart_top + scene.mm(20)],
            [cx - med_hw, heart_top + scene.mm(20)],
        ]
    )
    med_mask = np.zeros_like(heart_mask)
    fill_poly(med_mask, med, 1.0)
    knob_r = scene.mm(rng.uniform(14, 19)) * (1.25 if labels["Tortuous Aorta"] else 1.0)
    knob = (cx + med_hw - knob_r * 0.2, apex_y + lung_h * rng.uniform(0.2, 0.26), knob_r)
    fill_ellipse(med_mask, knob[:2], (knob_r, knob_r * 0.9), 0, 1.0)
    scene.marks["knob"] = knob
    scene.marks["mediastinum_box"] = (cx - med_hw, top, cx + med_hw + 2 * knob_r, heart_top)
    # Descending aorta: a soft band just right of the spine, wavy when tortuous.
    n = 24
    yy = np.linspace(knob[1], dome, n)
    sway = np.sin(np.linspace(0, np.pi * rng.uniform(1.2, 2.0), n)) * scene.mm(rng.uniform(14, 24))
    xa = knob[0] - knob_r * 0.3 + (sway if labels["Tortuous Aorta"] else sway * 0.12)
    aorta = np.stack([xa, yy], axis=1)
    scene.marks["aorta"] = aorta
    aorta_mask = draw_line(np.zeros_like(heart_mask), aorta, scene.mm(24), 1.0)
    soft_heart = np.sqrt(blur(heart_mask, scene.mm(7))) * blur(heart_mask, scene.mm(1.2))
    soft_med = blur(np.maximum(med_mask, aorta_mask * 0.5), scene.mm(1.5))
    scene.air *= 1.0 - 0.84 * np.maximum(soft_heart, soft_med)
    scene.soft += 0.2 * soft_heart + 0.3 * soft_med
    scene.marks["carina"] = (
        cx + scene.mm(rng.normal(0, 3)),
        knob[1] + scene.mm(rng.uniform(18, 30)),
    )


def _airways(scene: Scene, rng: np.random.Generator, cx: float) -> None:
    carina = scene.marks["carina"]
    cxn, cy = carina
    width = scene.mm(rng.uniform(15, 20))
    trachea = np.array([[cx + scene.mm(rng.normal(0, 2)), 0.0], [cx, cy * 0.6], [cxn, cy]])
    layer = scene.blank()
    draw_line(layer, bezier(trachea, 12), width, 1.0)
    hila = []
    for sign in (-1, 1):
        end = (
            cxn + sign * scene.mm(rng.uniform(38, 48)),
            cy + scene.mm(rng.uniform(22, 32) + (6 if sign < 0 else 0)),
        )
        bronchus = np.array([[cxn, cy], [cxn + sign * scene.mm(10), cy + scene.mm(8)], end])
        draw_line(layer, bezier(bronchus, 8), width * 0.62, 1.0)
        hila.append(end)
    scene.marks["hila"] = hila
    scene.marks["trachea"] = bezier(trachea, 12)
    scene.air += blur(layer, scene.mm(1.5)) * rng.uniform(3.0, 4.0)


def _rotate(d: np.ndarray, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([d[:, 0] * c - d[:, 1] * s, d[:, 0] * s + d[:, 1] * c], axis=1)


def _vessel_tree(scene: Scene, rng: np.random.Generator) -> None:
    """Branching pulmonary vessels from each hilum, thinning towards the periphery.

    Grown one generation at a time for all branches at once: seven trunks per hilum fanning
    out over the lung, each splitting in two four times.
    """
    hila = np.asarray(scene.marks["hila"], np.float64)
    angles = np.deg2rad(np.tile(np.linspace(-150, 150, 7), 2) + rng.normal(0, 10, 14))
    outward = np.repeat([-1.0, 1.0], 7)
    d = np.stack([outward * np.abs(np.sin(angles)) * 1.2, -np.cos(angles)], axis=1)
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    start = np.repeat(hila, 7, axis=0)
    width: np.ndarray = rng.uniform(6, 9, 14) / scene.spacing
    length: np.ndarray = rng.uniform(26, 36, 14) / scene.spacing
    segments, widths = [], []
    for depth in range(5):
        d = _rotate(d, rng.normal(0, 0.15, len(d)))
        end = start + d * length[:, None]
        segments.append(np.stack([start, end], axis=1))
        widths.append(width)
        if depth == 4:
            break
        spread = np.deg2rad(rng.uniform(18, 36, (len(d), 2))) * [-1, 1]
        d = np.concatenate([_rotate(d, spread[:, 0]), _rotate(d, spread[:, 1])])
        start = np.concatenate([end, end])
        width = np.concatenate([width, width]) * 0.68
        length = np.concatenate([length, length]) * rng.uniform(0.62, 0.8, 2 * len(length))
    all_segments = np.concatenate(segments)
    thickness = np.maximum(1, np.rint(np.concatenate(widths))).astype(int)
    layer = scene.blank()
    for t in sorted(set(thickness.tolist()), reverse=True):
        lines = list(all_segments[thickness == t])
        draw_lines(layer, lines, t, min(1.0, t / scene.mm(6)) * 0.5 + 0.5)
    layer = blur(layer, scene.mm(1.0))
    scene.vessels += layer * scene.lung_mask * 1.8


def _spine(scene: Scene, rng: np.random.Generator, cx: float, apex_y: float, lung_h: float) -> None:
    layer = scene.blank()
    body_hw = scene.mm(rng.uniform(20, 25))
    level = scene.mm(rng.uniform(22, 26))
    y = apex_y - scene.mm(60)
    while y < scene.size:
        grow = 1 + 0.35 * np.clip((y - apex_y) / lung_h, 0, 1.3)
        h = level * grow
        fill_ellipse(layer, (cx, y + h / 2), (body_hw * grow**0.5, h * 0.42), 0, 1.0)
        for sign in (-1, 1):  # pedicles
            fill_ellipse(
                layer,
                (cx + sign * body_hw * 0.8 * grow**0.5, y + h * 0.35),
                (scene.mm(4), scene.mm(6)),
                0,
                1.6,
            )
        fill_ellipse(
            layer, (cx, y + h * 0.55), (scene.mm(4), scene.mm(7)), 0, 1.3
        )  # spinous process
        y += h
    scene.bone += blur(layer, scene.mm(1.0)) * rng.uniform(0.6, 0.9)


def _ribs(scene: Scene, rng: np.random.Generator, cx: float, apex_y: float, lung_h: float) -> None:
    """Record posterior and anterior rib paths (drawn later by :func:`draw_ribs`)."""
    gap = lung_h / rng.uniform(8.6, 9.4)
    left_x, right_x = scene.marks["lung_left_x"], scene.marks["lung_right_x"]
    ribs = []
    s = scene.size
    for i in range(10):
        y0 = apex_y + (i - 0.9) * gap
        for sign in (-1, 1):
            x_med = cx + sign * scene.mm(24)
            y_lat = y0 + 0.3 * gap
            row = int(np.clip(y_lat, 0, s - 1))
            wall = left_x[row] if sign < 0 else right_x[row]
            x_lat = wall + sign * scene.mm(4)
            reach = x_lat - x_med
            post = bezier(
                np.array(
                    [
                        [x_med, y0],
                        [x_med + 0.35 * reach, y0 - 1.3 * gap],
                        [x_lat + 0.1 * reach, y0 - 0.6 * gap],
                        [x_lat, y_lat],
                    ]
                ),
                28,
            )
            ribs.append(
                {
                    "side": sign,
                    "index": i,
                    "kind": "posterior",
                    "points": post,
                    "width": scene.mm(rng.uniform(8, 10)) * (0.8 if i == 0 else 1.0),
                }
            )
            if i < 6:
                x_end = cx + sign * abs(reach) * rng.uniform(0.25, 0.4)
                y_end = y_lat + gap * rng.uniform(1.8, 2.3)
                ant = bezier(
                    np.array(
                        [
                            [x_lat, y_lat],
                            [x_lat - 0.05 * reach, y_lat + 0.5 * gap],
                            [x_end + 0.45 * (x_lat - x_end), y_end - 0.5 * gap],
                            [x_end, y_end],
                        ]
                    ),
                    24,
                )
                ribs.append(
                    {
                        "side": sign,
                        "index": i,
                        "kind": "anterior",
                        "points": ant,
                        "width": scene.mm(rng.uniform(9, 12)),
                    }
                )
    scene.marks["ribs"] = ribs
    scene.marks["rib_gap"] = gap


def _band(points: np.ndarray, half_width: np.ndarray) -> np.ndarray:
    """The outline of a band of varying half-width around a polyline (a closed polygon)."""
    tangent = np.gradient(points, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-9)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1) * half_width[:, None]
    return np.vstack([points + normal, (points - normal)[::-1]])


def _rib_profile(kind: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative half-width and density along a rib, from its medial (posterior: spinal) end."""
    t = np.linspace(0.0, 1.0, n)
    if kind == "posterior":  # a slim neck at the spine, full width over the lung
        return 0.5 * (0.65 + 0.35 * np.clip(t / 0.25, 0, 1)), np.ones(n)
    # Anterior ribs fade towards the sternum, where the unseen costal cartilage takes over.
    return 0.5 * (1.0 + 0.15 * t), 1.0 - 0.75 * np.clip((t - 0.45) / 0.55, 0, 1)


def draw_ribs(scene: Scene) -> None:
    """Draw the recorded ribs (tapered bands with brighter cortex) into the bone layer.

    A rib with ``breaks`` (set by the fracture painter: point index, gap in points, step in
    pixels) is drawn in two pieces, the far one shifted by the step.
    """
    # Below the domes the ribs overlie the dense upper abdomen and fade from view.
    y = np.arange(scene.size, dtype=np.float64)
    dome = max(scene.marks["dome_y"])
    fade = (1.0 - 0.6 * np.clip((y - dome) / scene.marks["rib_gap"], 0, 1)).astype(np.float32)
    edge = max(1.0, scene.mm(1.0))
    total = scene.blank()
    for kind, density in (("posterior", 2.0), ("anterior", 1.0)):
        marrow, cortex = scene.blank(), scene.blank()
        for rib in scene.marks["ribs"]:
            if rib["kind"] != kind:
                continue
            points = rib["points"]
            half, weight = _rib_profile(kind, len(points))
            half = half * rib["width"]
            pieces = [(0, len(points), np.zeros(2))]
            if "breaks" in rib:
                k, gap, step = rib["breaks"]
                pieces = [(0, k + 1, np.zeros(2)), (k + gap, len(points), np.asarray(step))]
            for a, b, shift in pieces:
                band = _band(points[a:b] + shift, half[a:b])
                if kind == "posterior":
                    fill_poly(marrow, band, density)
                else:  # in runs, so that the density can fall along the rib
                    m = b - a
                    step_ = max(2, m // 3)
                    for c in range(0, m - 1, step_):
                        d = min(m, c + step_ + 1)
                        run = np.vstack([band[c:d], band[2 * m - d : 2 * m - c]])
                        fill_poly(marrow, run, density * float(weight[a + c]))
                cv2.polylines(
                    cortex,
                    [np.round(band * 16).astype(np.int32).reshape(-1, 1, 2)],
                    True,
                    density * float(weight[a:b].mean()),
                    max(1, int(round(edge))),
                    cv2.LINE_AA,
                    4,
                )
        total += 0.7 * marrow + 0.5 * cortex  # posterior and anterior ribs add up where they cross
    scene.bone += blur(total, scene.mm(0.6)) * fade[:, None]


def _shoulder_girdle(
    scene: Scene, rng: np.random.Generator, cx: float, thorax_hw: float, apex_y: float, ap: bool
) -> None:
    layer = scene.blank()
    clav_y = apex_y + scene.mm(rng.uniform(4, 20)) - (scene.mm(12) if ap else 0)
    for sign in (-1, 1):
        med = (cx + sign * scene.mm(rng.uniform(14, 22)), clav_y + scene.mm(8))
        lat = (
            cx + sign * (thorax_hw * rng.uniform(0.85, 1.0) + scene.mm(10)),
            clav_y - scene.mm(rng.uniform(15, 35) if not ap else rng.uniform(0, 12)),
        )
        reach = lat[0] - med[0]
        clav = bezier(
            np.array(
                [
                    med,
                    (med[0] + 0.35 * reach, med[1] + scene.mm(6)),
                    (med[0] + 0.65 * reach, lat[1] + scene.mm(4)),
                    lat,
                ]
            ),
            24,
        )
        draw_line(layer, clav, scene.mm(13), 1.0)
        draw_line(layer, clav, scene.mm(7), 0.65)
        head = (
            cx + sign * (thorax_hw + scene.mm(rng.uniform(40, 55))),
            clav_y + scene.mm(rng.uniform(10, 25)),
        )
        fill_ellipse(layer, head, (scene.mm(24), scene.mm(26)), 0, 0.8)
        # Scapula: a faint triangle over the upper lateral chest.
        tip = (
            cx + sign * (thorax_hw * rng.uniform(0.72, 0.85)),
            apex_y + scene.mm(rng.uniform(110, 140)),
        )
        scap = np.array(
            [
                lat,
                (cx + sign * thorax_hw * 0.62, apex_y + scene.mm(10)),
                tip,
                (cx + sign * (thorax_hw + scene.mm(10)), apex_y + scene.mm(60)),
            ]
        )
        scap_layer = fill_poly(scene.blank(), scap, 0.35 if ap else 0.2)
        layer = np.maximum(layer, scap_layer)
    scene.marks["clavicle_y"] = clav_y
    scene.bone += blur(layer, scene.mm(0.8)) * 1.6


def _abdomen(scene: Scene, rng: np.random.Generator) -> None:
    """Gastric bubble under the left dome (image right)."""
    right_lung = scene.lungs[1]
    dome = scene.marks["dome_y"][1]
    x = float(np.percentile(right_lung[:, 0], 55))
    y = dome + scene.mm(rng.uniform(18, 30))
    axes = (scene.mm(rng.uniform(18, 32)), scene.mm(rng.uniform(10, 18)))
    bubble = fill_ellipse(scene.blank(), (x, y), axes, rng.uniform(-15, 15), 1.0)
    bubble[int(y + axes[1] * rng.uniform(0, 0.5)) :, :] = 0  # air-fluid level
    scene.air += blur(bubble, scene.mm(1.5)) * rng.uniform(2, 4)
    scene.marks["stomach"] = (x, y, axes)


def _breasts(scene: Scene, rng: np.random.Generator, cx: float, thorax_hw: float) -> None:
    domes = scene.marks["dome_y"]
    layer = scene.blank()
    for side, sign in enumerate((-1, 1)):
        centre = (
            cx + sign * thorax_hw * rng.uniform(0.45, 0.65),
            domes[side] - scene.mm(rng.uniform(10, 35)),
        )
        fill_ellipse(
            layer, centre, (scene.mm(rng.uniform(60, 80)), scene.mm(rng.uniform(40, 55))), 0, 1.0
        )
    scene.soft += blur(layer, scene.mm(8)) * rng.uniform(1.5, 3.5)


def build_anatomy(
    scene: Scene, rng: np.random.Generator, labels: dict[str, bool], ap: bool
) -> None:
    """Draw one patient's normal anatomy (plus anatomy-changing labels) into ``scene``."""
    s = scene.size
    cx = s / 2 + scene.mm(rng.normal(0, 6))
    thorax_hw = min(scene.mm(rng.uniform(128, 160)), 0.42 * s)
    lung_h = 2 * thorax_hw * rng.uniform(0.78, 0.95) * (1.12 if labels["Emphysema"] else 1.0)
    apex_y = s * rng.uniform(0.08, 0.14)
    lung_h = min(lung_h, 0.84 * s - apex_y)  # keep the domes and the upper abdomen on the film
    female = rng.uniform() < 0.5
    scene.marks.update(cx=cx, thorax_hw=thorax_hw, lung_h=lung_h, apex_y=apex_y)
    _lungs(scene, rng, cx, thorax_hw, apex_y, lung_h, labels["Emphysema"])
    _body(scene, rng, cx, thorax_hw, apex_y, lung_h)
    _heart_and_mediastinum(scene, rng, cx, thorax_hw, apex_y, lung_h, labels, ap)
    _airways(scene, rng, cx)
    _vessel_tree(scene, rng)
    _spine(scene, rng, cx, apex_y, lung_h)
    _ribs(scene, rng, cx, apex_y, lung_h)
    _shoulder_girdle(scene, rng, cx, thorax_hw, apex_y, ap)
    _abdomen(scene, rng)
    if female:
        _breasts(scene, rng, cx, thorax_hw)

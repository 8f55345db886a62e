"""Simulate one chest radiograph with exact ground truth: :func:`simulate_case`.

A case is drawn in four steps, each from its own random stream derived from the case seed: labels
(the copula of :mod:`fpsm_core.sim.config`), anatomy, findings (one stream per finding, so that
turning a finding on or off leaves the rest of the picture alone) and acquisition (pose, exposure,
processing, noise). The line-integral map of the scene goes through a film-like characteristic
curve after the unsharp-mask equalisation that digital systems apply, and the result is a float32
image in display sense (0 = black air, 1 = white bone) with the finding masks and boxes in the
same pixel grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from fpsm_core.labels import LABEL_INDEX, LABELS
from fpsm_core.sim.anatomy import build_anatomy, draw_ribs
from fpsm_core.sim.config import LabelModel, SimConfig, SimConfigError
from fpsm_core.sim.findings import PAINTERS
from fpsm_core.sim.scene import blur, new_scene, smooth_noise

STREAM_LABELS, STREAM_ANATOMY, STREAM_ACQUISITION = 0, 1, 2
STREAM_FINDING_BASE = 100


@dataclass(frozen=True)
class Box:
    """One finding instance's bounding box in pixels (``x1``/``y1`` exclusive)."""

    label: str
    x0: int
    y0: int
    x1: int
    y1: int


@dataclass(frozen=True)
class SimCase:
    """A simulated radiograph and its ground truth.

    Attributes:
        image: float32 (size, size) in display sense, 0..1.
        spacing_mm: pixel spacing (row, column) in millimetres.
        labels: 26 booleans in ``fpsm_core.labels.LABELS`` order.
        boxes: one :class:`Box` per finding instance.
        masks: per positive label, a bool mask of its pixels (union of its instances).
        view: ``"PA"`` or ``"AP"``.
        ctr: the cardiothoracic ratio that was drawn (the heart's width over ``2 * thorax_hw``).
        cardiac_span: the heart's rightmost and leftmost border points on the film, image pixels
            (x, y; pixel centres at +0.5), after the pose: where a reader puts the cardiac span.
        thoracic_span: the two inner rib margins (the lungs' outer edges) at the row where the
            lungs are widest, after the pose: the internal thoracic span.
    """

    image: np.ndarray
    spacing_mm: tuple[float, float]
    labels: tuple[bool, ...]
    boxes: tuple[Box, ...]
    masks: Mapping[str, np.ndarray]
    view: str
    ctr: float
    cardiac_span: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    thoracic_span: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (1.0, 0.0))
    film_ctr: float = 0.0
    """The ratio as measured on the film: the horizontal widths of the two spans, before the pose
    rotation (a reader measures horizontally on an upright film; the pose tilts it by ~1.5 deg)."""

    def positive(self) -> list[str]:
        """Names of the positive labels."""
        return [name for name, on in zip(LABELS, self.labels, strict=True) if on]


def _rng(seed: Sequence[int], stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([*seed, stream]))


def _as_seed(seed: int | Sequence[int]) -> tuple[int, ...]:
    return (int(seed),) if isinstance(seed, (int, np.integer)) else tuple(int(s) for s in seed)


_MODELS: dict[int, tuple[SimConfig, LabelModel]] = {}


def _label_model(config: SimConfig) -> LabelModel:
    cached = _MODELS.get(id(config))
    if cached is not None and cached[0] is config:
        return cached[1]
    model = LabelModel.from_config(config)
    _MODELS.clear()
    _MODELS[id(config)] = (config, model)
    return model


def draw_labels(seed: int | Sequence[int], config: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """The labels (bool, ``LABELS`` order) and clinical factor scores of a case seed."""
    return _label_model(config).sample(_rng(_as_seed(seed), STREAM_LABELS))


def _box_of(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def _display(line_integral: np.ndarray, rng: np.random.Generator, spacing: float) -> np.ndarray:
    """Equalise, map through a characteristic curve, add detector noise and blur."""
    size = line_integral.shape[0]
    low = cv2.resize(line_integral, (max(8, size // 8),) * 2, interpolation=cv2.INTER_AREA)
    low = blur(low, max(1.0, 25.0 / (spacing * 8)))
    low = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)
    strength = rng.uniform(0.45, 0.6)
    centre = rng.uniform(11.0, 13.0) - strength * float(low.mean())
    width = rng.uniform(4.3, 5.3)
    # 1 / (1 + exp(-(L - strength * low - centre) / width)), in place and in float32.
    z: np.ndarray = cv2.addWeighted(
        line_integral, -1.0 / width, low, strength / width, centre / width
    )
    np.exp(z, out=z)
    z += 1.0
    image = np.reciprocal(z, out=z)
    quantum = rng.uniform(0.008, 0.02)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    noise *= np.sqrt(image + 0.25)
    image += quantum * noise
    image += rng.uniform(0.003, 0.01) * smooth_noise(rng, size, 2.0, down=2)
    image = blur(image, max(0.3, 0.12 / spacing * 3))
    return np.clip(image, 0.0, 1.0, out=image)


def simulate_case(
    seed: int | Sequence[int], config: SimConfig, labels: Sequence[str] | None = None
) -> SimCase:
    """Simulate one radiograph.

    Args:
        seed: the case seed (an int or a sequence of ints such as ``(dataset_seed, index)``).
        config: the simulation settings; ``config.size`` sets the image side.
        labels: force exactly these positive findings instead of drawing them ("No Finding" is
            derived either way); everything else about the case still follows ``seed``.

    Returns:
        The image, its spacing, labels, boxes and masks.
    """
    key = _as_seed(seed)
    drawn, factors = draw_labels(key, config)
    if labels is not None:
        unknown = set(labels) - set(LABELS)
        if unknown:
            raise SimConfigError(f"Unknown labels {sorted(unknown)}.")
        drawn = np.array([name in labels for name in LABELS])
        others = [n for n in labels if n not in ("No Finding", "Support Devices")]
        drawn[LABEL_INDEX["No Finding"]] = not others
    on = {name: bool(drawn[i]) for i, name in enumerate(LABELS)}
    anatomy_rng = _rng(key, STREAM_ANATOMY)
    acq = _rng(key, STREAM_ACQUISITION)
    fov = acq.uniform(*config.fov_mm)
    spacing = fov / config.size
    icu = factors[0] if labels is None else (1.5 if on["Support Devices"] else 0.0)
    ap = bool(acq.uniform() < config.ap_fraction + (1 - config.ap_fraction) * (icu > 0.6))
    scene = new_scene(config.size, spacing)
    build_anatomy(scene, anatomy_rng, on, ap)
    instances: list[tuple[str, np.ndarray]] = []
    for name, painter in PAINTERS:
        if on[name]:
            for mask in painter(scene, _rng(key, STREAM_FINDING_BASE + LABEL_INDEX[name])):
                instances.append((name, mask))
    draw_ribs(scene)
    line_integral = (
        scene.soft - scene.air + scene.bone + scene.vessels * scene.markings_keep
    ).astype(np.float32)
    # Pose: a small rotation and shift of the whole film, applied to the masks alike.
    angle = acq.normal(0, 1.5)
    shift = acq.normal(0, 0.012, 2) * config.size
    centre = (config.size / 2, config.size / 2)
    warp: np.ndarray = cv2.getRotationMatrix2D(centre, angle, 1.0)
    warp[:, 2] += shift
    dsize = (config.size, config.size)
    line_integral = cv2.warpAffine(
        line_integral, warp, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    image = _display(line_integral, acq, spacing)
    boxes: list[Box] = []
    masks: dict[str, np.ndarray] = {}
    for name, mask in instances:
        moved = cv2.warpAffine(mask.astype(np.uint8), warp, dsize, flags=cv2.INTER_NEAREST) > 0
        if not moved.any() and mask.any():  # a sliver thinner than a pixel: keep it findable
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
            moved = cv2.warpAffine(grown, warp, dsize, flags=cv2.INTER_NEAREST) > 0
        box = _box_of(moved)
        if box is None:
            continue
        boxes.append(Box(name, *box))
        masks[name] = masks[name] | moved if name in masks else moved
    cardiac, thoracic, film_ctr = _ctr_spans(scene.marks["heart_poly"], scene.lung_mask, warp)
    return SimCase(
        image=image,
        spacing_mm=(spacing, spacing),
        labels=tuple(bool(v) for v in drawn),
        boxes=tuple(boxes),
        masks=masks,
        view="AP" if ap else "PA",
        ctr=float(scene.marks["ctr"]),
        cardiac_span=cardiac,
        thoracic_span=thoracic,
        film_ctr=film_ctr,
    )


Span = tuple[tuple[float, float], tuple[float, float]]


def _ctr_spans(heart: np.ndarray, lungs: np.ndarray, warp: np.ndarray) -> tuple[Span, Span, float]:
    """The cardiac and thoracic spans on the film and the CTR they give (no random numbers used).

    OpenCV's coordinates put pixel centres on integers; the spans are returned in image pixels
    (centres at +0.5), moved by the pose ``warp`` like the image.
    """
    right, left = heart[int(np.argmin(heart[:, 0]))], heart[int(np.argmax(heart[:, 0]))]
    widths = np.where(
        lungs.any(axis=1),
        lungs.shape[1] - lungs[:, ::-1].argmax(axis=1) - lungs.argmax(axis=1),
        0,
    )
    row = int(np.argmax(widths))
    first = float(lungs[row].argmax())
    edges = np.array([[first - 0.5, row], [first - 0.5 + float(widths[row]), row]])

    def moved(points: np.ndarray) -> Span:
        out = np.asarray(points, np.float64) @ warp[:, :2].T + warp[:, 2] + 0.5
        return (float(out[0, 0]), float(out[0, 1])), (float(out[1, 0]), float(out[1, 1]))

    cardiac_width = float(left[0] - right[0])
    film_ctr = cardiac_width / float(widths[row]) if widths[row] > 0 else float("nan")
    return moved(np.array([right, left])), moved(edges), film_ctr

"""Checking a composition with the model: does pasting the patch move the finding's evidence?

:func:`check_composition` runs an ensemble once on the original and once on the composite (one
batch of two through :class:`fpsm_core.inference.InferenceService`, so calibration, preprocessing
and device are exactly the viewer's) and reads, per member and per pyramid level and for the
fused map, the pasted class's logit and probability before and after, and the share of that class's
closed-form CAM energy (:mod:`fpsm_core.explain`) inside the pasted box. The CAMs come from the same
forward pass (no backward, no second pass), so the check costs little beyond the two forwards.

A level's "probability" is the sigmoid of that level's logit (the levels' logits add up to the
member's logit; uncalibrated); the fused row is the member itself (its calibrated probability when
the model is calibrated). The ensemble rows average the members' level logits over the members that
have the level, and take the ensemble's mean probability on the fused row. Energy is measured on
Grad-CAM-normalised maps on a grid of the image's aspect (``map_side`` on the long side), the
maps the studio shows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fpsm_core.dadam.errors import DadamError
from fpsm_core.explain.metrics import energy_in_box, scale_boxes
from fpsm_core.explain.result_cams import ENSEMBLE, FUSED, LevelKey, ResultCams
from fpsm_core.labels import LABEL_INDEX

if TYPE_CHECKING:
    from fpsm_core.inference import InferenceService, Result
    from fpsm_core.io.image import XRayImage
    from fpsm_core.model.ensemble import Ensemble

ENSEMBLE_NAME = "ensemble"
DEFAULT_MAP_SIDE = 256
Box4 = tuple[float, float, float, float]


@dataclass(frozen=True)
class LevelCheck:
    """One member's (or the ensemble's) reading of the pasted class at one level, or fused.

    Attributes:
        member: The member's name, or "ensemble".
        level: The paper level number, or "fused".
        logit_before: Logit on the original.
        logit_after: Logit on the composite.
        prob_before: Probability on the original (sigmoid of a level's logit; see the module).
        prob_after: Probability on the composite.
        energy_before: Share of the class's CAM energy inside the box on the original (NaN when
            the map is all zero).
        energy_after: The same on the composite.
    """

    member: str
    level: LevelKey
    logit_before: float
    logit_after: float
    prob_before: float
    prob_after: float
    energy_before: float
    energy_after: float

    @property
    def delta_logit(self) -> float:
        return self.logit_after - self.logit_before

    @property
    def delta_prob(self) -> float:
        return self.prob_after - self.prob_before

    def to_json(self) -> dict[str, Any]:
        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(float(x), 6)

        return {
            "member": self.member,
            "level": self.level,
            "logit_before": num(self.logit_before),
            "logit_after": num(self.logit_after),
            "delta_logit": num(self.delta_logit),
            "prob_before": num(self.prob_before),
            "prob_after": num(self.prob_after),
            "delta_prob": num(self.delta_prob),
            "energy_before": num(self.energy_before),
            "energy_after": num(self.energy_after),
        }


@dataclass(frozen=True, eq=False)
class CheckResult:
    """What the model made of a composition.

    Attributes:
        label: The pasted class.
        class_index: Its index in the model's labels.
        box: The pasted lesion box in image pixels (x0, y0, x1, y1).
        members: Member names, in ensemble order.
        rows: Every (member or "ensemble") x (level or "fused") reading.
        maps: member name or "ensemble" -> level or "fused" -> (original, composite) maps in
            [0, 1] on ``map_shape`` (the image's aspect).
        map_shape: (rows, cols) of the maps.
        model: The model's identity.
        device: Where it ran.
        timing_ms: "forward" (the two forwards, CAMs included) and "readout".
    """

    label: str
    class_index: int
    box: Box4
    members: tuple[str, ...]
    rows: tuple[LevelCheck, ...]
    maps: Mapping[str, Mapping[LevelKey, tuple[np.ndarray, np.ndarray]]]
    map_shape: tuple[int, int]
    model: Mapping[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    timing_ms: Mapping[str, float] = field(default_factory=dict)

    def row(self, member: str = ENSEMBLE_NAME, level: LevelKey = FUSED) -> LevelCheck:
        """One reading (KeyError when that member has no such level)."""
        for r in self.rows:
            if r.member == member and r.level == level:
                return r
        raise KeyError((member, level))

    @property
    def probability_before(self) -> float:
        return self.row().prob_before

    @property
    def probability_after(self) -> float:
        return self.row().prob_after

    def best_level(self, member: str = ENSEMBLE_NAME) -> LevelCheck:
        """The level (not fused) whose composite map puts most energy inside the box."""
        levels = [r for r in self.rows if r.member == member and r.level != FUSED]
        return max(levels, key=lambda r: -1.0 if math.isnan(r.energy_after) else r.energy_after)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "box": [float(v) for v in self.box],
            "members": list(self.members),
            "rows": [r.to_json() for r in self.rows],
            "model": dict(self.model),
            "device": self.device,
            "timing_ms": {k: round(v, 2) for k, v in self.timing_ms.items()},
        }


# -- service and images --------------------------------------------------------------------------
def as_service(
    model: InferenceService | Ensemble | str | Path, device: str = "auto", batch_size: int = 8
) -> InferenceService:
    """An inference service for a service, a loaded ensemble or a checkpoint/ensemble path.

    Raises:
        DadamError: the path is not a readable checkpoint or ensemble (one sentence).
    """
    from fpsm_core.errors import FpsmError
    from fpsm_core.inference import InferenceService

    if isinstance(model, InferenceService):
        return model
    if isinstance(model, (str, Path)) and not Path(model).exists():
        raise DadamError(model, "model not found (give a checkpoint .json or an ensemble folder)")
    try:
        return InferenceService(model, device=device, batch_size=batch_size)
    except FpsmError as exc:
        raise DadamError(None, f"cannot load the model: {exc}") from None


def grey_image(pixels: np.ndarray, name: str = "composite") -> XRayImage:
    """A uint8 (H, W) image as the loader presents an 8-bit PNG (full-range window)."""
    from fpsm_core.io.image import XRayImage

    arr = np.asarray(pixels)
    if arr.ndim != 2 or arr.dtype != np.uint8:
        raise DadamError(None, f"{name} must be a (H, W) uint8 image, not {arr.dtype} {arr.shape}")
    return XRayImage(
        pixels=arr.astype(np.float32),
        window=(127.5, 255.0),
        spacing_mm=None,
        path=Path(f"<{name}>"),
        source_format="png",
        voi_function="LINEAR_EXACT",
        window_source="full_range",
        bits_stored=8,
    )


def class_index(service: InferenceService, label: str | int) -> int:
    """The model's index of a class (name or index)."""
    labels = service.labels
    if isinstance(label, int):
        if not 0 <= label < len(labels):
            raise DadamError(None, f"class index {label} is outside the model's {len(labels)}")
        return label
    if label not in labels:
        known = "a CXR-LT class" if label in LABEL_INDEX else "a class"
        raise DadamError(
            None, f"the model does not predict {label!r} ({known} it was not trained on)"
        )
    return labels.index(label)


def map_shape(image_shape: Sequence[int], side: int = DEFAULT_MAP_SIDE) -> tuple[int, int]:
    """(rows, cols) of a map grid with the image's aspect, ``side`` on its long side."""
    h, w = int(image_shape[0]), int(image_shape[1])
    f = min(1.0, side / max(h, w))
    return max(1, round(h * f)), max(1, round(w * f))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1.0 - 1e-7)
    return math.log(p / (1.0 - p))


@dataclass(frozen=True)
class Reading:
    """One image's reading of one class: per (member or "ensemble", level or fused) values."""

    logits: Mapping[tuple[str, LevelKey], float]
    probs: Mapping[tuple[str, LevelKey], float]
    energy: Mapping[tuple[str, LevelKey], float]
    maps: Mapping[tuple[str, LevelKey], np.ndarray]


def read_result(
    result: Result,
    c: int,
    box: Box4 | None,
    *,
    side: int = DEFAULT_MAP_SIDE,
    members: bool = True,
    keep_maps: bool = True,
) -> Reading:
    """Logits, probabilities, in-box energy (and maps) of class ``c`` from a result with CAMs.

    Args:
        result: An inference result computed with ``cams=True``.
        c: The class index.
        box: The box in image pixels; None: no energy (NaN).
        side: Long side of the map grid.
        members: Also every member's maps (else the ensemble's only: what scoring needs).
        keep_maps: Keep the maps (the studio shows them; scoring does not).
    """
    names = result.member_names
    logits: dict[tuple[str, LevelKey], float] = {}
    probs: dict[tuple[str, LevelKey], float] = {}
    by_level: dict[int, list[float]] = {}
    for m, (name, levels, ll) in enumerate(
        zip(names, result.member_levels, result.level_logits, strict=True)
    ):
        for i, lv in enumerate(levels):
            x = float(ll[i, c])
            logits[(name, int(lv))] = x
            probs[(name, int(lv))] = _sigmoid(x)
            by_level.setdefault(int(lv), []).append(x)
        logits[(name, FUSED)] = float(np.asarray(ll)[:, c].sum())
        probs[(name, FUSED)] = float(result.member_probabilities[m, c])
    for lv, xs in by_level.items():
        logits[(ENSEMBLE_NAME, lv)] = float(np.mean(xs))
        probs[(ENSEMBLE_NAME, lv)] = _sigmoid(float(np.mean(xs)))
    probs[(ENSEMBLE_NAME, FUSED)] = float(result.probabilities[c])
    logits[(ENSEMBLE_NAME, FUSED)] = _logit(float(result.probabilities[c]))
    cams = ResultCams(result)
    shape = map_shape(result.image_shape, side)
    region = scale_boxes([box], result.image_shape, shape)[0] if box is not None else None
    energy: dict[tuple[str, LevelKey], float] = {}
    maps: dict[tuple[str, LevelKey], np.ndarray] = {}
    who: list[tuple[str, int]] = [(ENSEMBLE_NAME, ENSEMBLE)]
    if members:
        who += [(name, m) for m, name in enumerate(names)]
    for name, m in who:
        level_keys: tuple[LevelKey, ...] = (*cams.levels_of(m), FUSED)
        for key in level_keys:
            cam = cams.map(c, key, shape, member=m)
            energy[(name, key)] = (
                float(energy_in_box(cam, region)) if region is not None else math.nan
            )
            if keep_maps:
                maps[(name, key)] = cam
    return Reading(logits, probs, energy, maps)


def check_composition(
    ensemble: InferenceService | Ensemble | str | Path,
    original: np.ndarray,
    composite: np.ndarray,
    box: Sequence[float],
    label: str | int,
    *,
    device: str = "auto",
    map_side: int = DEFAULT_MAP_SIDE,
) -> CheckResult:
    """Run the model on the original and the composite and compare the pasted class.

    Args:
        ensemble: An ``InferenceService`` (kept by a caller that checks often), an ``Ensemble``,
            or a checkpoint / ensemble path.
        original: (H, W) uint8, the target before pasting.
        composite: (H, W) uint8, after.
        box: The pasted lesion box (x0, y0, x1, y1) in image pixels (a ``Placement.box``).
        label: The pasted class (name or model index).
        device: For a path or ``Ensemble``: "auto" (GPU when present), "cpu", "cuda"...
        map_side: Long side of the maps' grid.

    Raises:
        DadamError: a model that cannot be loaded, a class it does not predict, images of
            different shapes, or a box outside the image.
    """
    service = as_service(ensemble, device)
    c = class_index(service, label)
    a, b = np.asarray(original), np.asarray(composite)
    if a.shape != b.shape:
        raise DadamError(None, f"the original {a.shape} and the composite {b.shape} differ in size")
    x0, y0, x1, y1 = (float(v) for v in box)
    h, w = a.shape[:2]
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise DadamError(None, f"box {(x0, y0, x1, y1)} is not inside the {w}x{h} image")
    t0 = time.perf_counter()
    before, after = service.predict([grey_image(a, "original"), grey_image(b)], cams=True)
    t1 = time.perf_counter()
    rb = read_result(before, c, (x0, y0, x1, y1), side=map_side)
    ra = read_result(after, c, (x0, y0, x1, y1), side=map_side)
    rows = tuple(
        LevelCheck(
            key[0],
            key[1],
            rb.logits[key],
            ra.logits[key],
            rb.probs[key],
            ra.probs[key],
            rb.energy.get(key, math.nan),
            ra.energy.get(key, math.nan),
        )  # fmt: skip
        for key in rb.logits
    )
    maps: dict[str, dict[LevelKey, tuple[np.ndarray, np.ndarray]]] = {}
    for key, m in rb.maps.items():
        maps.setdefault(key[0], {})[key[1]] = (m, ra.maps[key])
    return CheckResult(
        label=service.labels[c],
        class_index=c,
        box=(x0, y0, x1, y1),
        members=tuple(before.member_names),
        rows=rows,
        maps=maps,
        map_shape=map_shape((h, w), map_side),
        model=dict(before.model),
        device=str(before.device),
        timing_ms={
            "forward": (t1 - t0) * 1e3,
            "readout": (time.perf_counter() - t1) * 1e3,
        },
    )


__all__ = [
    "ENSEMBLE_NAME",
    "CheckResult",
    "LevelCheck",
    "Reading",
    "as_service",
    "check_composition",
    "class_index",
    "grey_image",
    "map_shape",
    "read_result",
]

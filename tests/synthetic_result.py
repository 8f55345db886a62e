"""Inference results built by hand (no model): known maps and logits for CAM and viewer-state tests.

A :class:`~fpsm_core.inference.Result` is a frozen record; this builds a real one whose numbers the
test chooses, with each member's letterbox from the real preprocessing, so tests of what reads a
result (the CAM object, the viewer's state) need no network, weights or forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fpsm_core.inference import Finding, Result
from fpsm_core.labels import LABELS
from fpsm_core.preprocess import resize_to_square

STRIDES = {1: 4, 2: 8, 3: 16, 4: 32}


def synthetic_result(
    member_levels: Sequence[Sequence[int]] = ((4, 3, 2),),
    *,
    input_sizes: Sequence[int] | None = None,
    image_shape: tuple[int, int] = (120, 90),
    labels: Sequence[str] = LABELS,
    seed: int = 0,
    path: str | None = "synthetic.dcm",
    cams: bool = True,
) -> Result:
    """A result for ``len(member_levels)`` members with random level logits and raw CAMs.

    Args:
        member_levels: each member's paper levels.
        input_sizes: each member's input side (default 64 for all).
        image_shape: (rows, cols) of the image the result is for.
        cams: give the result raw closed-form maps (level l's grid is the input side / stride).
    """
    rng = np.random.default_rng(seed)
    sizes = tuple(input_sizes or [64] * len(member_levels))
    n = len(labels)
    level_logits = tuple(
        rng.normal(0.0, 1.0, size=(len(levels), n)).astype(np.float32) for levels in member_levels
    )
    member_probs = np.stack([1.0 / (1.0 + np.exp(-ll.sum(axis=0))) for ll in level_logits])
    probs = member_probs.mean(axis=0).astype(np.float32)
    thresholds = np.full(n, 0.5, dtype=np.float32)
    order = np.argsort(-probs.astype(np.float64), kind="stable")
    findings = tuple(
        Finding(
            label=str(labels[c]),
            index=int(c),
            probability=float(probs[c]),
            threshold=float(thresholds[c]),
            member_probabilities=tuple(float(p[c]) for p in member_probs),
            level_logits=tuple(tuple(float(x) for x in ll[:, c]) for ll in level_logits),
        )
        for c in order
    )
    boxes = tuple(
        resize_to_square(np.zeros(image_shape, dtype=np.float32), s, "letterbox")[1] for s in sizes
    )
    raw = None
    if cams:
        raw = tuple(
            tuple(
                rng.random((n, s // STRIDES[lv], s // STRIDES[lv])).astype(np.float32)
                for lv in levels
            )
            for levels, s in zip(member_levels, sizes, strict=True)
        )
    names = tuple(f"m{i}" for i in range(len(member_levels)))
    return Result(
        path=path,
        image_shape=image_shape,
        labels=tuple(labels),
        findings=findings,
        probabilities=probs,
        member_probabilities=member_probs.astype(np.float32),
        member_names=names,
        member_levels=tuple(tuple(int(lv) for lv in levels) for levels in member_levels),
        level_logits=level_logits,
        letterboxes=boxes,
        input_sizes=sizes,
        model={"name": "synthetic", "disclaimer": ""},
        untrained=False,
        timing_ms={"total": 1.0},
        device="cpu",
        cams=raw,
    )

"""One object for the CAMs of an inference result: every map the viewer and the CAM files show.

A :class:`~fpsm_core.inference.Result` carries each member's raw closed-form level maps on the
model input grid. :class:`ResultCams` turns them into what a reader asks for: the levels of each
member (and of the ensemble), the display map of one class at one level or fused, mapped back onto
the image through :func:`fpsm_core.preprocess.unletterbox`, the fused map's level weights, and the
maps of every class cropped to the image (what ``fpsm infer --cams`` archives). The maths stays in
:class:`~fpsm_core.explain.camset.CamSet`; colouring stays with whoever draws. :func:`level_shares`
splits a finding's logit by level and needs no CAMs at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fpsm_core.explain.camset import CamSet, ensemble_camset
from fpsm_core.explain.errors import ExplainError
from fpsm_core.preprocess import Letterbox, unletterbox

FUSED = "fused"
LevelKey = int | str  # a paper level number, or FUSED
ENSEMBLE = -1  # the member index that means "the ensemble's mean maps"


class LevelLogits(Protocol):
    """What :func:`level_shares` reads of a result (a ``Result`` has it)."""

    @property
    def member_names(self) -> tuple[str, ...]: ...

    @property
    def member_levels(self) -> tuple[tuple[int, ...], ...]: ...

    @property
    def level_logits(self) -> tuple[np.ndarray, ...]: ...


class ResultWithCams(LevelLogits, Protocol):
    """What :class:`ResultCams` reads of a result: an inference ``Result`` run with ``cams=True``.

    A protocol rather than the class itself, so :mod:`fpsm_core.explain` never imports
    :mod:`fpsm_core.inference` (which imports the CAM engine).
    """

    @property
    def labels(self) -> tuple[str, ...]: ...

    @property
    def image_shape(self) -> tuple[int, int]: ...

    @property
    def letterboxes(self) -> tuple[Letterbox, ...]: ...

    @property
    def input_sizes(self) -> tuple[int, ...]: ...

    @property
    def cams(self) -> tuple[tuple[np.ndarray, ...], ...] | None: ...


@dataclass(frozen=True)
class LevelShare:
    """One level's part of a member's logit for a finding.

    Attributes:
        share: the level's logit divided by the sum of the absolute level logits (signed, so the
            shares' absolute values add up to 1).
    """

    member: str
    level: int
    logit: float
    share: float


def level_shares(result: LevelLogits, class_index: int) -> list[LevelShare]:
    """Each member's level logits for a class (they sum to the member's logit) and their shares."""
    out: list[LevelShare] = []
    for name, levels, logits in zip(
        result.member_names, result.member_levels, result.level_logits, strict=True
    ):
        values = [float(logits[i, class_index]) for i in range(len(levels))]
        total = sum(abs(v) for v in values) or 1.0
        out.extend(
            LevelShare(name, int(lv), v, v / total) for lv, v in zip(levels, values, strict=True)
        )
    return out


@dataclass(frozen=True, eq=False)
class ImageMaps:
    """Every class's maps on one grid, letterbox padding cropped away (not resampled).

    Attributes:
        levels: paper level numbers, the order of ``maps``'s second axis.
        maps: (C, L, h, w) Grad-CAM-normalised level maps in [0, 1].
        fused: (C, h, w) fused maps in [0, 1].
        shares: (C, L) each level's positive share of the class logit (sum of its raw map).
    """

    levels: tuple[int, ...]
    maps: np.ndarray
    fused: np.ndarray
    shares: np.ndarray


class ResultCams:
    """The CAMs of one result, per member and for the ensemble, computed on demand.

    Args:
        result: an inference ``Result`` with ``cams`` (per member, per level, (C, h, w) raw maps).

    Raises:
        ExplainError: the result was computed without CAMs.
    """

    def __init__(self, result: ResultWithCams) -> None:
        if result.cams is None:
            raise ExplainError("this result has no CAMs; run inference with cams=True.")
        self.result = result
        classes = np.arange(len(result.labels), dtype=np.int64)[None, :]
        self.members: tuple[CamSet, ...] = tuple(
            CamSet(
                levels=tuple(int(lv) for lv in levels),
                classes=classes,
                raw=tuple(np.asarray(m, dtype=np.float32)[None] for m in raw),
                input_size=(int(size), int(size)),
            )
            for levels, raw, size in zip(
                result.member_levels, result.cams, result.input_sizes, strict=True
            )
        )
        self._ensemble: CamSet | None = None

    @property
    def levels(self) -> tuple[int, ...]:
        """Every level of any member, deepest first as the members list them."""
        out: list[int] = []
        for cs in self.members:
            out.extend(lv for lv in cs.levels if lv not in out)
        return tuple(out)

    def levels_of(self, member: int = ENSEMBLE) -> tuple[int, ...]:
        """The levels one member has (all levels for the ensemble)."""
        return self.levels if member == ENSEMBLE else self.members[member].levels

    def camset(self, member: int = ENSEMBLE) -> CamSet:
        """A member's maps, or the ensemble's (the mean of the members' raw maps)."""
        if member != ENSEMBLE:
            return self.members[member]
        if len(self.members) == 1:
            return self.members[0]
        if self._ensemble is None:
            self._ensemble = ensemble_camset(self.members)
        return self._ensemble

    def frame(self, member: int = ENSEMBLE) -> tuple[Letterbox, int]:
        """(letterbox, input size) that maps the chosen maps back onto the image.

        The ensemble's maps live on its largest member's input, so that member's letterbox frames
        them.
        """
        if member == ENSEMBLE:
            member = int(np.argmax(self.result.input_sizes))
        return self.result.letterboxes[member], int(self.result.input_sizes[member])

    def map(
        self,
        class_index: int,
        level: LevelKey = FUSED,
        out_shape: tuple[int, int] | None = None,
        member: int = ENSEMBLE,
    ) -> np.ndarray:
        """One display map in [0, 1] on the image grid.

        Args:
            class_index: the finding's label index.
            level: a paper level number, or ``"fused"``.
            out_shape: (rows, cols) of the output; default the image's own grid (a viewer passes
                a coarser one of the same aspect and lets the screen interpolate).
            member: a member index, or ``ENSEMBLE`` (-1) for the ensemble's maps.

        Returns:
            float32 (rows, cols).
        """
        shape = out_shape or tuple(self.result.image_shape)
        cs = self.camset(member).take([class_index])
        box, size = self.frame(member)
        # Normalise on a square grid no finer than the output needs (never coarser than the
        # finest level's own grid), then crop the letterbox away: small tiles stay cheap.
        finest = max(max(m.shape[-2:]) for m in cs.raw)
        work = min(size, max(finest, max(shape)))
        if level == FUSED:
            grid = cs.fused(work)[0, 0]
        else:
            grid = cs.level_maps(work, levels=[int(level)])[0, 0, 0]
        out = unletterbox(grid, box, size, (int(shape[0]), int(shape[1])))
        return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)

    def fusion_weights(self, class_index: int, member: int = ENSEMBLE) -> dict[int, float]:
        """Each level's weight in the fused map (its positive share of the class logit)."""
        cs = self.camset(member).take([class_index])
        weights = cs.fusion_weights()[0, 0]
        return {lv: float(w) for lv, w in zip(cs.levels, weights, strict=True)}

    def image_maps(self, member: int = ENSEMBLE, grid: int | None = None) -> ImageMaps:
        """Every class's level and fused maps, cropped to the image on one square grid.

        Args:
            member: a member index, or ``ENSEMBLE``.
            grid: side of the square grid over the model input; default the finest level's.
        """
        cs = self.camset(member)
        side = grid or max(m.shape[-1] for m in cs.raw)
        box, size = self.frame(member)
        return ImageMaps(
            levels=cs.levels,
            maps=unletterbox(cs.level_maps(side)[0], box, size),
            fused=unletterbox(cs.fused(side)[0], box, size),
            shares=cs.positive_shares()[0],
        )

    def raw_arrays(self) -> Mapping[str, np.ndarray]:
        """Each member's raw maps on its own grid, named ``raw_m<member>_L<level>`` ((C, h, w))."""
        return {
            f"raw_m{i}_L{lv}": m.raw[j][0]
            for i, m in enumerate(self.members)
            for j, lv in enumerate(m.levels)
        }


__all__ = [
    "ENSEMBLE",
    "FUSED",
    "ImageMaps",
    "LevelKey",
    "LevelShare",
    "ResultCams",
    "level_shares",
]

"""Low-resolution per-level CAMs of one forward pass, and everything derived from them on demand.

A :class:`CamSet` keeps, for a batch of images and a set of classes, each pyramid level's raw
Grad-CAM on that level's own grid (16x16, 32x32, 64x64 for levels 4, 3, 2 at 512 px): a few hundred
kilobytes for all 26 findings. Display maps (Grad-CAM's normalisation, at any size), the fused map
and the levels' positive shares are computed from it when asked, so an inference result stays small.

Raw maps are in logit units: summed over its grid, level l's raw map for class c is the positive part
of the class logit that level l's features contribute (its bias and any synthetic-image embedding
excluded). That is what makes raw maps comparable across levels, members and images, and what the
fused map uses as weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fpsm_core.explain.errors import ExplainError
from fpsm_core.explain.normalise import as_hw, normalise_like_gradcam, resize_maps


@dataclass(frozen=True, eq=False)
class CamSet:
    """Per-level raw Grad-CAMs for a batch of images and classes.

    Attributes:
        levels: paper level numbers, in the order of ``raw``.
        classes: (B, K) class indices; row b names the classes of image b's maps.
        raw: per level, (B, K, h_l, w_l) float32 maps >= 0 before normalisation, exactly what the
            grad-cam package computes before ``scale_cam_image``.
        input_size: (H, W) of the model input the maps cover; the default output size.
    """

    levels: tuple[int, ...]
    classes: np.ndarray
    raw: tuple[np.ndarray, ...]
    input_size: tuple[int, int]

    def __post_init__(self) -> None:
        if len(self.levels) != len(self.raw) or not self.raw:
            raise ExplainError(
                f"a CamSet needs one raw map stack per level; got {len(self.raw)} stacks for "
                f"levels {self.levels}."
            )
        if self.classes.ndim != 2:
            raise ExplainError(f"classes must be (batch, K), not shape {self.classes.shape}.")
        for level, maps in zip(self.levels, self.raw, strict=True):
            if maps.ndim != 4 or maps.shape[:2] != self.classes.shape:
                raise ExplainError(
                    f"level {level} maps have shape {maps.shape}; expected "
                    f"{self.classes.shape} + (h, w)."
                )

    @property
    def batch_size(self) -> int:
        return int(self.classes.shape[0])

    @property
    def num_classes(self) -> int:
        """K, the number of classes per image."""
        return int(self.classes.shape[1])

    def level_index(self, level: int) -> int:
        """Position of a paper level number in ``levels``."""
        if level not in self.levels:
            raise ExplainError(f"level {level} is not one of this model's levels {self.levels}.")
        return self.levels.index(level)

    def positive_shares(self) -> np.ndarray:
        """(B, K, L): each level's positive contribution to the class logit (sum of its raw map)."""
        return np.stack([m.sum(axis=(-2, -1), dtype=np.float64) for m in self.raw], axis=-1).astype(
            np.float32
        )

    def fusion_weights(self) -> np.ndarray:
        """(B, K, L): positive shares as fractions summing to 1 (all 0 where no level is positive)."""
        shares = self.positive_shares().astype(np.float64)
        total = shares.sum(axis=-1, keepdims=True)
        out = np.divide(shares, total, out=np.zeros_like(shares), where=total > 0)
        return out.astype(np.float32)

    def level_maps(
        self, size: int | Sequence[int] | None = None, levels: Sequence[int] | None = None
    ) -> np.ndarray:
        """Display maps normalised exactly as the grad-cam package does for one target layer.

        Args:
            size: output (H, W) or side; None means the model input size.
            levels: a subset of ``levels`` (paper numbers); None means all.

        Returns:
            float32 (B, K, L, H, W) in [0, 1].
        """
        hw = as_hw(size, self.input_size)
        chosen = self.levels if levels is None else tuple(levels)
        maps = [normalise_like_gradcam(self.raw[self.level_index(lv)], hw) for lv in chosen]
        return np.stack(maps, axis=2)

    def fused(self, size: int | Sequence[int] | None = None, normalise: bool = True) -> np.ndarray:
        """All levels in one map, each weighted by its positive share of the class logit.

        Each level's raw map is upsampled bilinearly and scaled to unit mean, then multiplied by the
        level's positive share: unnormalised, the map is positive evidence in logits per unit of
        image area, and its mean over the image is the sum of the levels' positive shares.

        Args:
            size: output (H, W) or side; None means the model input size. Meant for sizes at least
                as large as every level's grid (shrinking can drop isolated peaks).
            normalise: divide each map by its maximum (all-zero maps stay zero).

        Returns:
            float32 (B, K, H, W).
        """
        hw = as_hw(size, self.input_size)
        shares = self.positive_shares()
        total = np.zeros((self.batch_size, self.num_classes, *hw), dtype=np.float32)
        for index, raw in enumerate(self.raw):
            up = resize_maps(raw, hw)
            mean = up.mean(axis=(-2, -1), keepdims=True, dtype=np.float64)
            share = shares[..., index, None, None].astype(np.float64)
            gain = np.divide(share, mean, out=np.zeros_like(mean), where=mean > 0)
            total += (up * gain).astype(np.float32)
        if normalise:
            peak = total.max(axis=(-2, -1), keepdims=True)
            total = np.divide(total, peak, out=np.zeros_like(total), where=peak > 0)
        return total

    def select(self, batch: Sequence[int] | int) -> CamSet:
        """The maps of some images of the batch, as a new CamSet."""
        index = [batch] if isinstance(batch, int | np.integer) else list(batch)
        return CamSet(
            levels=self.levels,
            classes=self.classes[index],
            raw=tuple(m[index] for m in self.raw),
            input_size=self.input_size,
        )

    def take(self, positions: Sequence[int]) -> CamSet:
        """Some of the K class columns (by position in ``classes``), e.g. an image's top findings."""
        pos = list(positions)
        return CamSet(
            levels=self.levels,
            classes=self.classes[:, pos],
            raw=tuple(m[:, pos] for m in self.raw),
            input_size=self.input_size,
        )

    def split(self) -> list[CamSet]:
        """One CamSet per image (what a per-image inference result keeps)."""
        return [self.select(b) for b in range(self.batch_size)]

    def nbytes(self) -> int:
        return int(sum(m.nbytes for m in self.raw) + self.classes.nbytes)


def ensemble_camset(members: Sequence[CamSet], weights: Sequence[float] | None = None) -> CamSet:
    """The ensemble's per-level maps: the weighted mean of the members' raw maps.

    Raw maps are in logit units, so the mean is the positive evidence each level contributes to the
    members' mean logit (members lacking a level contribute zero there). Grids that differ between
    members are resampled to the finest one, preserving each map's sum. Members are assumed to
    frame the image the same way (same letterbox policy).

    Args:
        members: CamSets with the same batch size and the same ``classes``.
        weights: per member; default equal weights 1/M.
    """
    if not members:
        raise ExplainError("an ensemble CamSet needs at least one member.")
    first = members[0]
    for m in members[1:]:
        if m.classes.shape != first.classes.shape or not np.array_equal(m.classes, first.classes):
            raise ExplainError("ensemble members must have CAMs for the same images and classes.")
    w = [1.0 / len(members)] * len(members) if weights is None else [float(x) for x in weights]
    if len(w) != len(members):
        raise ExplainError(f"{len(w)} weights given for {len(members)} ensemble members.")
    levels: list[int] = []
    for m in members:
        levels.extend(lv for lv in m.levels if lv not in levels)
    raw_out = []
    for level in levels:
        present = [
            (m.raw[m.level_index(level)], wm)
            for m, wm in zip(members, w, strict=True)
            if level in m.levels
        ]
        grid = max((r.shape[-2:] for r, _ in present), key=lambda s: s[0] * s[1])
        acc = np.zeros((*first.classes.shape, *grid), dtype=np.float32)
        for raw, wm in present:
            h, w_ = raw.shape[-2:]
            resampled = resize_maps(raw, grid) * np.float32(h * w_ / (grid[0] * grid[1]))
            acc += np.float32(wm) * np.maximum(resampled, 0)
        raw_out.append(acc)
    size = max((m.input_size for m in members), key=lambda s: s[0] * s[1])
    return CamSet(
        levels=tuple(levels), classes=first.classes.copy(), raw=tuple(raw_out), input_size=size
    )

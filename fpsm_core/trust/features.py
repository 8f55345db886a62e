"""The numbers trust is fitted on: each member's summed logits and pooled level features.

One ``forward_all`` per member and batch yields both (the same pass inference runs), so fitting
the gate and the calibration costs one pass over the fitting images. Images that cannot be read
are left out and named, one sentence each; the rest go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from fpsm_core.model.ensemble import Ensemble
from fpsm_core.model.fpsm import FPSM
from fpsm_core.preprocess import prepare


@dataclass(frozen=True, eq=False)
class MemberOutputs:
    """One member's outputs over a set of images.

    Attributes:
        logits: (N, C) summed logits.
        features: one (N, K_l) array of pooled features per level, in the member's level order.
    """

    logits: np.ndarray
    features: tuple[np.ndarray, ...]

    def subset(self, rows: np.ndarray) -> MemberOutputs:
        return MemberOutputs(self.logits[rows], tuple(f[rows] for f in self.features))


@dataclass(frozen=True, eq=False)
class Collected:
    """Outputs of every member for the images that could be read.

    Attributes:
        members: in ensemble order.
        kept: (N,) indices into the paths given of the images that were read.
        failures: one sentence per image left out.
    """

    members: tuple[MemberOutputs, ...]
    kept: np.ndarray
    failures: tuple[str, ...] = field(default=())

    def subset(self, rows: np.ndarray) -> Collected:
        return Collected(tuple(m.subset(rows) for m in self.members), self.kept[rows])


def pooled(features: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """Level feature maps (B, K, H, W) to the pooled vectors the heads see, float32 numpy."""
    return [f.float().mean(dim=(2, 3)).cpu().numpy() for f in features]


def member_outputs(model: FPSM, batch: torch.Tensor) -> tuple[np.ndarray, list[np.ndarray]]:
    """Summed logits and pooled level features of one batch, in one pass."""
    with torch.inference_mode():
        out = model.forward_all(batch)
        return out.logits.float().cpu().numpy(), pooled(out.features)


def collect(
    ensemble: Ensemble,
    paths: Sequence[str],
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> Collected:
    """Run every member over the images at ``paths``.

    Args:
        ensemble: the model (a checkpoint loads as an ensemble of one).
        paths: image files.
        batch_size: images per forward pass.
        progress: ``progress(done, total)`` after each batch.
    """
    from fpsm_core.io import ImageLoadError, load_image

    members = ensemble.members
    logits: list[list[np.ndarray]] = [[] for _ in members]
    feats: list[list[list[np.ndarray]]] = [[[] for _ in m.model.levels] for m in members]
    kept: list[int] = []
    failures: list[str] = []
    for start in range(0, len(paths), batch_size):
        tensors: list[list[np.ndarray]] = [[] for _ in members]
        for i in range(start, min(start + batch_size, len(paths))):
            try:
                image = load_image(paths[i])
            except ImageLoadError as exc:
                failures.append(str(exc))
                continue
            pixels = np.asarray(image.pixels)
            cache: dict[object, np.ndarray] = {}
            for m, member in enumerate(members):
                key = (member.meta.preprocessing, member.model.in_chans)
                if key not in cache:
                    cache[key] = prepare(
                        pixels, image.window, member.meta.preprocessing, member.model.in_chans
                    )[0]
                tensors[m].append(cache[key])
            kept.append(i)
        if tensors[0]:
            for m, member in enumerate(members):
                x = torch.from_numpy(np.stack(tensors[m])).to(device)
                z, f = member_outputs(member.model, x)
                logits[m].append(z)
                for lv, values in enumerate(f):
                    feats[m][lv].append(values)
        if progress is not None:
            progress(min(start + batch_size, len(paths)), len(paths))
    if not kept:
        raise ValueError("none of the images could be read: " + "; ".join(failures[:3]))
    outputs = tuple(
        MemberOutputs(
            logits=np.concatenate(logits[m]),
            features=tuple(np.concatenate(level) for level in feats[m]),
        )
        for m in range(len(members))
    )
    return Collected(outputs, np.asarray(kept, dtype=np.int64), tuple(failures))

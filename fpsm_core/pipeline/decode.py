"""The decode side of the pipeline: a torch ``Dataset`` over files whose items are prepared inputs.

Each item is read, windowed, resized, normalised and checked (:func:`fpsm_core.inference.prepare_item`)
in a DataLoader worker process; the collate function stacks a batch's inputs into one tensor per
distinct member contract, so the batch crosses to the main process through shared memory rather than
a pickle, and (on CUDA) is pinned there by the DataLoader's pin thread. A file that cannot be read
becomes a :class:`~fpsm_core.inference.LoadFailure` at its place in the batch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from fpsm_core.inference import LoadFailure, Prepared, PreprocessKey, prepare_item


class DecodeDataset(Dataset[Prepared | LoadFailure]):
    """Files to prepared model inputs; needs only the members' contracts, never the model."""

    def __init__(self, paths: Sequence[str | Path], keys: Sequence[PreprocessKey]) -> None:
        self.paths = [str(p) for p in paths]
        self.keys = tuple(keys)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Prepared | LoadFailure:
        from fpsm_core.io import ImageLoadError, load_image

        path = self.paths[index]
        t0 = time.perf_counter()
        try:
            image = load_image(path)
        except ImageLoadError as exc:
            return LoadFailure(path=path, error=str(exc))
        load_ms = (time.perf_counter() - t0) * 1e3
        item = prepare_item(image, self.keys)
        item.load_ms = load_ms
        return item


@dataclass
class DecodedBatch:
    """One batch in input order: prepared items and failures, and the stacked input tensors.

    Attributes:
        items: every file of the batch, in input order.
        stacked: per distinct contract, the prepared items' inputs as one (B, C, S, S) tensor.
        member_slot: for each member, the index into ``stacked`` of its contract.
    """

    items: list[Prepared | LoadFailure]
    stacked: list[torch.Tensor] = field(default_factory=list)
    member_slot: tuple[int, ...] = ()

    @property
    def prepared(self) -> list[Prepared]:
        return [it for it in self.items if isinstance(it, Prepared)]

    def member_inputs(self) -> list[torch.Tensor]:
        return [self.stacked[slot] for slot in self.member_slot]

    def pin_memory(self) -> DecodedBatch:
        """Called by the DataLoader's pin thread on CUDA: page-locked inputs copy asynchronously."""
        self.stacked = [t.pin_memory() for t in self.stacked]
        return self


class Collate:
    """Stacks a batch per distinct member contract (picklable, for spawned workers).

    With ``pad_to`` every stacked tensor has that many rows, the missing ones zero: every forward
    then runs at one batch shape, so a file's numbers do not depend on how many readable files
    share its batch (CPU kernels are chosen per shape; a sharded run equals a single one) and
    cuDNN autotunes once. Results are taken from the real rows only.
    """

    def __init__(self, keys: Sequence[PreprocessKey], pad_to: int = 0) -> None:
        self.pad_to = pad_to
        distinct: list[PreprocessKey] = []
        for key in keys:
            if key not in distinct:
                distinct.append(key)
        self.member_slot = tuple(distinct.index(key) for key in keys)
        self.first_member = tuple(self.member_slot.index(slot) for slot in range(len(distinct)))

    def __call__(self, items: list[Prepared | LoadFailure]) -> DecodedBatch:
        ready = [it for it in items if isinstance(it, Prepared)]
        stacked: list[torch.Tensor] = []
        if ready:
            for member in self.first_member:
                arrays = [it.tensors[member] for it in ready]
                pad = self.pad_to - len(arrays)
                if pad > 0:
                    arrays.extend([np.zeros_like(arrays[0])] * pad)
                stacked.append(torch.from_numpy(np.stack(arrays)))
        for it in ready:
            it.tensors = []  # the stacked copy is what travels; do not pickle the inputs twice
        return DecodedBatch(items=list(items), stacked=stacked, member_slot=self.member_slot)

"""``fpsm infer`` under torchrun: each rank takes a fixed share of the files; rank 0 merges.

``torchrun --nproc_per_node N [--nnodes M --node_rank R --rdzv-endpoint HOST:PORT] -m fpsm_core.cli
infer ...`` starts ``N x M`` processes with ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK`` set. Every
rank expands the same inputs to the same list, takes the files at positions ``rank, rank + W,
rank + 2W, ...`` (strided, so a folder sorted by size or date spreads evenly; unlike
``DistributedSampler`` nothing is padded or repeated) and writes its own store and
``results.rank<N>.jsonl`` under ``--out``. After a barrier rank 0 merges every rank's rows, in the
input order, into ``results.jsonl`` and ``predictions.csv``: the same rows a single process writes.
The process group (gloo on CPU, NCCL on CUDA, rank r on ``cuda:LOCAL_RANK``) only carries barriers
and the failure count; ``--out`` must be a folder every node sees (a shared file system).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")
# A rank that finishes its share early waits at the barrier for the slowest: allow a long archive.
BARRIER_TIMEOUT = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Ranks:
    """This process's place among the torchrun ranks (a world of one without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Ranks:
        def number(name: str, default: int) -> int:
            try:
                return int(os.environ.get(name, default))
            except ValueError:
                return default

        world = max(1, number("WORLD_SIZE", 1))
        return cls(
            rank=min(max(0, number("RANK", 0)), world - 1),
            world_size=world,
            local_rank=max(0, number("LOCAL_RANK", 0)),
        )

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def shard(items: Sequence[T], ranks: Ranks) -> list[T]:
    """This rank's share: every ``world_size``-th item from position ``rank``."""
    return list(items[ranks.rank :: ranks.world_size])


def join(ranks: Ranks, device_type: str) -> None:
    """Start the process group (once); a world of one needs none."""
    if not ranks.distributed:
        return
    import torch.distributed as dist

    if not dist.is_initialized():
        if device_type == "cuda":
            import torch

            torch.cuda.set_device(ranks.local_rank)  # NCCL's barriers run on this rank's GPU
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            rank=ranks.rank,
            world_size=ranks.world_size,
            timeout=BARRIER_TIMEOUT,
        )


def barrier(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        dist.barrier()


def total(ranks: Ranks, value: int, device_type: str) -> int:
    """The sum of ``value`` over every rank."""
    if not ranks.distributed:
        return value
    import torch
    import torch.distributed as dist

    device = f"cuda:{ranks.local_rank}" if device_type == "cuda" else "cpu"
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t)
    return int(t.item())


def leave(ranks: Ranks) -> None:
    if ranks.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()

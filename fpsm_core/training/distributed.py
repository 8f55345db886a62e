"""Multi-GPU and multi-node training under ``torchrun`` (DDP), and a plain single process otherwise.

``torchrun`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``; when ``WORLD_SIZE`` > 1 the process
group starts with NCCL on CUDA and gloo on CPU (which is how the tests run DDP on a laptop). Each
rank takes ``cuda:LOCAL_RANK``. Helpers here gather predictions from all ranks in dataset order and
agree on a stop request, so a Ctrl-C or SIGTERM stops every rank at the same step.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from fpsm_core.device import pick_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job."""

    rank: int
    local_rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Join the torchrun job if there is one; otherwise a world of one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_name, local_rank=local_rank, option="run.device")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, device=device)


def shutdown(info: DistInfo) -> None:
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def any_flag(info: DistInfo, flag: bool) -> bool:
    """True on every rank when any rank raised the flag."""
    if not info.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device(info))
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def mean_scalar(info: DistInfo, value: float) -> float:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(t)
    return float(t.item()) / info.world_size


def sum_scalar(info: DistInfo, value: float) -> float:
    if not info.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_comm_device(info))
    dist.all_reduce(t)
    return float(t.item())


def gather_objects(info: DistInfo, obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_rows(info: DistInfo, indices: torch.Tensor, rows: torch.Tensor, n: int) -> torch.Tensor:
    """Reassemble (n, ...) rows that ranks computed for disjoint ``indices``.

    Every rank passes its own indices (1-D) and rows; padded duplicates are harmless because a
    later copy of the same index holds the same values.
    """
    if not info.distributed:
        out = torch.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
        out[indices.cpu()] = rows.cpu()
        return out
    device = _comm_device(info)
    count = torch.tensor([indices.numel()], device=device)
    counts = [torch.zeros_like(count) for _ in range(info.world_size)]
    dist.all_gather(counts, count)
    most = int(max(c.item() for c in counts))
    pad_idx = torch.full((most,), -1, dtype=torch.int64, device=device)
    pad_idx[: indices.numel()] = indices.to(device)
    pad_rows = torch.zeros((most, *rows.shape[1:]), dtype=rows.dtype, device=device)
    pad_rows[: rows.shape[0]] = rows.to(device)
    all_idx = [torch.empty_like(pad_idx) for _ in range(info.world_size)]
    all_rows = [torch.empty_like(pad_rows) for _ in range(info.world_size)]
    dist.all_gather(all_idx, pad_idx)
    dist.all_gather(all_rows, pad_rows)
    out = torch.zeros((n, *rows.shape[1:]), dtype=rows.dtype)
    for idx, part in zip(all_idx, all_rows, strict=True):
        keep = idx >= 0
        out[idx[keep].cpu()] = part[keep].cpu()
    return out


def _comm_device(info: DistInfo) -> torch.device:
    return info.device if info.device.type == "cuda" else torch.device("cpu")

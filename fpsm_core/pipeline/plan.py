"""How many decode workers, torch threads and images per batch a run uses, per device.

Rules (measured on the 2-core development machine, figures in ``docs/benchmarks.md``):

- **Threads.** On CPU the forward gets the cores the decode workers leave, minus the load other
  processes already put on the machine (the 1-minute load average at start): on a shared machine 2
  torch threads slowed 3-7x under other load while 1 thread stayed within 3 %, because an
  intra-op thread that loses its core stalls every parallel region. On CUDA/MPS one thread feeds
  the device.
- **Workers.** Decoding and preprocessing run in worker processes. On CPU a quarter of the cores
  (at least 1) decode: a 512 px film decodes and prepares in ~3 ms and a 2,000 px CR loads in ~60,
  against 50+ ms of forward per image for the demo ensemble, so one worker keeps up on small
  machines. On CUDA every
  core but one decodes (at most 8): the device outruns any one decoder.
- **Batch.** CPU: 8. The bare forward's images/s were flat from batch 4 to 8 and fell at 16
  (activations leave the caches), with the allocator tuned (:mod:`.allocator`) or not; 8 amortises
  the per-batch cost and keeps the prefetched batches small. CUDA: 64 images at 512 px, scaled by (512 / input size)^2, halved below
  16 GiB of device memory and never under 8 (not yet measured on a GPU: ``bench/gpu_check.py``
  sweeps 1/16/64). MPS: 16.
- **Tiny jobs** (no more files than one batch) decode in the calling process: starting a worker
  costs more than it saves; unless told otherwise (an explicit batch size, a torchrun rank) their
  batch shrinks to the number of files, since the pipeline pads every batch to the plan's size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

CPU_BATCH = 8


@dataclass(frozen=True)
class RunPlan:
    """The resources one batch run uses."""

    batch_size: int
    workers: int
    threads: int

    def describe(self) -> str:
        workers = f"{self.workers} decode worker{'s' if self.workers != 1 else ''}"
        if self.workers == 0:
            workers = "decoding in-process"
        return f"batch {self.batch_size}, {workers}, {self.threads} torch thread(s)"


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def other_load(cores: int) -> float:
    """The 1-minute load average, capped at the cores (0 where the system does not say)."""
    try:
        return min(float(cores), os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def default_batch_size(device_type: str, input_size: int = 512, memory_gib: float = 0.0) -> int:
    """Images per forward pass by device (see the module rules)."""
    if device_type == "cuda":
        batch = int(64 * (512 / max(1, input_size)) ** 2)
        if 0 < memory_gib < 16:
            batch //= 2
        return max(8, min(256, batch))
    if device_type == "mps":
        return 16
    return CPU_BATCH


def plan_run(
    device_type: str,
    files: int,
    *,
    input_size: int = 512,
    memory_gib: float = 0.0,
    batch_size: int | None = None,
    workers: int | None = None,
    threads: int | None = None,
    cores: int | None = None,
    load: float | None = None,
    shrink: bool = True,
) -> RunPlan:
    """The plan for ``files`` images on ``device_type``; explicit values win over the rules.

    ``shrink`` lets a job smaller than one default batch run at its own size (see the rules).
    """
    cores = usable_cores() if cores is None else max(1, cores)
    batch = batch_size or default_batch_size(device_type, input_size, memory_gib)
    if batch_size is None and shrink and 0 < files < batch:
        batch = files
    if workers is None:
        if files <= batch:
            workers = 0
        elif device_type == "cpu":
            workers = max(1, cores // 4)
        else:
            workers = max(1, min(8, cores - 1))
    if threads is None:
        if device_type != "cpu":
            threads = 1
        else:
            busy = other_load(cores) if load is None else load
            free = cores - workers - int(round(busy))
            threads = max(1, min(cores - workers, free))
    return RunPlan(batch_size=batch, workers=workers, threads=threads)

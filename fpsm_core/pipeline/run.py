"""The batch pipeline: decode in worker processes, forward in this one, results as they come.

A torch ``DataLoader`` over the file list (:mod:`.decode`) keeps ``2 x workers`` batches decoded
ahead of the model, so reading, windowing and resizing hide behind the forward pass; the main
process runs each batch through the :class:`~fpsm_core.inference.InferenceService` (fp16 autocast
and channels_last on CUDA, pinned inputs copied with ``non_blocking``) and yields every file's
:class:`~fpsm_core.inference.Result` or :class:`~fpsm_core.inference.LoadFailure` in input order,
one batch at a time. The CLI's ``fpsm infer`` and the viewer's triage both run through it.

Workers start with ``fork`` where that is safe (Linux, called from the main thread of a process
with no other Python thread); from any other thread (the viewer's triage thread) a ``forkserver``
that has imported the decode module once forks them (no Qt state is copied into a worker, and a
second triage starts its workers in milliseconds); ``spawn`` elsewhere.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from fpsm_core.inference import InferenceService, LoadFailure, Result
from fpsm_core.pipeline.decode import Collate, DecodeDataset, DecodedBatch
from fpsm_core.pipeline.plan import RunPlan

_DECODE_MODULE = "fpsm_core.pipeline.decode"


def worker_context() -> Any:
    """The multiprocessing context for decode workers (see the module docstring)."""
    alone = threading.active_count() == 1 and threading.current_thread() is threading.main_thread()
    if sys.platform.startswith("linux") and alone:
        return multiprocessing.get_context("fork")
    if sys.platform != "win32":
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([_DECODE_MODULE])
        return ctx
    return multiprocessing.get_context("spawn")


def decoded_batches(
    service: InferenceService, paths: Sequence[str | Path], plan: RunPlan
) -> Iterator[DecodedBatch]:
    """The files as decoded batches, in order; decoding runs ahead in ``plan.workers`` processes."""
    dataset = DecodeDataset(paths, service.preprocess_keys())
    collate = Collate(dataset.keys, pad_to=plan.batch_size)
    if not paths:
        return
    if plan.workers == 0:
        for start in range(0, len(dataset), plan.batch_size):
            end = min(len(dataset), start + plan.batch_size)
            yield collate([dataset[i] for i in range(start, end)])
        return
    loader = DataLoader(
        dataset,
        batch_size=plan.batch_size,
        shuffle=False,
        num_workers=plan.workers,
        collate_fn=collate,
        pin_memory=service.device.type == "cuda",
        prefetch_factor=2,
        multiprocessing_context=worker_context(),
    )
    yield from loader


def run_pipeline(
    service: InferenceService,
    paths: Sequence[str | Path],
    plan: RunPlan,
    *,
    cams: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Iterator[Result | LoadFailure]:
    """Every file's result or failure, in input order, streamed batch by batch.

    Args:
        service: the model; its batch size is not used (``plan.batch_size`` is).
        paths: the files.
        plan: batch size, decode workers (see :func:`~fpsm_core.pipeline.plan.plan_run`).
        cams: keep the closed-form level CAMs in each result.
        progress: called with (done, total) after every batch.
        cancel: returning True stops before the next batch (the workers are shut down).
    """
    total = len(paths)
    done = 0
    batches = decoded_batches(service, paths, plan)
    try:
        for batch in batches:
            if cancel is not None and cancel():
                return
            prepared = batch.prepared
            results = iter(
                service.predict_prepared(prepared, cams=cams, stacked=batch.member_inputs())
                if prepared
                else []
            )
            for item in batch.items:
                yield item if isinstance(item, LoadFailure) else next(results)
            done += len(batch.items)
            if progress is not None:
                progress(done, total)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # a generator left early shuts its DataLoader's workers down now

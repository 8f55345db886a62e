"""Archive-scale inference: the batch pipeline, resumable runs and torchrun sharding.

:func:`run_pipeline` decodes in worker processes and runs batches through an
:class:`~fpsm_core.inference.InferenceService`; :func:`plan_run` picks batch size, workers and
threads per device; :func:`tune_allocator` stops glibc's page-fault churn; :mod:`.store` keeps a
resumable run's finished files; :mod:`.shard` splits the files between torchrun ranks. See
``docs/scale.md``.
"""

from __future__ import annotations

from fpsm_core.pipeline.allocator import AllocatorTuning, tune_allocator
from fpsm_core.pipeline.plan import RunPlan, default_batch_size, plan_run
from fpsm_core.pipeline.progress import Progress
from fpsm_core.pipeline.run import run_pipeline

__all__ = [
    "AllocatorTuning",
    "Progress",
    "RunPlan",
    "default_batch_size",
    "plan_run",
    "run_pipeline",
    "tune_allocator",
]

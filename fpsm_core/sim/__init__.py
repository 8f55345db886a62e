"""A chest radiograph simulator with exact ground truth, for demos, tests and controlled benchmarks.

Procedural anatomy (body, lungs from real annotated outlines, heart, mediastinum, airways, vessels,
spine, ribs, clavicles) with 25 inserted CXR-LT findings of very different sizes, labels drawn from
a long-tailed, correlated distribution modelled on CXR-LT 2023, and masks and boxes for every
finding instance. Nothing is downloaded; the same seed always gives the same data.

    from fpsm_core.sim import SimConfig, simulate_case, write_dataset
    case = simulate_case((0, 7), SimConfig(size=256))
    write_dataset("out/", n=100, seed=0, format="png", size=256)
"""

from fpsm_core.sim.config import (
    CXRLT_TRAIN_COUNTS,
    SimConfig,
    SimConfigError,
    default_prevalences,
)
from fpsm_core.sim.simulate import Box, SimCase, draw_labels, simulate_case
from fpsm_core.sim.writer import (
    BOX_COLUMNS,
    META_COLUMNS,
    SimWriteError,
    case_ids,
    write_dataset,
)

__all__ = [
    "BOX_COLUMNS",
    "CXRLT_TRAIN_COUNTS",
    "META_COLUMNS",
    "Box",
    "SimCase",
    "SimConfig",
    "SimConfigError",
    "SimWriteError",
    "case_ids",
    "default_prevalences",
    "draw_labels",
    "simulate_case",
    "write_dataset",
]

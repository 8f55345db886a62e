"""FPSM models, their checkpoints and mean ensembles."""

from fpsm_core.model.fpsm import (
    FPSM,
    LEVEL_STRIDES,
    FPSMOutput,
    ModelConfigError,
    asymmetric_loss,
    create_fpsm,
    per_level_loss,
)

__all__ = [
    "FPSM",
    "FPSMOutput",
    "LEVEL_STRIDES",
    "ModelConfigError",
    "asymmetric_loss",
    "create_fpsm",
    "per_level_loss",
]

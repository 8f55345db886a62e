"""FPSM models, their checkpoints and mean ensembles."""

from fpsm_core.model.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    LoadedCheckpoint,
    Preprocessing,
    import_state_dict,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    update_checkpoint_meta,
)
from fpsm_core.model.ensemble import Ensemble, load_model, mean_probabilities, write_ensemble
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
    "CheckpointError",
    "CheckpointMeta",
    "Ensemble",
    "LoadedCheckpoint",
    "ModelConfigError",
    "Preprocessing",
    "asymmetric_loss",
    "create_fpsm",
    "import_state_dict",
    "load_checkpoint",
    "load_model",
    "mean_probabilities",
    "per_level_loss",
    "read_checkpoint_meta",
    "save_checkpoint",
    "update_checkpoint_meta",
    "write_ensemble",
]

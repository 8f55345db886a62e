"""FPSM models, their checkpoints and mean ensembles.

``fpsm`` is the architecture, ``weights`` imports foreign backbone weights, ``checkpoint`` is the
safetensors + JSON format, ``ensemble`` the mean ensembles and ``description`` what a model says
about itself. The preprocessing contract is :mod:`fpsm_core.preprocess`; the losses are
:mod:`fpsm_core.training.losses`.
"""

from fpsm_core.model.checkpoint import (
    CheckpointError,
    CheckpointMeta,
    LoadedCheckpoint,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    update_checkpoint_meta,
)
from fpsm_core.model.description import MemberDescription, ModelDescription, describe
from fpsm_core.model.ensemble import Ensemble, load_model, mean_probabilities, write_ensemble
from fpsm_core.model.fpsm import FPSM, LEVEL_STRIDES, FPSMOutput, ModelConfigError, create_fpsm
from fpsm_core.model.weights import import_state_dict, load_backbone_weights
from fpsm_core.preprocess import Preprocessing

__all__ = [
    "FPSM",
    "FPSMOutput",
    "LEVEL_STRIDES",
    "CheckpointError",
    "CheckpointMeta",
    "Ensemble",
    "LoadedCheckpoint",
    "MemberDescription",
    "ModelConfigError",
    "ModelDescription",
    "Preprocessing",
    "create_fpsm",
    "describe",
    "import_state_dict",
    "load_backbone_weights",
    "load_checkpoint",
    "load_model",
    "mean_probabilities",
    "read_checkpoint_meta",
    "save_checkpoint",
    "update_checkpoint_meta",
    "write_ensemble",
]

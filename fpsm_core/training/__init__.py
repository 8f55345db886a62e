"""Training FPSM models: configuration, the trainer, batch prediction and resume state.

``fpsm train`` and ``train/fit.py`` are thin front ends over :func:`fit`; ``train/evaluate.py``,
``train/ablate.py``, ``train/ensemble.py`` and ``train/hpo.py`` build on :func:`predict_records`
and the same config. Nothing here imports the viewer, Qt or the ``train`` scripts.
"""

from fpsm_core.training.config import (
    ConfigError,
    DataConfig,
    InputConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
    config_from_dict,
    dump_config,
    load_config,
)
from fpsm_core.training.fit import FitResult, fit
from fpsm_core.training.predict import Predictions, predict_records
from fpsm_core.training.state import ResumeError

__all__ = [
    "ConfigError",
    "DataConfig",
    "FitResult",
    "InputConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "Predictions",
    "ResumeError",
    "RunConfig",
    "TrainConfig",
    "config_from_dict",
    "dump_config",
    "fit",
    "load_config",
    "predict_records",
]

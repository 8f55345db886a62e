"""Where the bundled models and sample studies live.

The top-level ``resources/`` folder of the source tree (the README installs the project in editable
mode); ``FPSM_RESOURCES`` overrides it for packaged installs.
"""

from __future__ import annotations

import os
from pathlib import Path


def resources_dir() -> Path:
    env = os.environ.get("FPSM_RESOURCES")
    return Path(env) if env else Path(__file__).resolve().parent.parent / "resources"


def default_model_path() -> Path:
    """The bundled demo ensemble; an untrained placeholder folder is the fallback when present."""
    models = resources_dir() / "models"
    for name in ("demo", "untrained"):
        candidate = models / name
        if (candidate / "ensemble.json").is_file():
            return candidate
    raise FileNotFoundError(
        f"No bundled model under {models}; pass --model with a checkpoint or ensemble directory."
    )


def sample_study_dir() -> Path:
    return resources_dir() / "samples"

"""FPSM core: everything of the chest radiograph toolkit that works without a screen.

Labels, image I/O, the Feature Pyramid Sum Model, checkpoints, ensembles, inference, explanations
and the DADAM augmentation engine live here. Nothing in this package imports Qt, the viewer or the
training scripts (checked by import-linter contracts in ``pyproject.toml``).
"""

__version__ = "0.1.0"

import os as _os

# No hub access ever, whatever the environment (docs/security.md): timm and huggingface_hub read
# this when they are first imported, which is after this line for anything that uses fpsm_core.
_os.environ["HF_HUB_OFFLINE"] = "1"

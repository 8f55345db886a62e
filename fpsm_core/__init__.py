"""FPSM core: everything of the chest radiograph toolkit that works without a screen.

Labels, image I/O, the Feature Pyramid Sum Model, checkpoints, ensembles, inference, explanations
and the DADAM augmentation engine live here. Nothing in this package imports Qt, the viewer or the
training scripts (checked by import-linter contracts in ``pyproject.toml``).
"""

__version__ = "0.1.0"

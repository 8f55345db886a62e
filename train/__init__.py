"""Training, evaluation, ensembling and HPO scripts for FPSM models (imports fpsm_core, never viewer)."""

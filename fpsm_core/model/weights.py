"""Foreign weights into our models: tensors from local files, never code, never a hub.

Backbone releases (timm, TResNet) come as ``.safetensors`` or as a pickled plain state_dict. The
latter is read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
containers, so a full pickled model or training object is refused with a clear message. This module
knows nothing of the FPSM: :func:`load_backbone_weights` takes any module with a ``.backbone``, as
timm keeps weight loading apart from its architectures (``timm/models/_helpers.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from fpsm_core.model.errors import CheckpointError


def import_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or from a plain pickled state_dict, never running code.

    Raises:
        CheckpointError: the file is missing, unreadable, or a pickle of more than tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist.")
    if path.suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc}).") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for hostile or odd pickles
        raise CheckpointError(
            f"{path} is a pickle that is not a plain state_dict, so it is refused "
            f"(loading it could run arbitrary code): {str(exc).splitlines()[0][:160]}"
        ) from None
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} does not contain a state_dict of tensors.")
    return {str(k): v for k, v in obj.items()}


def load_backbone_weights(model: nn.Module, path: str | Path) -> list[str]:
    """Load backbone weights (e.g. ImageNet TResNet-M) into ``model.backbone``; returns skipped keys.

    Args:
        model: any module with a ``.backbone`` submodule (an FPSM, or another head on a timm trunk).
        path: ``.safetensors`` or a plain state_dict pickle; classifier tensors in it are ignored.

    Raises:
        CheckpointError: the file cannot be read or none of its tensors fit the backbone.
    """
    backbone = getattr(model, "backbone", None)
    if not isinstance(backbone, nn.Module):
        raise TypeError(f"{type(model).__name__} has no .backbone module to load weights into.")
    state = import_state_dict(path)
    target = backbone.state_dict()
    # timm checkpoints of the full classifier use the same names as features_only wrappers, with
    # dots where FeatureListNet keeps the original module path; try both spellings.
    mapped: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        for candidate in (key, key.replace("body.", "body_", 1), key.removeprefix("backbone.")):
            if candidate in target and target[candidate].shape == value.shape:
                mapped[candidate] = value
                break
    if not mapped:
        name = getattr(model, "backbone_name", type(backbone).__name__)
        raise CheckpointError(f"{path} has no tensors that fit the {name} backbone.")
    missing = [k for k in target if k not in mapped]
    backbone.load_state_dict({**target, **mapped})
    return missing

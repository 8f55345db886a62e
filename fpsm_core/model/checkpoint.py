"""Checkpoints that carry their own truth: safetensors weights beside a JSON description.

A checkpoint ``NAME`` is two files: ``NAME.safetensors`` (tensors only, no code) and ``NAME.json``
(architecture, preprocessing, label names, per-class thresholds, provenance and the SHA-256 of the
weights file). Loading checks the hash before touching the tensors and never unpickles. A pickled
``.pt``/``.pth`` is refused, except a plain state_dict that ``torch.load(weights_only=True)`` reads,
which :func:`import_state_dict` accepts for importing backbone weights (timm / TResNet releases).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from fpsm_core import __version__
from fpsm_core.labels import LABELS
from fpsm_core.model.fpsm import FPSM, ModelConfigError

FORMAT = "fpsm-checkpoint"
FORMAT_VERSION = 1
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar")
ResizePolicy = Literal["letterbox", "stretch"]


class CheckpointError(ValueError):
    """A checkpoint that cannot be trusted or read; the message names the file and the problem."""


@dataclass(frozen=True)
class Preprocessing:
    """How an image becomes the model's input (see :mod:`fpsm_core.preprocess`).

    Attributes:
        input_size: side of the square input in pixels.
        resize: ``"letterbox"`` keeps the aspect ratio and pads with black; ``"stretch"`` squashes.
        mean, std: per-channel normalisation applied to the [0, 1] windowed image.
    """

    input_size: int = 512
    resize: ResizePolicy = "letterbox"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class CheckpointMeta:
    """The JSON half of a checkpoint."""

    name: str
    architecture: Mapping[str, Any]
    preprocessing: Preprocessing = field(default_factory=Preprocessing)
    labels: tuple[str, ...] = LABELS
    thresholds: tuple[float, ...] = tuple(0.5 for _ in LABELS)
    untrained: bool = False
    disclaimer: str = "Research software, not for clinical use."
    provenance: Mapping[str, Any] = field(default_factory=dict)
    weights_file: str = ""
    weights_sha256: str = ""
    weights_dtype: str = "float32"
    trust: Mapping[str, Any] | None = None  # fpsm_core.trust's versioned section; None: no gate

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.trust is None:
            data.pop("trust")
        data["labels"] = list(self.labels)
        data["thresholds"] = [float(t) for t in self.thresholds]
        data["preprocessing"]["mean"] = list(self.preprocessing.mean)
        data["preprocessing"]["std"] = list(self.preprocessing.std)
        data["architecture"] = dict(self.architecture)
        data["provenance"] = dict(self.provenance)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: Path) -> CheckpointMeta:
        if data.get("format") != FORMAT:
            raise CheckpointError(f"{source} is not an FPSM checkpoint description (format field).")
        if int(data.get("format_version", 0)) > FORMAT_VERSION:
            raise CheckpointError(
                f"{source} uses checkpoint format {data.get('format_version')}, newer than this "
                f"program understands ({FORMAT_VERSION}); upgrade fpsm."
            )
        try:
            pre = dict(data.get("preprocessing", {}))
            labels = tuple(str(x) for x in data["labels"])
            thresholds = tuple(float(x) for x in data.get("thresholds", [0.5] * len(labels)))
            meta = cls(
                name=str(data["name"]),
                architecture=dict(data["architecture"]),
                preprocessing=Preprocessing(
                    input_size=int(pre.get("input_size", 512)),
                    resize=pre.get("resize", "letterbox"),
                    mean=tuple(float(x) for x in pre.get("mean", IMAGENET_MEAN)),
                    std=tuple(float(x) for x in pre.get("std", IMAGENET_STD)),
                ),
                labels=labels,
                thresholds=thresholds,
                untrained=bool(data.get("untrained", False)),
                disclaimer=str(data.get("disclaimer", "")),
                provenance=dict(data.get("provenance", {})),
                weights_file=str(data["weights_file"]),
                weights_sha256=str(data["weights_sha256"]),
                weights_dtype=str(data.get("weights_dtype", "float32")),
                trust=dict(data["trust"]) if isinstance(data.get("trust"), dict) else None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{source} is missing or has a malformed field: {exc}.") from None
        if len(meta.thresholds) != len(meta.labels):
            raise CheckpointError(
                f"{source} has {len(meta.thresholds)} thresholds for {len(meta.labels)} labels."
            )
        if meta.preprocessing.resize not in ("letterbox", "stretch"):
            raise CheckpointError(
                f"{source} has an unknown resize policy {meta.preprocessing.resize!r}."
            )
        return meta


@dataclass(frozen=True)
class LoadedCheckpoint:
    model: FPSM
    meta: CheckpointMeta
    json_path: Path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(
    model: FPSM,
    path: str | Path,
    *,
    name: str | None = None,
    preprocessing: Preprocessing | None = None,
    labels: Sequence[str] = LABELS,
    thresholds: Sequence[float] | None = None,
    untrained: bool = False,
    provenance: Mapping[str, Any] | None = None,
    dtype: Literal["float32", "float16"] = "float32",
    disclaimer: str = "Research software, not for clinical use.",
) -> Path:
    """Write ``<path>.safetensors`` and ``<path>.json``; returns the JSON path.

    ``path`` may end in ``.json``, ``.safetensors`` or nothing. ``dtype="float16"`` halves the file;
    loading casts back to float32 on the CPU.
    """
    stem = _stem(Path(path))
    stem.parent.mkdir(parents=True, exist_ok=True)
    weights_path = stem.with_suffix(".safetensors")
    json_path = stem.with_suffix(".json")
    target = torch.float16 if dtype == "float16" else torch.float32
    tensors = {}
    for key, value in model.state_dict().items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(target)
        tensors[key] = value.contiguous()
    arch = model.config()
    save_file(
        tensors, str(weights_path), metadata={"format": FORMAT, "architecture": json.dumps(arch)}
    )
    prov = {
        "code_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **(dict(provenance) if provenance else {}),
    }
    meta = CheckpointMeta(
        name=name or stem.name,
        architecture=arch,
        preprocessing=preprocessing or Preprocessing(),
        labels=tuple(labels),
        thresholds=tuple(
            float(t) for t in (thresholds if thresholds is not None else [0.5] * len(labels))
        ),
        untrained=untrained,
        disclaimer=disclaimer,
        provenance=prov,
        weights_file=weights_path.name,
        weights_sha256=sha256_file(weights_path),
        weights_dtype=dtype,
    )
    if len(meta.labels) != model.num_classes:
        raise CheckpointError(
            f"{json_path}: {len(meta.labels)} labels for a {model.num_classes}-class model."
        )
    _write_json_atomic(json_path, meta.to_json())
    return json_path


def update_checkpoint_meta(path: str | Path, **changes: Any) -> Path:
    """Rewrite a checkpoint's JSON with some fields changed (e.g. ``thresholds`` after calibration).

    The weights are not touched, so their hash stays valid.
    """
    json_path = _stem(Path(path)).with_suffix(".json")
    meta = read_checkpoint_meta(json_path)
    if "thresholds" in changes:
        changes["thresholds"] = tuple(float(t) for t in changes["thresholds"])
    if "provenance" in changes:
        changes["provenance"] = {**meta.provenance, **changes["provenance"]}
    _write_json_atomic(json_path, replace(meta, **changes).to_json())
    return json_path


def read_checkpoint_meta(path: str | Path) -> CheckpointMeta:
    """Read and validate the JSON half without loading weights."""
    path = Path(path)
    _refuse_pickle(path)
    json_path = _stem(path).with_suffix(".json")
    if not json_path.is_file():
        if path.suffix == ".safetensors" and path.is_file():
            raise CheckpointError(
                f"{path} has no {json_path.name} beside it; an FPSM checkpoint needs its JSON description."
            )
        raise CheckpointError(f"{path} does not exist or is not an FPSM checkpoint.")
    try:
        data = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{json_path} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{json_path} does not hold a JSON object.")
    return CheckpointMeta.from_json(data, json_path)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    """Load a checkpoint after checking its weights' SHA-256; the model is in eval mode, float32."""
    path = Path(path)
    meta = read_checkpoint_meta(path)
    json_path = _stem(path).with_suffix(".json")
    weights_path = json_path.parent / meta.weights_file
    if not weights_path.is_file():
        raise CheckpointError(f"{json_path} names weights {meta.weights_file} which do not exist.")
    actual = sha256_file(weights_path)
    if actual != meta.weights_sha256:
        raise CheckpointError(
            f"{weights_path} does not match the SHA-256 recorded in {json_path.name}; "
            "the weights were changed or corrupted."
        )
    try:
        tensors = load_file(str(weights_path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{weights_path} is not a readable safetensors file ({exc})."
        ) from None
    try:
        model = FPSM(**_arch_kwargs(meta.architecture))
    except (ModelConfigError, TypeError) as exc:
        raise CheckpointError(
            f"{json_path} describes a model that cannot be built: {exc}"
        ) from None
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise CheckpointError(
            f"{weights_path} does not fit the architecture in {json_path.name}: {first}"
        ) from None
    if model.num_classes != len(meta.labels):
        raise CheckpointError(
            f"{json_path} lists {len(meta.labels)} labels for a {model.num_classes}-class model."
        )
    model.eval().to(device)
    return LoadedCheckpoint(model=model, meta=meta, json_path=json_path)


def import_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read tensors from ``.safetensors`` or from a plain pickled state_dict, never running code.

    Pickles are read with ``torch.load(weights_only=True)``, which refuses anything but tensors and
    containers; a full pickled model or training object is refused with a clear message.
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


def load_backbone_weights(model: FPSM, path: str | Path) -> list[str]:
    """Load timm backbone weights (e.g. ImageNet TResNet-M) into an FPSM; returns skipped keys."""
    state = import_state_dict(path)
    target = model.backbone.state_dict()
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
        raise CheckpointError(f"{path} has no tensors that fit the {model.backbone_name} backbone.")
    missing = [k for k in target if k not in mapped]
    model.backbone.load_state_dict({**target, **mapped})
    return missing


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or (path.is_file() and zipfile.is_zipfile(path)):
        raise CheckpointError(
            f"{path} is a pickled PyTorch file; FPSM loads only safetensors checkpoints with a JSON "
            "description (import plain state_dicts with import_state_dict / --backbone-weights)."
        )


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def _arch_kwargs(arch: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {
        "backbone",
        "levels",
        "aggregation",
        "num_classes",
        "synthetic_embedding",
        "in_chans",
    }
    unknown = set(arch) - allowed
    if unknown:
        raise TypeError(f"unknown architecture fields {sorted(unknown)}")
    kwargs = dict(arch)
    if "levels" in kwargs:
        kwargs["levels"] = tuple(int(x) for x in kwargs["levels"])
    return kwargs


def _write_json_atomic(path: Path, data: Mapping[str, Any]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)

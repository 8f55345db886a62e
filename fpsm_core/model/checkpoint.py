"""Checkpoints that carry their own truth: safetensors weights beside a JSON description.

A checkpoint ``NAME`` is two files: ``NAME.safetensors`` (tensors only, no code) and ``NAME.json``
(architecture, preprocessing, label names, per-class thresholds, provenance and the SHA-256 of the
weights file). Loading checks the hash before touching the tensors and never unpickles. A pickled
``.pt``/``.pth`` is refused here; importing foreign backbone weights (timm / TResNet releases, plain
state_dicts read with ``torch.load(weights_only=True)``) is :mod:`fpsm_core.model.weights`' job.
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
from fpsm_core.model import validate
from fpsm_core.model.errors import CheckpointError
from fpsm_core.model.fpsm import FPSM, ModelConfigError
from fpsm_core.model.materialise import (
    assign_weights,
    build_on_meta,
    compute_in_float32,
    plain_state_dict,
)
from fpsm_core.model.provenance import TrainingProvenance, train_positives_of
from fpsm_core.preprocess import IMAGENET_MEAN, IMAGENET_STD, RESIZE_POLICIES, Preprocessing

FORMAT = "fpsm-checkpoint"
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".pkl", ".pickle", ".tar")


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

    @property
    def train_positives(self) -> dict[str, int] | None:
        """Positive training images per label, as training recorded them; None when unrecorded.

        Read here and nowhere else (the legacy ``train_counts`` key is understood too).
        """
        return train_positives_of(self.provenance)

    @property
    def training(self) -> TrainingProvenance | None:
        """The trainer's typed record, None for checkpoints not made by ``fpsm train``."""
        return TrainingProvenance.from_json(self.provenance)

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
        if meta.preprocessing.resize not in RESIZE_POLICIES:
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
    for key, value in plain_state_dict(model).items():
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.to(target)
        tensors[key] = value.contiguous()
    arch = model.config()
    # A new file renamed into place, never a rewrite of the old one: a viewer or service that
    # loaded the old weights memory-maps them, and truncating a mapped file under it would crash it.
    partial = weights_path.with_suffix(".safetensors.tmp")
    save_file(tensors, str(partial), metadata={"format": FORMAT, "architecture": json.dumps(arch)})
    partial.replace(weights_path)
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
    data = validate.read_json_bounded(json_path, "checkpoint description")
    validate.check_checkpoint_json(data, json_path, FORMAT_VERSION)
    return CheckpointMeta.from_json(data, json_path)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", *, keep_stored_dtype: bool = False
) -> LoadedCheckpoint:
    """Load a checkpoint after checking its weights' SHA-256; the model is in eval mode, float32.

    ``keep_stored_dtype``: half-precision weights stay half in memory and are read as float32 by
    each layer (:func:`~fpsm_core.model.materialise.compute_in_float32`): the same outputs at half
    the memory, for models used for inference only (a model to train or save needs the default).

    The architecture is built without weights and takes the file's tensors as its own (float32
    ones memory-mapped, see :mod:`fpsm_core.model.materialise`), so loading holds each weight once.
    """
    path = Path(path)
    meta = read_checkpoint_meta(path)
    json_path = _stem(path).with_suffix(".json")
    weights_path = validate.confined_file(
        json_path.parent, meta.weights_file, json_path, "weights_file"
    )
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
    validate.check_finite_tensors(tensors, weights_path)
    kwargs = _arch_kwargs_or_error(meta.architecture, json_path)
    try:
        skeleton = build_on_meta(lambda: FPSM(**kwargs))  # shapes only: no memory, no init
    except (ModelConfigError, TypeError) as exc:
        raise CheckpointError(
            f"{json_path} describes a model that cannot be built: {exc}"
        ) from None
    # float32 tensors stay the memory-mapped ones (``.float()`` is a no-op for them).
    state = {
        k: (v.float() if v.is_floating_point() and not keep_stored_dtype else v)
        for k, v in tensors.items()
    }
    try:
        if assign_weights(skeleton, state):
            model = skeleton
        else:  # a buffer the file does not carry and timm cannot rebuild: the plain way
            model = FPSM(**kwargs)
            model.load_state_dict(state, strict=True)
    except RuntimeError:
        why = validate.state_dict_mismatch(
            build_on_meta(lambda: FPSM(**kwargs)).state_dict(), state
        )
        raise CheckpointError(
            f"{weights_path} does not fit the architecture in {json_path.name}: {why}."
        ) from None
    if model.num_classes != len(meta.labels):
        raise CheckpointError(
            f"{json_path} lists {len(meta.labels)} labels for a {model.num_classes}-class model."
        )
    if keep_stored_dtype:
        compute_in_float32(model)
    model.eval().to(device)
    return LoadedCheckpoint(model=model, meta=meta, json_path=json_path)


def _refuse_pickle(path: Path) -> None:
    if path.suffix.lower() in PICKLE_SUFFIXES or (path.is_file() and zipfile.is_zipfile(path)):
        raise CheckpointError(
            f"{path} is a pickled PyTorch file; FPSM loads only safetensors checkpoints with a JSON "
            "description (import plain state_dicts with import_state_dict / --backbone-weights)."
        )


def _stem(path: Path) -> Path:
    return path.with_suffix("") if path.suffix in (".json", ".safetensors") else path


def _arch_kwargs_or_error(arch: Mapping[str, Any], json_path: Path) -> dict[str, Any]:
    try:
        return _arch_kwargs(arch)
    except TypeError as exc:
        raise CheckpointError(
            f"{json_path} describes a model that cannot be built: {exc}"
        ) from None


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

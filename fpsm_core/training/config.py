"""Training configuration: YAML files with ``inherit:``, typed sections and command-line overrides.

A config has seven sections (``data``, ``model``, ``input``, ``augment``, ``loss``, ``optim``,
``run``), each a frozen dataclass whose fields are checked by type when read. A file may start
from another with ``inherit: base.yaml`` (relative to itself) and change only what differs.
Overrides are ``key=value`` strings parsed as YAML: ``optim.lr=3e-4``, or a bare field name when
exactly one section has it (``epochs=2``, ``input_size=256``, ``max_train_images=500``).

Every mistake (unknown key, wrong type, impossible value) is a :class:`ConfigError` whose one
sentence names the file and the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from fpsm_core.data.records import FORMATS
from fpsm_core.data.split import SPLITS
from fpsm_core.data.transforms import AugmentConfig
from fpsm_core.errors import FpsmError
from fpsm_core.preprocess import IMAGENET_MEAN, IMAGENET_STD


class ConfigError(FpsmError):
    """A training configuration that cannot be used; names the file and the key."""


@dataclass(frozen=True)
class DataConfig:
    """Where images and labels come from and how they are split and loaded.

    Attributes:
        format: ``cxrlt`` (also 2024 ``fpath``), ``dadam``, ``nih``, ``mura``, ``generic`` or ``auto``.
        train_csv: the label table; extra tables (e.g. DADAM output next to CXR-LT) go in
            ``extra_train_csv`` with their own format ``extra_format``.
        val_csv: a separate validation table; without one, ``train_csv`` is split.
        image_root: folder the CSV paths are relative to (default the CSV's folder).
        split: ``patient`` (default) or ``random`` (the paper's 80/20 split).
        synthetic_in_val: keep DADAM-made images in the validation set (default: score on real
            images only; a synthetic image stays with its patient's side of the split).
        val_fraction: validation share when splitting; 0 trains on everything, without validation.
        max_train_images, max_val_images: random subsets for quick runs.
        cache_dir: cached resized copies (decode each file once).
        num_workers: DataLoader worker processes per rank.
        class_balanced: draw images with repeat-factor weights (``balance_power``).
    """

    format: str = "cxrlt"
    train_csv: str | None = None
    image_root: str | None = None
    extra_train_csv: str | None = None
    extra_format: str = "dadam"
    extra_image_root: str | None = None
    val_csv: str | None = None
    val_image_root: str | None = None
    path_column: str | None = None
    label_columns: tuple[str, ...] | None = None
    patient_column: str | None = None
    split: str = "patient"
    val_fraction: float = 0.2
    synthetic_in_val: bool = False
    split_seed: int = 0
    max_train_images: int | None = None
    max_val_images: int | None = None
    check_files: bool = True
    cache_dir: str | None = None
    num_workers: int = 4
    class_balanced: bool = False
    balance_power: float = 0.5


@dataclass(frozen=True)
class ModelConfig:
    """The FPSM architecture (see :func:`fpsm_core.model.create_fpsm`).

    Attributes:
        init_from: an FPSM checkpoint whose matching weights start this run (fine-tuning, e.g. on
            DADAM output); tensors whose name or shape differ keep their fresh initialisation.
        backbone_weights: local timm backbone weights (ImageNet), never downloaded.
    """

    backbone: str = "tresnet_m"
    levels: tuple[int, ...] = (4, 3, 2)
    aggregation: str = "sum"
    synthetic_embedding: bool = False
    drop_rate: float = 0.0
    in_chans: int = 3
    backbone_weights: str | None = None
    init_from: str | None = None


@dataclass(frozen=True)
class InputConfig:
    """Preprocessing recorded in the checkpoint (input size, resize policy, normalisation)."""

    input_size: int = 512
    resize: str = "letterbox"
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


@dataclass(frozen=True)
class LossConfig:
    """Per-level multi-label loss: ``type`` ``asl`` (asymmetric) or ``bce``."""

    type: str = "asl"
    gamma_neg: float = 4.0
    gamma_pos: float = 0.0
    clip: float = 0.05


@dataclass(frozen=True)
class OptimConfig:
    """AdamW, learning-rate schedule, mixed precision, EMA and gradient accumulation.

    Attributes:
        batch_size: images per step per rank (the effective batch is
            ``batch_size * accumulate * world_size``).
        schedule: ``cosine`` (linear warm-up then cosine), ``onecycle`` or ``constant``.
        amp: mixed precision on CUDA (``amp_dtype`` bfloat16 or float16 with loss scaling).
        ema: evaluate and save an exponential moving average of the weights.
    """

    epochs: int = 20
    batch_size: int = 32
    accumulate: int = 1
    lr: float = 2e-4
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float | None = None
    amp: bool = True
    amp_dtype: str = "bfloat16"
    ema: bool = True
    ema_decay: float = 0.9998
    channels_last: bool = True
    sync_bn: bool = False
    compile: bool = False


@dataclass(frozen=True)
class RunConfig:
    """Output, seeds, device, logging and checkpoint cadence.

    Attributes:
        out_dir: run folder (checkpoints, ``metrics.jsonl``/``.csv``, resume state).
        name: checkpoint name (``<out_dir>/<name>.safetensors`` + ``.json``).
        device: ``auto``, ``cpu``, ``cuda``; under torchrun each rank takes ``cuda:LOCAL_RANK``.
        save_every_steps: also write the resume state every N optimizer steps (0: epochs only).
        trust: at the end, fit the distribution gate and the calibration of the chosen checkpoint
            on the training and validation images (``fpsm_core.trust``; needs validation data).
    """

    out_dir: str = "runs/fpsm"
    name: str = "fpsm"
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    eval_every: int = 1
    eval_batch_size: int | None = None
    save_every_steps: int = 0
    progress: bool = True
    checkpoint_dtype: str = "float32"
    description: str = ""
    trust: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    input: InputConfig = field(default_factory=InputConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-ready dict (tuples become lists)."""
        return _plain(dataclasses.asdict(self))  # type: ignore[no-any-return]

    def replace(self, overrides: Sequence[str] | Mapping[str, Any]) -> TrainConfig:
        """A copy with ``key=value`` overrides (or a ``{key: value}`` mapping) applied."""
        data = self.to_dict()
        apply_overrides(data, overrides, source="overrides")
        return config_from_dict(data, source="overrides")


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "input": InputConfig,
    "augment": AugmentConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "run": RunConfig,
}

CHOICES: dict[str, tuple[str, ...]] = {
    "data.format": FORMATS,
    "data.extra_format": FORMATS,
    "data.split": SPLITS,
    "model.aggregation": ("sum", "concat"),
    "input.resize": ("letterbox", "stretch"),
    "loss.type": ("asl", "bce"),
    "optim.schedule": ("cosine", "onecycle", "constant"),
    "optim.amp_dtype": ("bfloat16", "float16"),
    "run.checkpoint_dtype": ("float32", "float16"),
}


def load_config(
    path: str | Path | None = None, overrides: Sequence[str] | Mapping[str, Any] = ()
) -> TrainConfig:
    """Read a YAML config (following ``inherit:``) and apply overrides; None = all defaults."""
    data: dict[str, Any] = {} if path is None else _read_yaml(Path(path), seen=())
    source = str(path) if path is not None else "defaults"
    apply_overrides(data, overrides, source=source)
    return config_from_dict(data, source=source)


def config_from_dict(data: Mapping[str, Any], source: str = "<dict>") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from nested plain data."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the config must be a mapping of sections.")
    unknown = [k for k in data if k not in SECTIONS and k != "inherit"]
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {unknown[0]!r}; sections are {', '.join(SECTIONS)}."
        )
    sections = {}
    for name, cls in SECTIONS.items():
        raw = data.get(name) or {}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{source}: section {name!r} must be a mapping.")
        sections[name] = _build(cls, raw, f"{source}: {name}")
    config = TrainConfig(**sections)
    validate(config, source)
    return config


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any], source: str
) -> None:
    """Apply ``section.key=value`` / ``key=value`` overrides in place (values parsed as YAML)."""
    items: list[tuple[str, Any]]
    if isinstance(overrides, Mapping):
        items = list(overrides.items())
    else:
        items = []
        for text in overrides:
            if "=" not in text:
                raise ConfigError(f"override {text!r} is not of the form key=value.")
            key, value = text.split("=", 1)
            try:
                parsed = yaml.safe_load(value) if value.strip() else None
            except yaml.YAMLError:
                parsed = value
            items.append((key.strip(), parsed))
    for key, value in items:
        section, name = _locate(key, source)
        data.setdefault(section, {})
        if data[section] is None:
            data[section] = {}
        data[section][name] = value


def _locate(key: str, source: str) -> tuple[str, str]:
    if "." in key:
        section, name = key.split(".", 1)
        if section not in SECTIONS:
            raise ConfigError(
                f"{source}: override {key!r} names no section ({', '.join(SECTIONS)})."
            )
        if name not in {f.name for f in fields(SECTIONS[section])}:
            raise ConfigError(f"{source}: section {section!r} has no key {name!r}.")
        return section, name
    owners = [s for s, cls in SECTIONS.items() if key in {f.name for f in fields(cls)}]
    if not owners:
        raise ConfigError(f"{source}: no section has a key {key!r}.")
    if len(owners) > 1:
        raise ConfigError(
            f"{source}: {key!r} is ambiguous ({', '.join(f'{o}.{key}' for o in owners)}); "
            "name the section."
        )
    return owners[0], key


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path} does not exist.")
    if path.resolve() in seen:
        raise ConfigError(f"{path} inherits from itself.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        first = str(exc).replace("\n", " ")
        raise ConfigError(f"{path} is not valid YAML ({first}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}.")
    parent = data.pop("inherit", None)
    if parent is None:
        return data
    base = _read_yaml((path.parent / str(parent)), seen=(*seen, path.resolve()))
    return _merge(base, data)


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(dict(out[key]), value)
        else:
            out[key] = value
    return out


def _build(cls: type, raw: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = [k for k in raw if k not in names]
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}.")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in raw.items()}
    return cls(**kwargs)


def _coerce(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where} must not be empty.")
        others = [a for a in args if a is not type(None)]
        return _coerce(value, others[0], where)
    if value is None:
        raise ConfigError(f"{where} must not be empty.")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where} must be true or false, not {value!r}.")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be an integer, not {value!r}.")
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(f"{where} must be an integer, not {value!r}.") from None
        if not number.is_integer():
            raise ConfigError(f"{where} must be an integer, not {value!r}.")
        return int(number)
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number, not {value!r}.")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}.") from None
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{where} must be a string, not {value!r}.")
    if origin is tuple:
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in items)
        if len(items) != len(args):
            raise ConfigError(f"{where} needs {len(args)} values, not {len(items)}.")
        return tuple(_coerce(v, a, where) for v, a in zip(items, args, strict=True))
    raise ConfigError(f"{where} has a type this reader does not know ({tp}).")  # pragma: no cover


def validate(config: TrainConfig, source: str = "<config>") -> None:
    """Check values a type cannot express (choices, ranges, levels)."""
    for key, allowed in CHOICES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigError(f"{source}: {key} is {value!r}; choose one of {', '.join(allowed)}.")
    m, o, d, i, r = config.model, config.optim, config.data, config.input, config.run
    if not m.levels or any(level not in (1, 2, 3, 4) for level in m.levels):
        raise ConfigError(f"{source}: model.levels {list(m.levels)} must be levels 1..4.")
    if len(set(m.levels)) != len(m.levels):
        raise ConfigError(f"{source}: model.levels {list(m.levels)} repeats a level.")
    checks = [
        (o.epochs >= 1, "optim.epochs must be at least 1"),
        (o.batch_size >= 1, "optim.batch_size must be at least 1"),
        (o.accumulate >= 1, "optim.accumulate must be at least 1"),
        (o.lr > 0, "optim.lr must be positive"),
        (o.weight_decay >= 0, "optim.weight_decay must not be negative"),
        (0 < o.ema_decay < 1, "optim.ema_decay must lie between 0 and 1"),
        (o.warmup_epochs >= 0, "optim.warmup_epochs must not be negative"),
        (0 <= d.val_fraction < 1, "data.val_fraction must lie in [0, 1)"),
        (d.num_workers >= 0, "data.num_workers must not be negative"),
        (
            d.max_train_images is None or d.max_train_images >= 1,
            "data.max_train_images must be >= 1",
        ),
        (d.max_val_images is None or d.max_val_images >= 1, "data.max_val_images must be >= 1"),
        (i.input_size >= 32, "input.input_size must be at least 32"),
        (len(i.mean) in (1, m.in_chans), "input.mean needs 1 or in_chans values"),
        (len(i.std) in (1, m.in_chans) and all(s > 0 for s in i.std), "input.std must be positive"),
        (r.log_every >= 1 and r.eval_every >= 1, "run.log_every and run.eval_every must be >= 1"),
        (r.save_every_steps >= 0, "run.save_every_steps must not be negative"),
        (config.augment.scale[0] <= config.augment.scale[1], "augment.scale must be (min, max)"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{source}: {message}.")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def dump_config(config: TrainConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (what the run really used)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
    return path

"""What a model folder may say: the whole checkpoint and ensemble JSON checked, with bounds.

A checkpoint or ensemble is data a user downloads or is sent, so everything it names is checked
before anything is built from it: the JSON's size and nesting depth before it is parsed (a
100,000-deep file would otherwise end in a RecursionError), every field's type and range after
(an ``input_size`` of 100000 would allocate 40 GB, a ``num_classes`` of 10^9 3.8 TB), every file it
names resolved inside the folder it lies in (no ``../x``, no absolute path, no symlink out), every
backbone a plain timm architecture name (``hf-hub:`` and ``local-dir:`` would make timm read the
network or any folder), and every weight finite. A non-finite number is refused at load rather
than carried to the outputs, because ``NaN`` is not JSON and a NaN probability ranks nothing.
Each problem is one :class:`CheckpointError` sentence naming the file and the field.

Nothing here imports torch or timm at module level; :func:`enforce_offline` is what keeps timm and
huggingface_hub from reaching a hub, whatever the environment says.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Any

from fpsm_core.messages import fmt_number
from fpsm_core.model.errors import CheckpointError

if TYPE_CHECKING:
    import torch

# Bounds, stated once (docs/security.md repeats them).
MAX_JSON_BYTES = 8 << 20  # checkpoint / ensemble JSON: provenance can be long, not megabytes long
MAX_JSON_DEPTH = 32  # the format itself nests 4 deep; provenance may nest a little more
INPUT_SIZE_RANGE = (32, 2048)  # the paper used 512; 2048 is a 48 MB float input per image
MAX_CLASSES = 1000
CHANNELS_RANGE = (1, 4)
MAX_MEMBERS = 16  # the paper's ensemble has 3; each member is a whole model in memory
MAX_LABEL_CHARS = 200
LEVELS = (1, 2, 3, 4)
AGGREGATIONS = ("sum", "concat")
RESIZES = ("letterbox", "stretch")
DTYPES = ("float32", "float16")
# A timm architecture name, optionally with a pretrained tag (``resnet18.a1_in1k``). No ``/`` or
# ``:``: those are the prefixes (``hf-hub:org/name``, ``local-dir:/path``) that make timm read a
# hub or an arbitrary folder.
_BACKBONE = re.compile(r"[A-Za-z0-9_]{1,64}(\.[A-Za-z0-9_]{1,64})?")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class _Invalid(Exception):
    """A field problem, turned into a CheckpointError sentence naming the file."""


_VERBS = ("is ", "has ", "names ", "does ", "uses ", "lists ", "nests ", "cannot ")


def _error(source: Path, text: str) -> Exception:
    """``<file> <predicate>.``; a bare field problem reads ``<file> has a malformed field: ...``."""

    text = text.rstrip(".")
    if not text.startswith(_VERBS):
        text = f"has a malformed field: {text}"
    return CheckpointError(f"{source} {text}.")


def enforce_offline() -> None:
    """No hub access, ever: set HF_HUB_OFFLINE and the flag huggingface_hub read at import.

    ``fpsm_core/__init__`` sets the variable before anything can import timm; this also covers a
    process that imported huggingface_hub (with the variable unset) before fpsm_core.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]


def backbone_problem(name: Any) -> str | None:
    """Why a backbone name is refused (None when it is a plain timm architecture name)."""
    if not isinstance(name, str) or not _BACKBONE.fullmatch(name):
        return (
            f"backbone {fmt_number(name)} is not a plain timm architecture name (letters, digits "
            "and '_', optionally '.tag'; no 'hf-hub:', 'local-dir:' or '/')"
        )
    return None


def ensure_offline_plain_backbone(name: Any) -> str | None:
    """The hook before every ``timm.create_model``: offline mode on, and the name's problem."""
    enforce_offline()
    return backbone_problem(name)


# -- JSON before parsing ---------------------------------------------------------------------------
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON text, strings skipped (no parsing)."""
    depth = deepest = 0
    for match in _TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def read_json_bounded(path: Path, what: str = "model description") -> Any:
    """Parse a JSON file after checking its size and depth; CheckpointError on any problem."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise _error(
                path, f"is {size:,} bytes; a {what} is at most {MAX_JSON_BYTES:,} bytes of JSON."
            )
        data = path.read_bytes()
    except OSError as exc:
        raise _error(path, f"cannot be read ({exc.strerror or exc}).") from None
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise _error(path, f"nests {depth} levels deep; a {what} nests at most {MAX_JSON_DEPTH}.")
    import json

    def no_constants(token: str) -> Any:
        raise ValueError(f"{token} is not a JSON number")

    try:
        return json.loads(data.decode("utf-8"), parse_constant=no_constants)
    except UnicodeDecodeError:
        raise _error(path, "is not UTF-8 text, so it is not a JSON file.") from None
    except (ValueError, RecursionError) as exc:
        raise _error(path, f"is not valid JSON ({str(exc)[:120]}).") from None


# -- field checks ------------------------------------------------------------------------------------
def _int(value: Any, field: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{field} must be a whole number in {lo}..{hi}, not {fmt_number(value)}")
    if not lo <= value <= hi:
        raise _Invalid(f"{field} must be in {lo}..{hi}, not {fmt_number(value)}")
    return value


def _number(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _Invalid(f"{field} must be a number, not {fmt_number(value)}")
    if not math.isfinite(float(value)):
        raise _Invalid(f"{field} must be finite, not {fmt_number(value)}")
    return float(value)


def _str(value: Any, field: str, max_chars: int = 10_000) -> str:
    if not isinstance(value, str):
        raise _Invalid(f"{field} must be text, not {fmt_number(value)}")
    if len(value) > max_chars:
        raise _Invalid(f"{field} is {len(value):,} characters long (at most {max_chars:,})")
    return value


def _list(value: Any, field: str, lo: int, hi: int) -> list[Any]:
    if not isinstance(value, list):
        raise _Invalid(f"{field} must be a list, not {fmt_number(value)}")
    if not lo <= len(value) <= hi:
        raise _Invalid(f"{field} must have {lo}..{hi} entries, not {len(value)}")
    return value


def _choice(value: Any, field: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise _Invalid(f"{field} must be one of {', '.join(choices)}, not {fmt_number(value)}")
    return str(value)


def _format_version(data: Mapping[str, Any], current: int) -> None:
    version = data.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _Invalid(f"format_version must be a whole number from 1, not {fmt_number(version)}")
    if version > current:
        raise _Invalid(
            f"uses format {version}, newer than this program understands ({current}); upgrade fpsm"
        )


def _labels(value: Any, field: str = "labels") -> list[str]:
    labels = [_str(x, f"{field}[{i}]", MAX_LABEL_CHARS) for i, x in enumerate(value)]
    if any(not x.strip() for x in labels):
        raise _Invalid(f"{field} has an empty label")
    seen: set[str] = set()
    for x in labels:
        if x in seen:
            raise _Invalid(f"{field} names {x!r} twice")
        seen.add(x)
    return labels


def _thresholds(value: Any, n: int, field: str = "thresholds") -> None:
    items = _list(value, field, n, n)
    for i, t in enumerate(items):
        t = _number(t, f"{field}[{i}]")
        if not 0.0 <= t <= 1.0:
            raise _Invalid(f"{field}[{i}] must be a probability in [0, 1], not {fmt_number(t)}")


def _architecture(arch: Any) -> int:
    """Check the architecture mapping; returns its input channels."""
    if not isinstance(arch, dict):
        raise _Invalid(f"architecture must be an object, not {fmt_number(arch)}")
    allowed = {
        "backbone",
        "levels",
        "aggregation",
        "num_classes",
        "synthetic_embedding",
        "in_chans",
    }
    unknown = sorted(str(k) for k in arch if k not in allowed)
    if unknown:
        raise _Invalid(f"architecture has unknown fields {unknown[:5]}")
    if "backbone" not in arch:
        raise _Invalid("architecture names no backbone")
    why = backbone_problem(arch["backbone"])
    if why:
        raise _Invalid(why)
    if "levels" in arch:
        levels = _list(arch["levels"], "architecture.levels", 1, len(LEVELS))
        for i, lv in enumerate(levels):
            _int(lv, f"architecture.levels[{i}]", LEVELS[0], LEVELS[-1])
        if len(set(levels)) != len(levels):
            raise _Invalid(f"architecture.levels {levels} repeat a level")
    if "aggregation" in arch:
        _choice(arch["aggregation"], "architecture.aggregation", AGGREGATIONS)
    if "num_classes" in arch:
        _int(arch["num_classes"], "architecture.num_classes", 1, MAX_CLASSES)
    if "synthetic_embedding" in arch and not isinstance(arch["synthetic_embedding"], bool):
        raise _Invalid("architecture.synthetic_embedding must be true or false")
    return _int(arch.get("in_chans", 3), "architecture.in_chans", *CHANNELS_RANGE)


def _preprocessing(pre: Any, channels: int) -> None:
    if not isinstance(pre, dict):
        raise _Invalid(f"preprocessing must be an object, not {fmt_number(pre)}")
    if "input_size" in pre:
        _int(pre["input_size"], "preprocessing.input_size", *INPUT_SIZE_RANGE)
    if "resize" in pre:
        _choice(pre["resize"], "preprocessing.resize", RESIZES)
    for key in ("mean", "std"):
        if key not in pre:
            continue
        values = _list(pre[key], f"preprocessing.{key}", 1, CHANNELS_RANGE[1])
        if len(values) not in (1, channels):
            raise _Invalid(
                f"preprocessing.{key} has {len(values)} values for a {channels}-channel input"
            )
        for i, v in enumerate(values):
            v = _number(v, f"preprocessing.{key}[{i}]")
            if key == "std" and v <= 0:
                raise _Invalid(f"preprocessing.std[{i}] must be above 0, not {fmt_number(v)}")


def check_checkpoint_json(data: Any, source: Path, current_version: int) -> None:
    """Validate a whole checkpoint description (the ``.json`` half) with bounds.

    Args:
        data: The parsed JSON.
        source: The file, for the message.
        current_version: The newest format this program reads.

    Raises:
        CheckpointError: The first problem, as one sentence naming the file and the field.
    """
    try:
        if not isinstance(data, dict):
            raise _Invalid("does not hold a JSON object")
        if data.get("format") != "fpsm-checkpoint":
            raise _Invalid("is not an FPSM checkpoint description (format field)")
        _format_version(data, current_version)
        for key in ("name", "architecture", "labels", "weights_file", "weights_sha256"):
            if key not in data:
                raise _Invalid(f"is missing or has a malformed field: no {key!r}")
        _str(data["name"], "name", 500)
        channels = _architecture(data["architecture"])
        _preprocessing(data.get("preprocessing", {}), channels)
        labels = _labels(_list(data["labels"], "labels", 1, MAX_CLASSES))
        n_classes = data["architecture"].get("num_classes", len(labels))
        if n_classes != len(labels):
            raise _Invalid(f"lists {len(labels)} labels for a {n_classes}-class model")
        if "thresholds" in data:
            _thresholds(data["thresholds"], len(labels))
        if "untrained" in data and not isinstance(data["untrained"], bool):
            raise _Invalid("untrained must be true or false")
        if "disclaimer" in data:
            _str(data["disclaimer"], "disclaimer")
        if "provenance" in data and not isinstance(data["provenance"], dict):
            raise _Invalid("provenance must be an object")
        weights = _str(data["weights_file"], "weights_file", 500)
        why = relative_name_problem(weights)
        if why:
            raise _Invalid(f"weights_file {why}")
        if not _SHA256.fullmatch(_str(data["weights_sha256"], "weights_sha256", 64)):
            raise _Invalid("weights_sha256 must be 64 lower-case hex digits")
        if "weights_dtype" in data:
            _choice(data["weights_dtype"], "weights_dtype", DTYPES)
    except _Invalid as exc:
        raise _error(source, str(exc)) from None


def check_ensemble_json(data: Any, source: Path) -> list[tuple[str, str | None]]:
    """Validate an ``ensemble.json``; returns its members as (checkpoint, name or None).

    Members are bounded in number and de-duplicated: a checkpoint named twice is refused (it
    would weigh twice in the mean and load twice into memory).

    Raises:
        CheckpointError: The first problem, as one sentence naming the file and the field.
    """
    try:
        if not isinstance(data, dict) or data.get("format") != "fpsm-ensemble":
            raise _Invalid("is not an FPSM ensemble description (format field)")
        _format_version(data, 1)
        entries = data.get("members")
        if not isinstance(entries, list) or not entries:
            raise _Invalid("names no members")
        _list(entries, "members", 1, MAX_MEMBERS)
        members: list[tuple[str, str | None]] = []
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or "checkpoint" not in entry:
                raise _Invalid(f"has a member without a 'checkpoint' field (members[{i}])")
            rel = _str(entry["checkpoint"], f"members[{i}].checkpoint", 500)
            why = relative_name_problem(rel)
            if why:
                raise _Invalid(f"members[{i}].checkpoint {why}")
            key = str(PurePosixPath(rel.replace("\\", "/")).with_suffix(""))
            if key in seen:
                raise _Invalid(f"names member {rel!r} twice")
            seen.add(key)
            name = entry.get("name")
            members.append((rel, None if name is None else _str(name, f"members[{i}].name", 500)))
        for key in ("name", "description", "disclaimer"):
            if key in data:
                _str(data[key], key)
        if "untrained" in data and not isinstance(data["untrained"], bool):
            raise _Invalid("untrained must be true or false")
        if "thresholds" in data:
            _list(data["thresholds"], "thresholds", 1, MAX_CLASSES)
            _thresholds(data["thresholds"], len(data["thresholds"]))
    except _Invalid as exc:
        raise _error(source, str(exc)) from None
    return members


# -- files named by a model folder ------------------------------------------------------------------
def relative_name_problem(rel: str) -> str | None:
    """Why a file name from a model folder is refused (None: a plain relative path)."""
    if not rel or "\x00" in rel:
        return "is empty"
    posix, windows = PurePosixPath(rel), PureWindowsPath(rel)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        return f"{rel!r} is an absolute path; it must name a file inside the model folder"
    if ".." in posix.parts or ".." in windows.parts:
        return f"{rel!r} climbs out with '..'; it must name a file inside the model folder"
    return None


def confined_file(folder: Path, rel: str, source: Path, field: str) -> Path:
    """``folder / rel`` after checking it resolves inside ``folder`` (symlinks followed).

    Raises:
        CheckpointError: ``rel`` is absolute, climbs out, or resolves (through a symlink) outside.
    """
    why = relative_name_problem(rel)
    if why:
        raise _error(source, f"{field} {why}.")
    path = folder / rel
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Python < 3.13)
        inside = False
    if not inside:
        raise _error(source, f"{field} {rel!r} resolves outside the model folder (a symlink out?).")
    return path


# -- weights -------------------------------------------------------------------------------------------
def check_finite_tensors(tensors: Mapping[str, torch.Tensor], source: Path) -> None:
    """Refuse weights holding NaN or infinity (they would give NaN probabilities).

    Raises:
        CheckpointError: Naming the first tensor with a non-finite value.
    """
    import torch

    for name, value in tensors.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise _error(
                source,
                f"has {bad} NaN or infinite value(s) in tensor {name!r}; the weights are broken.",
            )


def state_dict_mismatch(
    expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor]
) -> str:
    """Say which tensors do not fit, with both shapes (torch's message keeps only its first line)."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    wrong = [
        f"{k!r} is {tuple(given[k].shape)} in the file but the architecture needs "
        f"{tuple(expected[k].shape)}"
        for k in expected
        if k in given and tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    parts: list[str] = []
    if wrong:
        more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
        parts.append(f"tensor {wrong[0]}{more}")
    if missing:
        parts.append(f"{len(missing)} tensor(s) missing, first {missing[0]!r}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected tensor(s), first {unexpected[0]!r}")
    return "; ".join(parts) or "tensors do not fit"

"""Hardening of model folders: tampered checkpoint JSON, files outside the folder, hub names.

Every tampered description must end in one CheckpointError sentence naming the file, never in
another exception (issue 22, classes 4, 6, 7 and 11).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file

from fpsm_core.model import CheckpointError, create_fpsm, load_model, read_checkpoint_meta
from fpsm_core.model.checkpoint import load_checkpoint, save_checkpoint, sha256_file
from fpsm_core.model.ensemble import write_ensemble
from fpsm_core.model.fpsm import FPSM, ModelConfigError
from fpsm_core.model.validate import MAX_MEMBERS, fmt_number, json_depth


@pytest.fixture(scope="module")
def ckpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    save_checkpoint(create_fpsm("resnet18", levels=(4, 3)).eval(), folder / "m")
    return folder


def _copy(ckpt_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(ckpt_dir, folder)
    return folder


def _tamper(folder: Path, change: Any) -> Path:
    path = folder / "m.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


def _one_sentence(exc: pytest.ExceptionInfo[CheckpointError], name: str) -> str:
    text = str(exc.value)
    assert name in text and "\n" not in text and text.endswith("."), text
    return text


CASES: list[tuple[str, Any, str]] = [
    ("format_version text", lambda d: d.update(format_version="x"), "format_version"),
    ("format_version float", lambda d: d.update(format_version=1.5), "format_version"),
    ("levels with text", lambda d: d["architecture"].update(levels=[4, "x"]), "levels"),
    ("levels out of range", lambda d: d["architecture"].update(levels=[4, 5]), "levels"),
    ("levels repeated", lambda d: d["architecture"].update(levels=[4, 4]), "repeat"),
    ("backbone with slash", lambda d: d["architecture"].update(backbone="evil/net"), "backbone"),
    ("backbone hf-hub", lambda d: d["architecture"].update(backbone="hf-hub:o/n"), "hf-hub"),
    ("backbone local-dir", lambda d: d["architecture"].update(backbone="local-dir:/x"), "backbone"),
    ("input_size 0", lambda d: d["preprocessing"].update(input_size=0), "input_size"),
    ("input_size -5", lambda d: d["preprocessing"].update(input_size=-5), "input_size"),
    ("input_size 100000", lambda d: d["preprocessing"].update(input_size=100000), "32..2048"),
    ("input_size 1.5", lambda d: d["preprocessing"].update(input_size=1.5), "whole number"),
    ("input_size true", lambda d: d["preprocessing"].update(input_size=True), "whole number"),
    ("num_classes 1e9", lambda d: d["architecture"].update(num_classes=10**9), "num_classes"),
    ("mean empty", lambda d: d["preprocessing"].update(mean=[]), "mean"),
    ("mean short", lambda d: d["preprocessing"].update(mean=[0.5, 0.5]), "mean"),
    ("std zero", lambda d: d["preprocessing"].update(std=[0.0, 0.2, 0.2]), "std"),
    ("thresholds text", lambda d: d.update(thresholds=["x"] * 26), "thresholds"),
    ("thresholds scalar", lambda d: d.update(thresholds=5), "thresholds"),
    ("threshold above 1", lambda d: d["thresholds"].__setitem__(0, 5), "thresholds[0]"),
    ("thresholds short", lambda d: d.update(thresholds=[0.5]), "thresholds"),
    ("labels repeated", lambda d: d["labels"].__setitem__(1, d["labels"][0]), "twice"),
    ("weights_file climbs", lambda d: d.update(weights_file="../x.safetensors"), "'..'"),
    ("weights_file absolute", lambda d: d.update(weights_file="/etc/passwd"), "absolute"),
    ("no architecture", lambda d: d.pop("architecture"), "missing"),
]


@pytest.mark.parametrize(("what", "change", "word"), CASES, ids=[c[0] for c in CASES])
def test_tampered_field_is_one_sentence(
    ckpt_dir: Path, tmp_path: Path, what: str, change: Any, word: str
) -> None:
    path = _tamper(_copy(ckpt_dir, tmp_path), change)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert word in _one_sentence(exc, "m.json"), what


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_threshold_is_refused_at_load(
    ckpt_dir: Path, tmp_path: Path, token: str
) -> None:
    path = _copy(ckpt_dir, tmp_path) / "m.json"
    text = path.read_text()
    data = json.loads(text)
    data["thresholds"][0] = 123.25
    path.write_text(json.dumps(data).replace("123.25", token))
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint_meta(path)
    assert token in _one_sentence(exc, "m.json")


def test_json_nested_100000_deep_is_refused_before_parsing(tmp_path: Path) -> None:
    path = tmp_path / "deep.json"
    path.write_text(
        '{"format": "fpsm-checkpoint", "provenance": ' + "[" * 100_000 + "]" * 100_000 + "}"
    )
    with pytest.raises(CheckpointError) as exc:
        read_checkpoint_meta(path)
    assert "nests 100001 levels deep" in _one_sentence(exc, "deep.json")
    assert json_depth(b'{"a": "[[[[", "b": [1, [2]]}') == 3  # brackets inside strings don't count


def test_weights_symlinked_out_of_the_folder_are_refused(ckpt_dir: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt_dir, tmp_path)
    outside = tmp_path / "elsewhere.safetensors"
    (folder / "m.safetensors").rename(outside)
    (folder / "m.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(folder / "m.json")
    assert "outside the model folder" in _one_sentence(exc, "m.json")


def test_nan_weights_are_refused_at_load(ckpt_dir: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt_dir, tmp_path)
    weights = folder / "m.safetensors"
    tensors = load_file(str(weights))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.ndim == 2)
    tensors[name][0, 0] = math.nan
    save_file(tensors, str(weights))
    _tamper(folder, lambda d: d.update(weights_sha256=sha256_file(weights)))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(folder / "m.json")
    assert name in _one_sentence(exc, "m.safetensors")


def test_shape_mismatch_names_the_tensor_and_both_shapes(ckpt_dir: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt_dir, tmp_path)
    weights = folder / "m.safetensors"
    tensors = load_file(str(weights))
    tensors["heads.0.weight"] = torch.zeros(26, 7)
    save_file(tensors, str(weights))
    _tamper(folder, lambda d: d.update(weights_sha256=sha256_file(weights)))
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(folder / "m.json")
    text = _one_sentence(exc, "m.safetensors")
    assert "'heads.0.weight' is (26, 7) in the file but the architecture needs (26, 512)" in text


def _ensemble(folder: Path, members: list[Any]) -> Path:
    path = folder / "ensemble.json"
    path.write_text(
        json.dumps({"format": "fpsm-ensemble", "format_version": 1, "members": members})
    )
    return path


@pytest.mark.parametrize(
    ("member", "word"),
    [("../m.json", "'..'"), ("/etc/passwd", "absolute"), ("C:\\x.json", "absolute")],
)
def test_ensemble_member_outside_the_folder_is_refused(
    ckpt_dir: Path, tmp_path: Path, member: str, word: str
) -> None:
    folder = tmp_path / "ens"
    folder.mkdir()
    with pytest.raises(CheckpointError) as exc:
        load_model(_ensemble(folder, [{"checkpoint": member}]))
    assert word in _one_sentence(exc, "ensemble.json")


def test_ensemble_member_symlinked_out_is_refused(ckpt_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ens"
    folder.mkdir()
    (folder / "link").symlink_to(ckpt_dir, target_is_directory=True)
    with pytest.raises(CheckpointError) as exc:
        load_model(_ensemble(folder, [{"checkpoint": "link/m.json"}]))
    assert "outside the model folder" in _one_sentence(exc, "ensemble.json")


def test_ensemble_naming_one_member_400_times_is_refused_before_loading(
    ckpt_dir: Path, tmp_path: Path
) -> None:
    folder = _copy(ckpt_dir, tmp_path)
    with pytest.raises(CheckpointError) as exc:
        load_model(_ensemble(folder, [{"checkpoint": "m.json"}] * 2))
    assert "names member 'm.json' twice" in _one_sentence(exc, "ensemble.json")
    with pytest.raises(CheckpointError) as exc:
        load_model(_ensemble(folder, [{"checkpoint": f"m{i}.json"} for i in range(400)]))
    assert f"1..{MAX_MEMBERS} entries, not 400" in _one_sentence(exc, "ensemble.json")


def test_valid_ensemble_still_loads(ckpt_dir: Path, tmp_path: Path) -> None:
    folder = _copy(ckpt_dir, tmp_path)
    write_ensemble(folder, [folder / "m.json"], name="one")
    assert load_model(folder).member_names == ("m",)


def test_hub_backbone_is_refused_by_the_python_api_without_network() -> None:
    for name in ("hf-hub:org/name", "local-dir:/tmp", "timm/resnet18"):
        with pytest.raises(ModelConfigError, match="not a plain timm architecture name"):
            FPSM(backbone=name)


def test_core_import_turns_hub_access_off_whatever_the_environment() -> None:
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HUB_OFFLINE"] = "0"
    code = (
        "import huggingface_hub.constants as c; assert not c.HF_HUB_OFFLINE;"
        "import fpsm_core.model.fpsm as f, os;"
        "f._create_backbone('resnet18', 3);"
        "print(os.environ['HF_HUB_OFFLINE'], c.HF_HUB_OFFLINE)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.split() == ["1", "True"]


def test_messages_format_numbers_with_6_significant_digits() -> None:
    assert fmt_number(1e300) == "1e+300"
    assert fmt_number(10**400) == "1.00000e+400" and fmt_number(-5) == "-5"


# -- property-based: any tampering of any field is a CheckpointError sentence -------------------------
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**12), max_value=10**12)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_FIELDS = [
    ("format_version",),
    ("name",),
    ("labels",),
    ("thresholds",),
    ("weights_file",),
    ("weights_sha256",),
    ("weights_dtype",),
    ("untrained",),
    ("provenance",),
    ("architecture",),
    ("architecture", "backbone"),
    ("architecture", "levels"),
    ("architecture", "aggregation"),
    ("architecture", "num_classes"),
    ("architecture", "in_chans"),
    ("architecture", "synthetic_embedding"),
    ("preprocessing",),
    ("preprocessing", "input_size"),
    ("preprocessing", "resize"),
    ("preprocessing", "mean"),
    ("preprocessing", "std"),
]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(_FIELDS), value=_json_values, drop=st.booleans())
def test_property_tampered_json_is_checkpoint_error_or_valid(
    ckpt_dir: Path, field: tuple[str, ...], value: Any, drop: bool
) -> None:
    data = json.loads((ckpt_dir / "m.json").read_text())
    target = data
    for key in field[:-1]:
        target = target[key]
    if drop:
        target.pop(field[-1], None)
    else:
        target[field[-1]] = value
    path = ckpt_dir / "tampered.json"
    path.write_text(json.dumps(data))
    try:
        meta = read_checkpoint_meta(path)
    except CheckpointError as exc:
        text = str(exc)
        assert "tampered.json" in text and "\n" not in text and len(text) < 400, text
        return
    # Accepted: then every number it carries is in range.
    assert 32 <= meta.preprocessing.input_size <= 2048
    assert all(0.0 <= t <= 1.0 for t in meta.thresholds)
    assert all(s > 0 for s in meta.preprocessing.std)

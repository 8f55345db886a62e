"""The one user-error base: every error class a user can cause renders one sentence naming the file."""

from __future__ import annotations

import importlib
import pickle
import pkgutil
from pathlib import Path

import pytest
import torch

import fpsm_core
from fpsm_core.device import DeviceError, pick_device
from fpsm_core.errors import MAX_REASON, FpsmError, one_sentence, shorten

# Error classes that must derive from FpsmError, with the module that defines them.
EXPECTED = {
    "fpsm_core.cli.main": "CLIError",
    "fpsm_core.dadam.errors": "DadamError",
    "fpsm_core.data.records": "DatasetError",
    "fpsm_core.device": "DeviceError",
    "fpsm_core.explain.errors": "ExplainError",
    "fpsm_core.inference": "InferenceError",
    "fpsm_core.io.deid": "DeidentificationError",
    "fpsm_core.io.errors": "ImageLoadError",
    "fpsm_core.labels": "UnknownLabelError",
    "fpsm_core.labels_table": "LabelsTableError",
    "fpsm_core.metrics": "MetricsError",
    "fpsm_core.model.errors": "CheckpointError",
    "fpsm_core.model.fpsm": "ModelConfigError",
    "fpsm_core.sim.config": "SimConfigError",
    "fpsm_core.sim.writer": "SimWriteError",
    "fpsm_core.training.config": "ConfigError",
    "fpsm_core.training.state": "ResumeError",
    "train.compare": "CompareError",
    "train.curves": "CurvesError",
    "train.dadam_control": "ControlError",
    "train.evaluate": "EvaluationError",
}


def _all_subclasses() -> list[type[FpsmError]]:
    for module in EXPECTED:
        importlib.import_module(module)
    seen: list[type[FpsmError]] = []
    todo = list(FpsmError.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            todo.extend(cls.__subclasses__())
    return seen


def test_every_user_error_class_of_the_project_derives_from_the_base() -> None:
    found = {(c.__module__, c.__name__) for c in _all_subclasses()}
    assert set(EXPECTED.items()) <= found
    # ...and fpsm_core defines no other exception class a user could meet outside the base.
    for info in pkgutil.walk_packages(fpsm_core.__path__, "fpsm_core."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, Exception)
                and value.__module__ == info.name
                and not name.startswith("_")
            ):
                assert issubclass(value, FpsmError), f"{info.name}.{name}"


@pytest.mark.parametrize("cls", _all_subclasses(), ids=lambda c: c.__name__)
def test_every_subclass_renders_one_line_naming_the_path(cls: type[FpsmError]) -> None:
    path = Path("/data/some folder/labels.csv")
    err = cls(reason="the value\n   was\tbad " + "x" * 2000, path=path)  # type: ignore[call-arg]
    text = str(err)
    assert "\n" not in text and "\t" not in text and "  " not in text
    assert str(path) in text and "the value was bad" in text
    assert len(text) < MAX_REASON + len(str(path)) + 40  # long values trimmed
    assert text.endswith(".") and isinstance(err, ValueError)
    assert err.path == path and "\n" not in err.reason
    again = pickle.loads(pickle.dumps(err))  # crosses process pools intact
    assert type(again) is cls and str(again) == text and again.path == path


def test_single_message_constructors_keep_working() -> None:
    from fpsm_core.model.checkpoint import CheckpointError
    from fpsm_core.training.config import ConfigError

    assert str(CheckpointError("m.json is not a checkpoint.")) == "m.json is not a checkpoint."
    assert str(ConfigError("c.yaml: optim.epochs must be at least 1")) == (
        "c.yaml: optim.epochs must be at least 1."
    )
    assert str(FpsmError("is it?")) == "is it?"  # no full stop after a question


def test_positional_path_reason_classes_keep_their_wording() -> None:
    from fpsm_core.dadam.errors import DadamError
    from fpsm_core.io.errors import ImageLoadError

    assert str(DadamError("a.csv", "labels CSV not found.")) == "'a.csv': labels CSV not found."
    assert str(DadamError(None, "alpha must lie in (0, 1]")) == "alpha must lie in (0, 1]."
    err = ImageLoadError("x.dcm", "no pixel data")
    assert str(err) == "Cannot load 'x.dcm': no pixel data." and err.reason == "no pixel data"


def test_inference_error_stays_a_runtime_error() -> None:
    from fpsm_core.inference import InferenceError

    assert issubclass(InferenceError, RuntimeError) and issubclass(InferenceError, FpsmError)


def test_one_sentence_and_shorten() -> None:
    assert one_sentence("a\n  b\r\n\tc") == "a b c"
    assert one_sentence(KeyError()) == "KeyError"
    assert one_sentence("y" * 50, limit=10) == "y" * 9 + "…"
    assert shorten("1" * 300, limit=12) == "'1111111111…"
    assert shorten(1e300) == "1e+300"


def test_pick_device_auto_and_names() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if (
        expected == "cpu"
        and getattr(torch.backends, "mps", None)
        and torch.backends.mps.is_available()
    ):
        expected = "mps"
    assert pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "", "meta"])
def test_a_bad_device_is_one_sentence_naming_the_option(name: str) -> None:
    with pytest.raises(DeviceError) as info:
        pick_device(name, option="run.device")
    assert str(info.value).startswith("run.device ") and "\n" not in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="machine has CUDA")
def test_cuda_without_a_gpu_is_refused() -> None:
    with pytest.raises(DeviceError, match="--device cuda:1 was asked for but no CUDA"):
        pick_device("cuda:1")

"""The grad-cam package path: every method, batched targets, and no hooks or memory left behind."""

from __future__ import annotations

import gc
import warnings

import numpy as np
import pytest
import torch

from fpsm_core.explain import METHODS, ExplainError, level_cams, package_cams
from fpsm_core.model import create_fpsm


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_fpsm("mobilenetv3_small_050", levels=(4, 2), num_classes=5).eval()


@pytest.fixture(scope="module")
def images():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def _hook_count(model: torch.nn.Module) -> int:
    return sum(
        len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        for m in model.modules()
    )


def _live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on deprecated torch aliases warns
        warnings.simplefilter("ignore")
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_gives_normalised_maps_per_class_and_level(model, images, method):
    maps = package_cams(model, images[:1], method, "level", levels=[2], classes=[0, 3])
    assert maps.shape == (1, 2, 1, 64, 64) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1 + 1e-6
    assert maps.max() > 0.9
    if method == "eigencam":  # class-free: the same map for every class
        np.testing.assert_array_equal(maps[:, 0], maps[:, 1])


def test_batched_targets_equal_one_target_per_pass(model, images):
    one = package_cams(model, images, "gradcam++", "sum", classes=[1, 2, 4], batch_size=1)
    many = package_cams(model, images, "gradcam++", "sum", classes=[1, 2, 4], batch_size=6)
    np.testing.assert_allclose(one, many, atol=1e-5)


def test_level_order_of_the_result_follows_the_levels_argument(model, images):
    both = package_cams(model, images, "gradcam", "level", levels=[2, 4], classes=[1])
    deep = package_cams(model, images, "gradcam", "level", levels=[4], classes=[1])
    np.testing.assert_array_equal(both[:, :, 1], deep[:, :, 0])
    np.testing.assert_allclose(both, level_cams(model, images, [1])[:, :, ::-1], atol=1e-4)


def test_repeated_calls_leave_no_hooks_grads_or_tensors(model, images):
    baseline_hooks = _hook_count(model)
    package_cams(model, images, "gradcam", "sum", classes=[0, 1])
    before = _live_tensors()
    for _ in range(4):
        package_cams(model, images, "gradcam", "sum", classes=[0, 1])
        package_cams(model, images, "layercam", "level", classes=[2])
    assert _hook_count(model) == baseline_hooks
    assert all(p.grad is None for p in model.parameters())
    assert _live_tensors() <= before


def test_failures_inside_the_package_remove_hooks_and_are_not_swallowed(model, images, monkeypatch):
    baseline = _hook_count(model)

    def broken(*args, **kwargs):
        raise IndexError("boom")

    monkeypatch.setattr(model, "forward_levels", broken)
    # The package's __exit__ swallows IndexError; ours must come out.
    with pytest.raises(RuntimeError, match="IndexError: boom"):
        package_cams(model, images, "gradcam", "level", classes=[0])
    assert _hook_count(model) == baseline
    monkeypatch.undo()
    with pytest.raises(RuntimeError):  # wrong channel count fails inside the conv
        package_cams(model, torch.randn(1, 1, 64, 64), "gradcam", "level", classes=[0])
    assert _hook_count(model) == baseline


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "gradcam-xl"}, "unknown CAM method 'gradcam-xl'"),
        ({"levels": [3]}, r"levels \[3\] are not among the model's levels \(4, 2\)"),
        ({"target": "total"}, "target must be 'level' or 'sum'"),
        ({"classes": [9]}, "class index 9 is out of range"),
    ],
)
def test_bad_requests_raise_one_sentence(model, images, kwargs, message):
    with pytest.raises(ExplainError, match=message):
        package_cams(model, images, **kwargs)


def test_works_when_called_from_inference_mode(model, images):
    expected = package_cams(model, images, "gradcam", "level", classes=[1])
    with torch.inference_mode():
        x = images.clone()  # an inference tensor, as the inference service makes
        got = package_cams(model, x, "gradcam", "level", classes=[1])
    np.testing.assert_array_equal(got, expected)

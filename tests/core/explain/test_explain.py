"""Closed-form per-level Grad-CAM against the grad-cam package, and the CamSet built from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

from fpsm_core.explain import (
    CamSet,
    ExplainError,
    cams_from_output,
    compute_cams,
    ensemble_camset,
    level_cams,
    level_contributions,
    normalise_like_gradcam,
    package_cams,
    raw_level_cams,
    resize_maps,
    resolve_classes,
)
from fpsm_core.model import create_fpsm

TOL = 1e-4


def _model(backbone: str, levels: tuple[int, ...], aggregation: str = "sum", **kw: object):
    torch.manual_seed(0)
    return create_fpsm(backbone, levels=levels, aggregation=aggregation, num_classes=6, **kw).eval()


class _Level(torch.nn.Module):
    def __init__(self, model: torch.nn.Module, position: int) -> None:
        super().__init__()
        self.model, self.position = model, position

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_levels(x)[self.position]


def _reference(model, x: torch.Tensor, cls: int, position: int) -> np.ndarray:
    """The package exactly as a user would call it, one class and one level at a time."""
    wrapper = _Level(model, position)
    with GradCAM(model=wrapper, target_layers=[model.level_modules[position]]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(cls)] * x.shape[0])


@pytest.mark.parametrize(
    ("backbone", "levels", "aggregation", "shape"),
    [
        ("resnet18", (4, 3, 2), "sum", (64, 64)),
        ("mobilenetv3_small_050", (2, 4), "concat", (64, 96)),
        ("efficientnet_b0", (1, 3), "sum", (96, 64)),
        ("convnext_atto", (3,), "sum", (64, 64)),
    ],
)
def test_closed_form_equals_gradcam_package(backbone, levels, aggregation, shape):
    model = _model(backbone, levels, aggregation)
    torch.manual_seed(1)
    x = torch.randn(2, 3, *shape)
    classes = [0, 3, 5]
    ours = level_cams(model, x, classes=classes)
    assert ours.shape == (2, 3, len(levels), *shape) and ours.dtype == np.float32
    for k, cls in enumerate(classes):
        for pos in range(len(levels)):
            ref = _reference(model, x, cls, pos)
            np.testing.assert_allclose(ours[:, k, pos], ref, atol=TOL, rtol=0)
    assert ours.max() > 0.99  # normalised, not trivially zero


def test_package_cams_equals_closed_form_with_per_image_classes_and_synthetic():
    model = _model("resnet18", (4, 3, 2), synthetic_embedding=True)
    with torch.no_grad():
        for emb in model.synthetic:
            emb.weight.normal_()
    x = torch.randn(3, 3, 64, 64)
    flags = torch.tensor([0, 1, 1])
    classes = np.array([[0, 1], [5, 2], [4, 4]])
    ours = level_cams(model, x, classes=classes, synthetic=flags)
    theirs = package_cams(
        model, x, "gradcam", "level", classes=classes, synthetic=flags, batch_size=4
    )
    np.testing.assert_allclose(ours, theirs, atol=TOL, rtol=0)


def test_all_zero_maps_after_relu_are_zero_like_the_package():
    model = _model("resnet18", (4, 3, 2))
    with torch.no_grad():  # resnet features are >= 0, so a negative weight row kills the map
        for head in model.heads:
            head.weight[2] = -head.weight[2].abs() - 0.01
    x = torch.randn(2, 3, 64, 64)
    ours = level_cams(model, x, classes=[2, 1])
    assert np.all(ours[:, 0] == 0)
    for pos in range(3):
        np.testing.assert_array_equal(_reference(model, x, 2, pos), 0)
        np.testing.assert_allclose(ours[:, 1, pos], _reference(model, x, 1, pos), atol=TOL)


def test_summed_logit_matches_only_at_the_deepest_level():
    model = _model("resnet18", (3, 4, 2))
    x = torch.randn(1, 3, 64, 64)
    ours = level_cams(model, x, classes=[1, 4])
    summed = package_cams(model, x, "gradcam", "sum", classes=[1, 4])
    deepest = model.levels.index(4)
    np.testing.assert_allclose(summed[:, :, deepest], ours[:, :, deepest], atol=TOL)
    shallow = model.levels.index(2)
    assert np.abs(summed[:, :, shallow] - ours[:, :, shallow]).max() > 1e-2


def test_hirescam_of_a_level_logit_is_its_gradcam():
    # The gradient is constant over the grid, so HiResCAM's elementwise product equals Grad-CAM.
    model = _model("mobilenetv3_small_050", (4, 2))
    x = torch.randn(2, 3, 64, 64)
    ours = level_cams(model, x, classes=[0, 3])
    hires = package_cams(model, x, "hirescam", "level", classes=[0, 3])
    np.testing.assert_allclose(hires, ours, atol=TOL)


def test_normalisation_matches_scale_cam_image_twice():
    rng = np.random.default_rng(0)
    raw = rng.standard_normal((5, 7, 9)).astype(np.float32)
    raw[1] = 0.0
    raw[2] = -1.0  # all zero after the ReLU
    raw[3] = np.abs(raw[3]) + 3.0  # positive everywhere: the minimum matters
    raw[4] *= 1e-9  # tiny maxima: the 1e-7 epsilon matters
    relu = np.maximum(raw, 0)
    expected = scale_cam_image(np.maximum(scale_cam_image(relu, (40, 24)), 0))
    got = normalise_like_gradcam(raw, (24, 40))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    np.testing.assert_array_equal(got[1], 0)
    np.testing.assert_array_equal(got[2], 0)
    assert got[4].max() > 0.99  # the second pass rescales what the epsilon shrank in the first


def test_resize_maps_matches_opencv_per_map():
    import cv2

    rng = np.random.default_rng(1)
    maps = rng.random((2, 150, 5, 6)).astype(np.float32)
    got = resize_maps(maps, (17, 11))
    assert got.shape == (2, 150, 17, 11)
    expected = cv2.resize(maps[1, 140], (11, 17))
    np.testing.assert_allclose(got[1, 140], expected, atol=1e-6)


def test_contributions_sum_to_level_logits_minus_bias():
    model = _model("resnet18", (4, 3, 2), "concat", synthetic_embedding=True)
    with torch.no_grad():
        for emb in model.synthetic:
            emb.weight.normal_()
        out = model.forward_all(torch.randn(2, 3, 64, 64), torch.tensor([1, 0]))
    contrib = level_contributions(model, out)
    for pos, ((w, b), c) in enumerate(zip(model.head_weights(), contrib, strict=True)):
        emb = model.synthetic[pos](torch.tensor([1, 0]))
        expected = out.level_logits[pos] - b - emb @ w.T
        torch.testing.assert_close(c.sum(dim=(2, 3)), expected.detach(), atol=1e-5, rtol=1e-5)


def test_raw_maps_in_float32_from_half_features_and_under_autocast():
    model = _model("resnet18", (4, 3))
    with torch.no_grad():
        out = model.forward_all(torch.randn(1, 3, 64, 64))
    ref = raw_level_cams(model, out)
    half = type(out)(out.logits, out.level_logits, [f.half() for f in out.features])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = raw_level_cams(model, half)
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == torch.float32
        torch.testing.assert_close(g, r, atol=2e-3 * float(r.abs().max()), rtol=0)


def test_top_k_and_class_names():
    model = create_fpsm("mobilenetv3_small_050", levels=(4,), num_classes=26).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_all(x)
    cams = cams_from_output(model, out, 64, top_k=3)
    expected = torch.argsort(out.logits, dim=1, descending=True)[:, :3].numpy()
    np.testing.assert_array_equal(cams.classes, expected)
    named = resolve_classes(["Pneumothorax", "Mass"], 2, 26)
    np.testing.assert_array_equal(named, [[22, 13], [22, 13]])


@pytest.mark.parametrize(
    ("classes", "message"),
    [
        (6, "class index 6 is out of range for a model with 6 classes"),
        ([-1], "class index -1 is out of range"),
        (["Not A Finding"], "unknown class name 'Not A Finding'"),
        (np.zeros((3, 2), dtype=int), "do not fit a batch of 2 images"),
    ],
)
def test_bad_class_requests_raise_one_sentence(classes, message):
    model = _model("mobilenetv3_small_050", (4,))
    with pytest.raises(ExplainError, match=message):
        level_cams(model, torch.randn(2, 3, 64, 64), classes=classes)


def test_model_mode_is_restored():
    model = _model("mobilenetv3_small_050", (4, 2)).train()
    level_cams(model, torch.randn(2, 3, 64, 64), classes=[0])
    assert model.training
    package_cams(model, torch.randn(2, 3, 64, 64), classes=[0])
    assert model.training
    assert all(p.grad is None for p in model.parameters())


def test_size_argument_and_default_size():
    model = _model("mobilenetv3_small_050", (4, 3))
    x = torch.randn(1, 3, 64, 96)
    default = level_cams(model, x, classes=[1])
    assert default.shape == (1, 1, 2, 64, 96)
    small = level_cams(model, x, classes=[1], size=(20, 30))
    with torch.no_grad():
        out = model.forward_all(x)
    raw = [m.numpy() for m in raw_level_cams(model, out, [1])]
    np.testing.assert_allclose(small[:, :, 0], normalise_like_gradcam(raw[0], (20, 30)), atol=1e-6)


# --- fused maps and ensembles ---------------------------------------------------------------


def _camset(raws: list[np.ndarray], levels: tuple[int, ...], size: int = 32) -> CamSet:
    b, k = raws[0].shape[:2]
    classes = np.tile(np.arange(k), (b, 1))
    return CamSet(levels, classes, tuple(r.astype(np.float32) for r in raws), (size, size))


def test_fused_mean_is_the_total_positive_share_and_weights_sum_to_one():
    rng = np.random.default_rng(2)
    raws = [np.maximum(rng.standard_normal((2, 3, s, s)), 0) for s in (2, 4, 8)]
    cams = _camset(raws, (4, 3, 2))
    fused = cams.fused(normalise=False)
    shares = cams.positive_shares()
    np.testing.assert_allclose(fused.mean(axis=(-2, -1)), shares.sum(-1), rtol=1e-5)
    np.testing.assert_allclose(cams.fusion_weights().sum(-1), 1.0, rtol=1e-6)
    norm = cams.fused()
    np.testing.assert_allclose(norm.max(axis=(-2, -1)), 1.0, rtol=1e-6)
    assert norm.min() >= 0


def test_fused_ignores_levels_without_positive_evidence_and_keeps_zero_maps_zero():
    rng = np.random.default_rng(3)
    deep = np.zeros((1, 2, 2, 2))
    shallow = np.maximum(rng.standard_normal((1, 2, 8, 8)), 0)
    shallow[0, 1] = 0  # class 1: no evidence anywhere
    cams = _camset([deep, shallow], (4, 2))
    fused = cams.fused()
    up = resize_maps(shallow[0, 0].astype(np.float32), (32, 32))
    np.testing.assert_allclose(fused[0, 0], up / up.max(), atol=1e-6)
    np.testing.assert_array_equal(fused[0, 1], 0)
    np.testing.assert_array_equal(cams.fusion_weights()[0, 1], 0)
    np.testing.assert_allclose(cams.fusion_weights()[0, 0], [0, 1])


def test_single_level_fused_is_the_upsampled_raw_map():
    model = _model("resnet18", (4,))
    x = torch.randn(1, 3, 64, 64)
    cams = compute_cams(model, x, [0, 1])
    up = resize_maps(cams.raw[0], (64, 64))
    peak = up.max(axis=(-2, -1), keepdims=True)
    expected = np.divide(up, peak, out=np.zeros_like(up), where=peak > 0)
    np.testing.assert_allclose(cams.fused(), expected, atol=1e-6)


def test_ensemble_of_members_with_different_levels_and_grids():
    rng = np.random.default_rng(4)
    a = _camset([np.maximum(rng.standard_normal((1, 2, s, s)), 0) for s in (2, 4)], (4, 3))
    b = _camset([np.maximum(rng.standard_normal((1, 2, s, s)), 0) for s in (4, 16)], (4, 2), 64)
    ens = ensemble_camset([a, b])
    assert ens.levels == (4, 3, 2) and ens.input_size == (64, 64)
    assert [r.shape[-1] for r in ens.raw] == [4, 4, 16]
    # Sums are preserved: each level's share is the mean of the members' shares (0 if absent).
    expected = np.stack(
        [
            (a.positive_shares()[..., 0] + b.positive_shares()[..., 0]) / 2,
            a.positive_shares()[..., 1] / 2,
            b.positive_shares()[..., 1] / 2,
        ],
        axis=-1,
    )
    np.testing.assert_allclose(ens.positive_shares(), expected, rtol=1e-5)
    same = ensemble_camset([a, a])
    for r, s in zip(same.raw, a.raw, strict=True):
        np.testing.assert_allclose(r, s, rtol=1e-6)
    with pytest.raises(ExplainError, match="same images and classes"):
        ensemble_camset([a, a.take([1, 0])])


def test_camset_is_small_and_splits_per_image():
    model = create_fpsm("resnet18", levels=(4, 3, 2), num_classes=26).eval()
    cams = compute_cams(model, torch.randn(2, 3, 128, 128))
    assert cams.nbytes() < 2 * 26 * (4 * 4 + 8 * 8 + 16 * 16) * 4 + 1024
    first = cams.split()[0]
    assert first.batch_size == 1 and first.num_classes == 26
    np.testing.assert_array_equal(first.raw[2], cams.raw[2][:1])

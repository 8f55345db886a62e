"""The FPSM architecture: shapes, the sum decomposition, level taps and losses."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from fpsm_core.labels import LABELS
from fpsm_core.model import FPSM, ModelConfigError, create_fpsm
from fpsm_core.training.losses import asymmetric_loss, per_level_loss

LEVEL_SETS = [(4,), (4, 2), (4, 3, 2), (4, 3, 2, 1), (2, 4), (1,)]


@pytest.mark.parametrize(
    ("levels", "aggregation"), list(itertools.product(LEVEL_SETS, ["sum", "concat"]))
)
def test_shapes_and_sum_decomposition(levels: tuple[int, ...], aggregation: str) -> None:
    torch.manual_seed(0)
    model = create_fpsm("resnet18", levels=levels, aggregation=aggregation).eval()  # type: ignore[arg-type]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model.forward_all(x)
        logits = model(x)
        level_logits = model.forward_levels(x)
    assert model.levels == levels
    assert logits.shape == (2, len(LABELS))
    assert len(level_logits) == len(levels)
    assert all(z.shape == (2, len(LABELS)) for z in level_logits)
    torch.testing.assert_close(torch.stack(level_logits).sum(0), logits, rtol=0, atol=1e-5)
    # each level's map has the stride the paper gives its number
    for level, feat, ch in zip(levels, out.features, model.level_channels, strict=True):
        assert feat.shape[-1] == 64 // {1: 4, 2: 8, 3: 16, 4: 32}[level]
        assert feat.shape[1] == ch


def test_concat_is_one_linear_layer_over_pooled_vectors() -> None:
    torch.manual_seed(1)
    model = create_fpsm("resnet18", levels=(4, 3), aggregation="concat").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
        pooled = torch.cat([f.mean(dim=(2, 3)) for f in feats], dim=1)
        expected = model.heads[0](pooled)
        torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-5)


def test_level_modules_output_the_level_feature_maps() -> None:
    model = create_fpsm("resnet18", levels=(4, 3, 2)).eval()
    captured: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, o: captured.append(o)) for m in model.level_modules
    ]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        feats = model.forward_features(x)
    for h in handles:
        h.remove()
    assert len(captured) == 3
    for got, want in zip(captured, feats, strict=True):
        assert got is want


def test_paper_backbone_tresnet_m_levels_have_the_paper_channels() -> None:
    model = create_fpsm("tresnet_m", levels=(4, 3, 2, 1))
    assert model.level_channels == (2048, 1024, 128, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"levels": ()}, "at least one"),
        ({"levels": (5,)}, "not pyramid levels"),
        ({"levels": (4, 4)}, "repeat"),
        ({"aggregation": "mean"}, "aggregation"),
        ({"backbone": "no_such_net"}, "no backbone"),
    ],
)
def test_bad_configurations_raise_clear_errors(kwargs: dict, message: str) -> None:
    args = {"backbone": "resnet18", **kwargs}
    with pytest.raises(ModelConfigError, match=message):
        create_fpsm(**args)


def test_synthetic_embedding_shifts_logits_only_for_synthetic_images() -> None:
    torch.manual_seed(0)
    model = create_fpsm("resnet18", levels=(4, 2), synthetic_embedding=True).eval()
    assert isinstance(model, FPSM) and model.uses_synthetic_embedding
    with torch.no_grad():
        for emb in model.synthetic:  # type: ignore[union-attr]
            emb.weight[1].normal_()
        x = torch.randn(2, 3, 64, 64)
        original = model(x, synthetic=torch.tensor([0, 0]))
        default = model(x)
        synthetic = model(x, synthetic=torch.tensor([1, 1]))
    torch.testing.assert_close(original, default)
    assert (synthetic - original).abs().max() > 1e-3


def test_per_level_loss_is_the_sum_of_each_levels_bce() -> None:
    torch.manual_seed(0)
    levels = [torch.randn(4, 26) for _ in range(3)]
    targets = (torch.rand(4, 26) > 0.8).float()
    expected = sum(F.binary_cross_entropy_with_logits(z, targets) for z in levels)
    torch.testing.assert_close(per_level_loss(levels, targets), expected)


def test_asymmetric_loss_without_focusing_or_clipping_is_bce() -> None:
    torch.manual_seed(0)
    z = torch.randn(8, 26)
    t = (torch.rand(8, 26) > 0.7).float()
    asl = asymmetric_loss(z, t, gamma_neg=0, gamma_pos=0, clip=0)
    torch.testing.assert_close(asl, F.binary_cross_entropy_with_logits(z, t), rtol=1e-4, atol=1e-5)
    # focusing down-weights easy negatives, so the loss can only shrink
    assert asymmetric_loss(z, t, gamma_neg=4, clip=0.05) < asl


def test_training_steps_lower_the_per_level_loss() -> None:
    torch.manual_seed(0)
    model = create_fpsm("resnet18", levels=(4, 3, 2)).train()
    x = torch.randn(4, 3, 64, 64)
    t = (torch.rand(4, 26) > 0.8).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(3):
        loss = per_level_loss(model.forward_levels(x), t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

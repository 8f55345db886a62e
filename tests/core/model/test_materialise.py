"""Checkpoints load straight into the model: memory-mapped weights, no init, same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from fpsm_core.model import create_fpsm, load_checkpoint, save_checkpoint
from fpsm_core.model.materialise import assign_weights, build_on_meta, build_with_weights


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        if line.endswith(str(path)):
            lo, hi = line.split()[0].split("-")
            ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def test_blur_pool_backbone_loads_on_meta_with_the_same_outputs(tmp_path: Path) -> None:
    """resnetblur18 carries timm's non-persistent blur filters, which the file does not hold."""
    torch.manual_seed(0)
    reference = create_fpsm("resnetblur18", levels=(4, 3, 2)).eval()
    json_path = save_checkpoint(reference, tmp_path / "blur", name="blur")
    loaded = load_checkpoint(json_path).model
    tensors = [*loaded.parameters(), *loaded.buffers()]
    assert tensors and not any(t.is_meta for t in tensors)
    filters = {n: b for n, b in loaded.named_buffers() if n.endswith(".filt")}
    assert filters, "the backbone should have blur filters"
    for name, value in filters.items():
        assert torch.equal(value, dict(reference.named_buffers())[name])
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = reference.forward_all(x), loaded.forward_all(x)
    assert torch.equal(want.logits, got.logits)
    assert all(torch.equal(a, b) for a, b in zip(want.level_logits, got.level_logits, strict=True))


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux /proc")
def test_float32_weights_are_the_memory_mapped_file(tmp_path: Path) -> None:
    torch.manual_seed(1)
    json_path = save_checkpoint(create_fpsm("resnet18", levels=(4, 3)), tmp_path / "m", name="m")
    model = load_checkpoint(json_path).model
    ranges = _mapped_ranges(json_path.with_suffix(".safetensors"))
    assert ranges, "the weights file is not mapped"
    big = max(model.parameters(), key=lambda p: p.numel())
    address = big.untyped_storage().data_ptr()
    assert any(lo <= address < hi for lo, hi in ranges)
    # A new checkpoint written over the old path is a new file: the mapped one stays intact.
    before = big.detach().clone()
    save_checkpoint(create_fpsm("resnet18", levels=(4, 3)), tmp_path / "m", name="m")
    assert torch.equal(big.detach(), before)


def test_float16_checkpoints_load_as_float32(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = create_fpsm("resnet18", levels=(4,)).eval()
    json_path = save_checkpoint(model, tmp_path / "h", name="h", dtype="float16")
    loaded = load_checkpoint(json_path).model
    assert {p.dtype for p in loaded.parameters()} == {torch.float32}
    want = {k: v.half().float() for k, v in model.state_dict().items() if v.is_floating_point()}
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in want.items())


class _Fixed(nn.Module):
    """A buffer outside the state dict and no timm hook to rebuild it."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x) * self.scale


def test_a_buffer_that_cannot_be_rebuilt_falls_back_to_the_plain_build() -> None:
    torch.manual_seed(3)
    reference = _Fixed()
    state = reference.state_dict()
    assert assign_weights(build_on_meta(_Fixed), state) is False
    model = build_with_weights(_Fixed, state)
    x = torch.rand(5, 4)
    assert torch.equal(model(x), reference(x))


def test_a_state_dict_that_does_not_fit_raises() -> None:
    state = _Fixed().state_dict()
    state["linear.weight"] = torch.zeros(3, 4)
    with pytest.raises(RuntimeError):
        build_with_weights(_Fixed, state)


def test_float16_weights_kept_half_give_the_upcast_outputs(tmp_path: Path) -> None:
    from fpsm_core.explain import raw_level_cams
    from fpsm_core.model import load_model

    torch.manual_seed(4)
    model = create_fpsm("resnet18", levels=(4, 3, 2), synthetic_embedding=True).eval()
    json_path = save_checkpoint(model, tmp_path / "h", name="h", dtype="float16")
    upcast = load_checkpoint(json_path).model
    kept = load_model(json_path).members[0].model
    stored = [p for n, p in kept.named_parameters() if n.endswith(".original")]
    assert stored and {p.dtype for p in stored} == {torch.float16}
    assert all(b.dtype != torch.float16 for b in kept.buffers())
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        want, got = upcast.forward_all(x), kept.forward_all(x)
        assert torch.equal(want.logits, got.logits)
        for a, b in zip(raw_level_cams(upcast, want), raw_level_cams(kept, got), strict=True):
            assert torch.equal(a, b)
    # Saved again, the model writes its own names and the float32 values it computes with.
    again = load_checkpoint(save_checkpoint(kept, tmp_path / "again", name="again")).model
    assert set(again.state_dict()) == set(upcast.state_dict())
    assert all(torch.equal(again.state_dict()[k], v) for k, v in upcast.state_dict().items())

"""Checkpoints: bit-exact round trips, hash checks, and pickles refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fpsm_core.model import (
    CheckpointError,
    Preprocessing,
    create_fpsm,
    import_state_dict,
    load_checkpoint,
    read_checkpoint_meta,
    save_checkpoint,
    update_checkpoint_meta,
)
from fpsm_core.model.weights import load_backbone_weights


def _model(seed: int = 0, **kw: object):
    torch.manual_seed(seed)
    return create_fpsm("resnet18", levels=(4, 3, 2), **kw).eval()  # type: ignore[arg-type]


@pytest.mark.parametrize("aggregation", ["sum", "concat"])
def test_round_trip_is_bit_exact(tmp_path: Path, aggregation: str) -> None:
    model = _model(aggregation=aggregation, synthetic_embedding=True)
    json_path = save_checkpoint(
        model,
        tmp_path / "ckpt",
        preprocessing=Preprocessing(input_size=96, resize="stretch"),
        thresholds=[0.1 * (i % 9 + 1) for i in range(26)],
        provenance={"data": "unit test", "epochs": 3, "metrics": {"mAP": 0.5}},
    )
    assert json_path == tmp_path / "ckpt.json"
    loaded = load_checkpoint(tmp_path / "ckpt.safetensors")
    original = model.state_dict()
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, original[key]), key
    meta = loaded.meta
    assert meta.preprocessing == Preprocessing(input_size=96, resize="stretch")
    assert meta.thresholds[1] == pytest.approx(0.2)
    assert meta.provenance["epochs"] == 3 and meta.provenance["code_version"]
    assert loaded.model.levels == (4, 3, 2) and loaded.model.aggregation == aggregation
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        # The weights are bit-exact (above); the outputs agree to rounding only. The loaded
        # tensors live in the memory-mapped file at 16-byte rather than 64-byte alignment, and
        # on some CPUs (AMD EPYC here) the BLAS behind the heads' F.linear sums in another order
        # for such buffers: a last-bit difference (9e-8), gone when the same weights are copied
        # to aligned memory. Two loads of one file give the same bits (same alignment).
        torch.testing.assert_close(loaded.model(x), model(x), rtol=1e-6, atol=1e-6)
        again = load_checkpoint(tmp_path / "ckpt.safetensors").model
        assert torch.equal(again(x), loaded.model(x))


def test_float16_checkpoint_halves_the_file_and_loads_as_float32(tmp_path: Path) -> None:
    model = _model()
    save_checkpoint(model, tmp_path / "full")
    save_checkpoint(model, tmp_path / "half", dtype="float16")
    full = (tmp_path / "full.safetensors").stat().st_size
    half = (tmp_path / "half.safetensors").stat().st_size
    assert half < 0.55 * full
    loaded = load_checkpoint(tmp_path / "half.json").model
    w = loaded.heads[0].weight
    assert w.dtype == torch.float32
    assert torch.equal(w, model.heads[0].weight.half().float())


def test_tampered_weights_are_refused(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path / "ckpt")
    weights = tmp_path / "ckpt.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"ckpt\.safetensors does not match the SHA-256"):
        load_checkpoint(tmp_path / "ckpt.json")


def test_pickled_model_is_refused_by_load_and_import(tmp_path: Path) -> None:
    full_pickle = tmp_path / "model.pt"
    torch.save(_model(), full_pickle)  # a whole nn.Module: unpickling it would run code
    with pytest.raises(CheckpointError, match=r"model\.pt is a pickled PyTorch file"):
        load_checkpoint(full_pickle)
    with pytest.raises(
        CheckpointError, match=r"model\.pt is a pickle that is not a plain state_dict"
    ):
        import_state_dict(full_pickle)


def test_plain_state_dict_pickle_imports_as_backbone_weights(tmp_path: Path) -> None:
    source = _model(seed=3)
    path = tmp_path / "backbone.pth"
    torch.save(source.backbone.state_dict(), path)
    target = _model(seed=4)
    missing = load_backbone_weights(target, path)
    assert missing == []
    for key, value in target.backbone.state_dict().items():
        assert torch.equal(value, source.backbone.state_dict()[key])
    # create_fpsm takes the same file
    built = create_fpsm("resnet18", levels=(4, 3, 2), backbone_weights=path)
    assert torch.equal(built.backbone.state_dict()["conv1.weight"], source.backbone.conv1.weight)


def test_missing_and_malformed_descriptions_name_the_file(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path / "ckpt")
    (tmp_path / "ckpt.json").rename(tmp_path / "other.json")
    with pytest.raises(CheckpointError, match=r"ckpt\.safetensors has no ckpt\.json beside it"):
        load_checkpoint(tmp_path / "ckpt.safetensors")
    (tmp_path / "other.json").rename(tmp_path / "ckpt.json")
    data = json.loads((tmp_path / "ckpt.json").read_text())
    del data["architecture"]
    (tmp_path / "ckpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match=r"ckpt\.json is missing or has a malformed field"):
        load_checkpoint(tmp_path / "ckpt.json")
    (tmp_path / "ckpt.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"ckpt\.json is not valid JSON"):
        read_checkpoint_meta(tmp_path / "ckpt.json")


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path / "ckpt")
    data = json.loads((tmp_path / "ckpt.json").read_text())
    data["architecture"]["levels"] = [4, 3]
    (tmp_path / "ckpt.json").write_text(json.dumps(data))
    with pytest.raises(CheckpointError, match="does not fit the architecture"):
        load_checkpoint(tmp_path / "ckpt.json")


def test_updating_thresholds_keeps_the_weights_valid(tmp_path: Path) -> None:
    save_checkpoint(_model(), tmp_path / "ckpt")
    update_checkpoint_meta(
        tmp_path / "ckpt", thresholds=[0.3] * 26, provenance={"calibrated": True}
    )
    loaded = load_checkpoint(tmp_path / "ckpt")
    assert loaded.meta.thresholds == tuple([0.3] * 26)
    assert loaded.meta.provenance["calibrated"] is True
    assert "code_version" in loaded.meta.provenance

"""Training configs: the shipped YAML files, inheritance, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpsm_core.cli.main import main as fpsm_main
from fpsm_core.training import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "train" / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_reads(path: Path) -> None:
    config = load_config(path)
    assert config.optim.epochs >= 1


def test_base_is_the_papers_fpsm_and_demos_inherit_it() -> None:
    base = load_config(CONFIGS / "base.yaml")
    assert base.model.backbone == "tresnet_m"
    assert base.model.levels == (4, 3, 2)
    assert base.model.aggregation == "sum"
    assert base.input.input_size == 512
    assert base.augment.hflip is False
    demo = load_config(CONFIGS / "demo_fpsm_dadam.yaml")
    assert demo.model.backbone == "mobilenetv3_large_100"
    assert demo.input.input_size == 256
    assert demo.model.init_from == "runs/demo_fpsm/fpsm.json"
    assert demo.loss.type == base.loss.type  # untouched keys come from base.yaml
    assert demo.data.image_root is None
    syn = load_config(CONFIGS / "demo_fpsm_synthetic.yaml")
    assert syn.model.synthetic_embedding and syn.data.format == "dadam"


def test_overrides_by_section_or_unique_name() -> None:
    config = load_config(
        CONFIGS / "base.yaml",
        ["optim.lr=3e-4", "epochs=2", "input_size=128", "max_train_images=50", "levels=[4, 2]"],
    )
    assert config.optim.lr == pytest.approx(3e-4)  # "3e-4" is a YAML string; still a number
    assert config.optim.epochs == 2
    assert config.input.input_size == 128
    assert config.data.max_train_images == 50
    assert config.model.levels == (4, 2)
    again = config.replace({"run.name": "x", "init_from": "a.json"})
    assert again.run.name == "x" and again.model.init_from == "a.json"
    assert config.run.name == "fpsm432"  # frozen: replace made a copy


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optim.lrr=1"], "section 'optim' has no key 'lrr'"),
        (["nonsense=1"], "no section has a key 'nonsense'"),
        (["epochs=two"], "optim.epochs must be an integer"),
        (["epochs=0"], "optim.epochs must be at least 1"),
        (["aggregation=mean"], "model.aggregation is 'mean'; choose one of sum, concat"),
        (["levels=[4, 5]"], "model.levels [4, 5] must be levels 1..4"),
        (["hflip=maybe"], "augment.hflip must be true or false"),
        (["lr"], "not of the form key=value"),
    ],
)
def test_bad_values_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(CONFIGS / "base.yaml", overrides)


def test_bad_files_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim:\n  epochs: 3\n  warmup: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml: optim: unknown key 'warmup'"):
        load_config(bad)
    bad.write_text("model: [1, 2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"bad\.yaml is not valid YAML"):
        load_config(bad)
    bad.write_text("inherit: bad.yaml\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="inherits from itself"):
        load_config(bad)
    bad.write_text("trainer: {}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown section 'trainer'"):
        load_config(bad)


def test_cli_reports_config_errors_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {epochs: -1}\n", encoding="utf-8")
    assert fpsm_main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"fpsm train: {bad}: optim.epochs must be at least 1."
    assert fpsm_main(["train", str(CONFIGS / "base.yaml"), "--epochs", "3", "--print-config"]) == 0
    assert '"epochs": 3' in capsys.readouterr().out
    missing = tmp_path / "train.csv"
    code = fpsm_main(["train", str(CONFIGS / "base.yaml"), "--train-csv", str(missing), "--quiet"])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"fpsm train: {missing} does not exist."

"""Issue 19, item 10: the command line says only what is true and explains what it prints.

Every option of every subcommand has help text; ``--help`` prints plain text, not
reStructuredText; the findings table explains its ``*`` and ``±``; ``fpsm info`` on a folder
counts a truncated file once, as broken.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from fpsm_core.cli.main import SUBCOMMANDS, _build_parser, main
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom

RST = re.compile(r"``|:(func|class|mod|meth|data|attr):`")


def _parsers(parser: argparse.ArgumentParser, path: str):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{path} {name}")


def _all_parsers():
    for name in SUBCOMMANDS:
        root = _build_parser(name)
        sub = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
        yield from _parsers(sub.choices[name], f"fpsm {name}")


def test_every_option_of_every_subcommand_has_help_text() -> None:
    missing = [
        f"{path} {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _all_parsers()
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []


def test_help_prints_plain_text_not_restructured_text(capsys) -> None:
    for path, parser in _all_parsers():
        text = parser.format_help()
        assert not RST.search(text), f"{path} --help prints reStructuredText markup"
    with pytest.raises(SystemExit) as exit_info:
        main(["sim", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "OUT/boxes.csv (VinDr layout)" in out and "``" not in out


def test_the_table_explains_its_marks(tmp_path: Path, capsys) -> None:
    model = tiny_ensemble(tmp_path / "ens", n=2)
    image = write_dicom(tmp_path / "chest.dcm", chest_like(96, 80, seed=1))
    assert main(["infer", str(image), "--model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "±" in out and "*" in out
    assert "(* above its threshold; ± half the range of the members' probabilities)" in out


def test_info_counts_a_truncated_file_once_as_broken(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    write_dicom(folder / "good.dcm", chest_like(96, 80, seed=1))
    bad = write_dicom(folder / "bad.dcm", chest_like(96, 80, seed=2))
    bad.write_bytes(bad.read_bytes()[:-500])  # pixel data cut short, header intact
    assert main(["info", str(folder), "--no-cache"]) == 1
    out = capsys.readouterr().out
    assert "1 image(s)" in out.splitlines()[1] and "1 broken file(s)" in out.splitlines()[1]
    assert "truncated" in out
    assert "0 image(s) and 1 broken" in out or "1 image(s) and 1 broken" in out


def _strings(ds) -> list[str]:
    """Every text value of a DICOM data set, sequences included."""
    out: list[str] = []
    for elem in ds.iterall():
        if elem.VR in ("LO", "LT", "ST", "UT", "SH", "UC") and elem.value is not None:
            values = elem.value if elem.VM > 1 else [elem.value]
            out += [str(v) for v in values]
    return out


def test_every_output_names_the_model_and_carries_its_disclaimer(tmp_path: Path, capsys) -> None:
    """The README's promise, output by output: JSON lines, results.jsonl, predictions.csv (via
    predictions.json beside it), the CAM archive, every overlay PNG and every DICOM object."""
    import json

    import numpy as np
    import pydicom

    from fpsm_core.explain.caption import read_png_text

    disclaimer = "Research software, not for clinical use."
    model = tiny_ensemble(tmp_path / "ens", n=2)
    image = write_dicom(tmp_path / "chest.dcm", chest_like(96, 80, seed=1))
    out = tmp_path / "out"
    argv = ["infer", str(image), "--model", str(model), "--out", str(out), "--cams"]
    argv += ["--cam-top", "1", "--dicom-out", str(out / "dicom"), "--dicom", "sc,sr,gsps,seg"]
    assert main([*argv, "--json"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    saved = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    for record in printed + saved:
        assert record["model"]["name"] == "tiny" and record["model"]["disclaimer"] == disclaimer
    side = json.loads((out / "predictions.json").read_text())
    assert side["describes"] == "predictions.csv" and side["model"]["name"] == "tiny"
    assert side["disclaimer"] == disclaimer
    header = (out / "predictions.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "dicom_id" and side["labels"] == header[1:]  # the submission layout kept
    with np.load(out / "chest_cams.npz", allow_pickle=False) as data:
        assert str(data["model_name"]) == "tiny" and str(data["disclaimer"]) == disclaimer
        assert json.loads(str(data["model"]))["name"] == "tiny"
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 4  # one finding: three levels and fused
    for png in pngs:
        text = read_png_text(png)
        assert text["Model"] == "tiny" and text["Disclaimer"] == disclaimer
        assert "model tiny | fpsm " in text["Description"]
        assert "patient" not in text["Description"]  # no identifier unless asked
    objects = sorted((out / "dicom").rglob("*.dcm"))
    assert len(objects) == 4
    for path in objects:
        ds = pydicom.dcmread(path)
        assert "tiny" in ds.SeriesDescription
        assert any(disclaimer in s for s in _strings(ds)), f"{path.name} has no disclaimer"

    assert main([*argv, "--show-phi"]) == 0  # asked: the caption names patient and study
    assert "patient TEST" in read_png_text(pngs[0])["Description"]
    table = capsys.readouterr().out
    assert "model: tiny [" in table and disclaimer in table

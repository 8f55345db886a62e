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

"""Commands that need no model never import torch (issue 21: ``fpsm info`` within half a second).

Each command runs as a user runs it, in a fresh interpreter (``python -m fpsm_core.cli ...``),
on real files it made or was given; at exit the interpreter reports whether ``torch`` (or timm)
was ever imported. Importing torch costs seconds and ~600 MiB, so a stray module-level
``import torch`` on one of these paths is a regression users feel at once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Runs the fpsm command and, at exit, writes which heavy modules were imported to stderr.
PROBE = (
    "import atexit, runpy, sys\n"
    "def report():\n"
    "    heavy = sorted(m for m in ('torch', 'timm', 'torchvision') if m in sys.modules)\n"
    "    sys.__stderr__.write('HEAVY_MODULES=' + ','.join(heavy) + '\\n')\n"
    "atexit.register(report)\n"
    "sys.argv = ['fpsm', *sys.argv[1:]]\n"
    "runpy.run_module('fpsm_core.cli', run_name='__main__', alter_sys=True)\n"
)


def run_fpsm(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, list[str]]:
    """(exit status, stdout, heavy modules imported) of ``fpsm ARGS`` in a fresh interpreter."""
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [line for line in proc.stderr.splitlines() if line.startswith("HEAVY_MODULES=")]
    assert lines, f"fpsm {' '.join(args)} did not reach exit:\n{proc.stderr[-2000:]}"
    heavy = [m for m in lines[-1].split("=", 1)[1].split(",") if m]
    return proc.returncode, proc.stdout, heavy


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A simulated data set (made by ``fpsm sim``, itself checked), a patch library, a config dir."""
    root = tmp_path_factory.mktemp("lazy")
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    env["FPSM_CONFIG_DIR"] = str(root / "config")
    code, _, heavy = run_fpsm(
        ["sim", "--n", "6", "--size", "96", "--out", "sim", "--format", "dicom", "--quiet"],
        root,
        env,
    )
    assert code == 0 and heavy == [], heavy
    assert len(list((root / "sim" / "images").iterdir())) == 6
    (root / "nodes.json").write_text(  # nothing listens on port 9 (discard): echo fails fast
        json.dumps({"nodes": {"nowhere": {"aet": "NOWHERE", "host": "127.0.0.1", "port": 9}}})
    )
    return root, env


def first_image(root: Path) -> str:
    return str(sorted((root / "sim" / "images").iterdir())[0])


# (arguments, whether the command succeeds); paths are relative to the workspace.
COMMANDS: list[tuple[list[str], bool]] = [
    (["--help"], True),
    (["--version"], True),
    (["info", "--help"], True),
    (["infer", "--help"], True),
    (["train", "--help"], True),
    (["calibrate", "--help"], True),
    (["dadam", "generate", "--help"], True),
    (["pacs", "send", "--help"], True),
    (["info", "@IMAGE"], True),
    (["info", "@IMAGE", "--json"], True),
    (["info", "sim/images", "--no-cache"], True),
    (["info", "no_such_file.dcm"], False),
    (
        [
            "dadam",
            "import",
            "--library",
            "lib",
            "--boxes",
            "sim/boxes.csv",
            "--images",
            "sim/images",
        ],
        True,
    ),
    (["dadam", "library", "lib", "--json"], True),
    (["dadam", "export", "lib", "--format", "coco", "--out", "coco"], True),
    (["dadam", "cooc", "sim/labels.csv", "--out", "cooc.json"], True),
    (
        [
            "dadam",
            "plan",
            "--labels",
            "sim/labels.csv",
            "--library",
            "lib",
            "--out",
            "plan.jsonl",
            "--target",
            "4",
            "--budget",
            "6",
            "--seed",
            "1",
        ],
        True,
    ),  # fmt: skip
    (
        [
            "dadam",
            "report",
            "--original",
            "sim/labels.csv",
            "--augmented",
            "sim/labels.csv",
            "--out",
            "report",
        ],
        True,
    ),  # fmt: skip
    (["pacs", "nodes", "--nodes", "nodes.json"], True),
    (["pacs", "echo", "nowhere", "--nodes", "nodes.json", "--timeout", "2"], False),
]


@pytest.mark.parametrize(("args", "succeeds"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_command_without_a_model_never_imports_torch(
    workspace: tuple[Path, dict[str, str]], args: list[str], succeeds: bool
) -> None:
    root, env = workspace
    argv = [first_image(root) if a == "@IMAGE" else a for a in args]
    code, out, heavy = run_fpsm(argv, root, env)
    assert (code == 0) == succeeds, f"fpsm {' '.join(argv)} exited {code}"
    assert heavy == [], f"fpsm {' '.join(argv)} imported {heavy}"
    if succeeds and "--help" not in args and "--version" not in args:
        assert out.strip(), "the command printed nothing"


def test_the_probe_sees_torch_when_a_command_needs_it(
    workspace: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """The check is real: ``fpsm infer`` with the bundled model does import torch."""
    root, env = workspace
    code, _, heavy = run_fpsm(["infer", first_image(root), "--out", str(tmp_path / "o")], root, env)
    assert "torch" in heavy, (code, heavy)

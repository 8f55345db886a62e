"""Shared by the export and PACS tests: the DICOM validators of dicom3tools and dcmtk.

Each runs the Debian tool on a file and returns what a test asserts on; tests call
:func:`need` first, which skips with the package to install when the tool is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PACKAGES = {"dciodvfy": "dicom3tools", "dcmpschk": "dcmtk", "dsrdump": "dcmtk"}


def need(tool: str) -> None:
    """Skip the test, naming the Debian package, when ``tool`` is not on PATH."""
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {PACKAGES.get(tool, tool)})")


def dciodvfy_errors(path: Path) -> list[str]:
    """dciodvfy's error lines for a file (warnings are not errors)."""
    need("dciodvfy")
    proc = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    return [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("Error")]


def dcmpschk_passes(path: Path) -> tuple[bool, str]:
    """(passed, output) of dcmpschk on a presentation state."""
    need("dcmpschk")
    proc = subprocess.run(
        ["dcmpschk", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    out = proc.stdout + proc.stderr
    return proc.returncode == 0 and "Test passed" in out, out


def dsrdump_text(path: Path) -> str:
    """dsrdump's rendering of an SR (raises when it fails)."""
    need("dsrdump")
    proc = subprocess.run(
        ["dsrdump", "+Pl", str(path)], capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout

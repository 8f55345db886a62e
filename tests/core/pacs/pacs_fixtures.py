"""Shared by the export and PACS tests: the DICOM validators of dicom3tools and dcmtk.

Each runs the Debian tool on a file and returns what a test asserts on; tests call
:func:`need` first, which skips with the package to install when the tool is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class OrthancUnavailable(RuntimeError):
    """Orthanc is not installed or did not start; the message says which."""


@contextmanager
def running_orthanc(root: Path, extra: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """A real Orthanc on 127.0.0.1 with free ports and its storage in ``root``; stopped after.

    Used by the ``orthanc`` fixture, the DICOM TLS test (``extra`` = the DicomTls options) and
    ``bench/bench_pacs.py``.
    """
    import json
    import time
    import urllib.request

    exe = shutil.which("Orthanc")
    if exe is None:
        raise OrthancUnavailable(
            "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
        )
    root.mkdir(parents=True, exist_ok=True)
    dicom_port, http_port, move_port = free_port(), free_port(), free_port()
    gateway_port = free_port()
    config = {
        "Name": "fpsm-test",
        "StorageDirectory": str(root / "db"),
        "IndexDirectory": str(root / "db"),
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomCheckCalledAet": True,
        # Our AE as a modality: C-MOVE destination "FPSM" is our storage SCP on move_port;
        # the auto-triage gateway (fpsm listen) is one Orthanc pushes studies to.
        "DicomModalities": {
            "fpsm": ["FPSM", "127.0.0.1", move_port],
            "gateway": ["FPSMGW", "127.0.0.1", gateway_port],
        },
        "Plugins": [str(DICOMWEB_PLUGIN)] if DICOMWEB_PLUGIN.exists() else [],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    } | (extra or {})
    cfg = root / "orthanc.json"
    cfg.write_text(json.dumps(config), encoding="utf-8")
    log = (root / "orthanc.log").open("w")
    proc = subprocess.Popen([exe, str(cfg)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        for _ in range(300):  # up to ~30 s for a cold start on a shared machine
            if proc.poll() is not None:
                raise OrthancUnavailable(f"Orthanc exited at start (see {root / 'orthanc.log'})")
            try:
                with urllib.request.urlopen(f"{url}/system", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        else:
            raise OrthancUnavailable("Orthanc did not answer /system within 30 s")
        yield {
            "aet": "ORTHANC",
            "port": dicom_port,
            "url": url,
            "dicomweb": f"{url}/dicom-web",
            "move_port": move_port,
            "gateway_port": gateway_port,
            "root": root,
            "log": root / "orthanc.log",
        }
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A real Orthanc on 127.0.0.1 with free ports and a temporary storage; stopped after."""
    try:
        with running_orthanc(tmp_path_factory.mktemp("orthanc")) as info:
            yield info
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))

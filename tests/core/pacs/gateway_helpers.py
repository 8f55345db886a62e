"""Running ``fpsm listen`` as a subprocess in tests, and reading what it says line by line."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


class GatewayProcess:
    """``python -m fpsm_core.cli.main listen ...`` with its stdout read by a thread."""

    def __init__(self, args: list[str]) -> None:
        env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fpsm_core.cli.main", "listen", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        self.lines: list[str] = []
        self._q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._q.put(line.rstrip("\n"))
        self._q.put(None)

    def wait_for(self, text: str, count: int = 1, timeout: float = 180.0) -> list[str]:
        """Block until ``count`` lines containing ``text`` have been printed (or fail)."""
        seen = [ln for ln in self.lines if text in ln]
        while len(seen) < count:
            try:
                line = self._q.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(
                    f"gateway did not print {text!r}:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                raise AssertionError(
                    f"gateway exited ({self.proc.wait()}) before {text!r}:\n"
                    + "\n".join(self.lines)
                )
            self.lines.append(line)
            if text in line:
                seen.append(line)
        return seen

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.proc.wait(timeout=120)


def orthanc_push(info: dict[str, Any], modality: str, study_uid: str) -> dict[str, Any]:
    """Ask Orthanc (REST) to C-STORE a study to one of its modalities, as a PACS routes."""
    url = info["url"]
    req = urllib.request.Request(f"{url}/tools/lookup", data=study_uid.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        orthanc_id = json.loads(r.read())[0]["ID"]
    req = urllib.request.Request(
        f"{url}/modalities/{modality}/store", data=orthanc_id.encode(), method="POST"
    )
    with urllib.request.urlopen(req, timeout=120) as r:
        return dict(json.loads(r.read()))

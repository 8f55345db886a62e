"""fpsm_core works without a screen: every module imports with Qt and the apps made unimportable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_fpsm_core_module_imports_without_qt_viewer_or_train() -> None:
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        BLOCKED = ("PySide6", "pyqtgraph", "shiboken6", "viewer", "train")

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"blocked import of {name}")
                return None

        sys.meta_path.insert(0, Blocker())
        import fpsm_core
        names = [m.name for m in pkgutil.walk_packages(fpsm_core.__path__, "fpsm_core.")]
        for name in names:
            importlib.import_module(name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        assert not leaked, leaked
        print(len(names))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.strip().splitlines()[-1]) >= 10  # the walk really found the modules

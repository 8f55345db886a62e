"""Start fast (issue 21): the window and the first film come before torch; the findings follow.

The first test launches the viewer in a fresh interpreter, as a user does, because this test
process imported torch long ago (the fixtures build models): there, at the moment the film is on
screen, ``torch`` and ``timm`` must not have been imported; the worker that loads the model
imports them, and the findings then arrive. The others check the hub's ordering in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2

from tests.viewer.helpers import chest_like, write_dicom

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 120000

DRIVER = """
import json, sys
from PySide6.QtCore import QSettings, QTimer
from PySide6.QtWidgets import QApplication
from viewer.main_window import MainWindow

model, film, settings = sys.argv[1:4]
seen = {}
# Imported by the libraries for things this viewer never uses (~270 MiB and ~2 s between them).
NEVER = ("matplotlib", "torch._dynamo", "torch._inductor", "sympy", "triton")
def heavy():
    return sorted(m for m in ("torch", "timm") if m in sys.modules)
app = QApplication([])
window = MainWindow(model, "cpu", settings=QSettings(settings, QSettings.Format.IniFormat),
                    index_cache=False, thumbnails=False, torch_threads=1)
seen["after_window"] = heavy()
window.show()
window.open_path(film)
def on_image(path):
    window.repaint()
    seen["first_film"] = {"path": path, "heavy": heavy(), "model": window.state.model is not None}
def on_model(info):
    seen["model_ready"] = {"heavy": heavy(), "film_first": "first_film" in seen}
def on_result(result):
    seen["findings"] = [f.label for f in result.findings][:3]
    seen["never"] = sorted(m for m in NEVER if m in sys.modules)
    from fpsm_core.pipeline.cuda_pages import parse_smaps, reclaimable
    with open("/proc/self/smaps") as smaps:
        clean = reclaimable(parse_smaps(smaps))
    seen["cuda_clean_mib"] = sum(m.rss_kb for m in clean) / 1024
    app.quit()
window.image_shown.connect(on_image)
window.model_ready.connect(on_model)
window.result_shown.connect(on_result)
window.error_shown.connect(lambda m: seen.setdefault("errors", []).append(m))
QTimer.singleShot(120000, app.quit)  # a fail-safe, not a measurement
app.exec()
window.close()
print("SEEN " + json.dumps(seen))
"""


def test_window_and_first_film_before_torch(tiny_model: Path, tmp_path: Path) -> None:
    film = tmp_path / "chest.png"
    cv2.imwrite(str(film), (chest_like(200, 160) // 16).astype("uint8"))
    env = dict(os.environ, PYTHONPATH=str(REPO), QT_QPA_PLATFORM="offscreen", HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, str(tiny_model), str(film), str(tmp_path / "s.ini")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SEEN ")]
    assert lines, proc.stderr[-3000:]
    seen = json.loads(lines[-1][5:])
    assert seen["after_window"] == [], "building the window imported " + str(seen["after_window"])
    assert seen["first_film"]["path"] == str(film)
    assert seen["first_film"]["heavy"] == [], "the film waited for " + str(seen["first_film"])
    assert seen["first_film"]["model"] is False
    assert seen["model_ready"] == {"heavy": ["timm", "torch"], "film_first": True}
    assert len(seen["findings"]) == 3 and "errors" not in seen
    assert seen["never"] == [], "the viewer imported " + str(seen["never"])
    import torch

    if not torch.cuda.is_available():  # the CUDA libraries' clean pages were given back
        assert seen["cuda_clean_mib"] < 16, seen["cuda_clean_mib"]


def test_first_model_waits_for_the_first_film(qtbot: Any, tmp_path: Path, tiny_model: Path) -> None:
    from PySide6.QtCore import QSettings

    from viewer.main_window import MainWindow

    film = write_dicom(tmp_path / "chest.dcm", chest_like())
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_model, "cpu", settings=settings, index_cache=False, thumbnails=False)
    order: list[str] = []
    window.image_shown.connect(lambda _p: order.append("film"))
    window.model_ready.connect(lambda _i: order.append("model"))
    try:
        window.show()
        window.open_path(film)
        assert window.hub.model_held  # nothing sent to the inference thread yet
        with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT) as blocker:
            pass
        assert order == ["film", "model"]
        assert blocker.args[0].findings and not window.hub.model_held
    finally:
        window.close()


def test_a_broken_first_file_still_gets_a_model(
    qtbot: Any, tmp_path: Path, tiny_model: Path
) -> None:
    from PySide6.QtCore import QSettings

    from viewer.main_window import MainWindow

    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 4)
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_model, "cpu", settings=settings, index_cache=False, thumbnails=False)
    try:
        window.show()
        with qtbot.waitSignal(window.error_shown, timeout=TIMEOUT) as error:
            window.open_path(broken)
        assert "broken.dcm" in error.args[0]
        with qtbot.waitSignal(window.model_ready, timeout=TIMEOUT) as ready:
            pass
        assert ready.args[0].name == "tiny" and window.state.image is None
    finally:
        window.close()


def test_a_second_model_before_the_first_film_replaces_the_held_one(
    qtbot: Any, tmp_path: Path, tiny_model: Path, counted_model: Path
) -> None:
    from PySide6.QtCore import QSettings

    from viewer.main_window import MainWindow

    film = write_dicom(tmp_path / "chest.dcm", chest_like())
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_model, "cpu", settings=settings, index_cache=False, thumbnails=False)
    names: list[str] = []
    window.model_ready.connect(lambda info: names.append(info.name))
    try:
        window.show()
        window.open_path(film)
        window.load_model(counted_model)
        with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
            pass
        assert names == ["counted"]
    finally:
        window.close()


def test_the_hold_cap_never_releases_the_model_while_the_film_decodes(
    qtbot: Any, tmp_path: Path, tiny_model: Path, monkeypatch: Any
) -> None:
    """On a loaded machine the film can take longer than the cap: it still comes first."""
    from PySide6.QtCore import QSettings

    from viewer import workers
    from viewer.main_window import MainWindow

    monkeypatch.setattr(workers, "FIRST_MODEL_HOLD_MS", 0)
    film = write_dicom(tmp_path / "chest.dcm", chest_like(600, 500))
    settings = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    window = MainWindow(tiny_model, "cpu", settings=settings, index_cache=False, thumbnails=False)
    order: list[str] = []
    held_at_film: list[bool] = []
    window.image_shown.connect(lambda _p: held_at_film.append(window.hub.model_held))
    window.image_shown.connect(lambda _p: order.append("film"))
    window.model_ready.connect(lambda _i: order.append("model"))
    try:
        window.show()
        window.open_path(film)
        with qtbot.waitSignal(window.result_shown, timeout=TIMEOUT):
            pass
        assert order == ["film", "model"]
        assert held_at_film == [True]  # the expired cap did not send it while the film decoded
    finally:
        window.close()

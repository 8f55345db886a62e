"""Viewer fixtures: a tiny random FPSM, small DICOM/PNG files, and a window factory.

The factory (napari's ``make_napari_viewer`` pattern) closes every window it made, which stops the
worker threads, and fails the test if a worker thread is still running afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from tests.viewer.helpers import chest_like, write_dicom


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random resnet18 FPSM (levels 4, 3, 2) at 64 px, saved as a checkpoint, marked untrained."""
    import torch

    from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint

    torch.manual_seed(0)
    model = create_fpsm("resnet18", levels=(4, 3, 2)).eval()
    folder = tmp_path_factory.mktemp("model")
    return save_checkpoint(
        model,
        folder / "tiny",
        name="tiny",
        preprocessing=Preprocessing(input_size=64),
        untrained=True,
    )


@pytest.fixture(scope="session")
def counted_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with training counts in its provenance (for prevalence badges), trained."""
    import torch

    from fpsm_core.labels import LABELS
    from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint

    torch.manual_seed(1)
    model = create_fpsm("resnet18", levels=(4, 3, 2)).eval()
    counts = {label: 1000 * (i + 1) for i, label in enumerate(LABELS)}
    folder = tmp_path_factory.mktemp("counted")
    return save_checkpoint(
        model,
        folder / "counted",
        name="counted",
        preprocessing=Preprocessing(input_size=64),
        untrained=False,
        provenance={"train_counts": counts},
    )


@pytest.fixture()
def dicom_file(tmp_path: Path) -> Path:
    return write_dicom(tmp_path / "chest.dcm", chest_like())


@pytest.fixture()
def study_folder(tmp_path: Path) -> Path:
    """Two studies of two images each, plus one broken file."""
    from pydicom.uid import generate_uid

    folder = tmp_path / "studies"
    folder.mkdir()
    for s, patient in enumerate(("ALPHA^A", "BETA^B")):
        uid = generate_uid()
        for i in range(2):
            write_dicom(
                folder / f"s{s}_i{i}.dcm",
                chest_like(seed=10 * s + i),
                patient=patient,
                study_uid=uid,
            )
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00garbage" * 3)
    return folder


@pytest.fixture()
def make_window(qtbot: Any, tmp_path: Path, tiny_model: Path) -> Iterator[Callable[..., Any]]:
    """Factory: ``make_window(model=..., **kwargs)`` -> a shown MainWindow; all closed at the end."""
    from PySide6.QtCore import QSettings

    from viewer.main_window import MainWindow
    from viewer.theme import apply_theme

    made: list[Any] = []

    def factory(model: Path | None = None, **kwargs: Any) -> Any:
        from PySide6.QtWidgets import QApplication

        apply_theme(QApplication.instance())
        settings = QSettings(str(tmp_path / f"settings{len(made)}.ini"), QSettings.Format.IniFormat)
        kwargs.setdefault("index_cache", False)
        kwargs.setdefault("torch_threads", 1)
        kwargs.setdefault("thumbnails", False)
        window = MainWindow(model or tiny_model, "cpu", settings=settings, **kwargs)
        window.resize(1280, 800)
        window.show()
        made.append(window)
        with qtbot.waitSignal(window.model_ready, timeout=60000):
            pass
        return window

    yield factory
    for window in made:
        threads = list(window.hub._threads)
        window.close()
        for thread in threads:
            assert not thread.isRunning(), f"worker thread {thread.objectName()} still running"
        window.deleteLater()

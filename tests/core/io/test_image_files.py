"""One notion of "image file": ``fpsm infer FOLDER`` runs on what the viewer's worklist indexes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.cli.infer import expand_paths
from fpsm_core.io import image_files, index_folder, is_image_path
from tests.core.helpers import chest_like, write_dicom


def _remove_deep(root: Path) -> None:
    """Remove a tree bottom-up without recursion (pytest's own clean-up recurses and would fail)."""
    order, stack = [], [root]
    while stack:
        folder = stack.pop()
        order.append(folder)
        for entry in os.scandir(folder):
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
            else:
                os.unlink(entry.path)
    for folder in reversed(order):
        folder.rmdir()


@pytest.fixture()
def root(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "study"
    folder.mkdir()
    yield folder
    _remove_deep(folder)


def test_infer_takes_the_files_the_worklist_indexes(root: Path) -> None:
    film = chest_like(48, 40, seed=0)
    wanted = [
        write_dicom(root / "a.dcm", film),
        write_dicom(root / "1.2.840.113619.2.55", film),  # UID-named, as PACS exports write them
        write_dicom(root / "IM0001", film),
    ]
    cv2.imwrite(str(root / "b.png"), np.zeros((8, 8), np.uint8))
    wanted.append(root / "b.png")
    deep = root
    for _ in range(1200):  # deeper than the interpreter's recursion limit
        deep = deep / "d"
        deep.mkdir()
    cv2.imwrite(str(deep / "c.png"), np.zeros((8, 8), np.uint8))
    wanted.append(deep / "c.png")
    (root / "DICOMDIR").write_bytes(b"\0" * 200)  # an index of images, not an image
    (root / "notes.txt").write_text("not an image")
    cv2.imwrite(str(root / ".hidden.png"), np.zeros((8, 8), np.uint8))
    (root / ".cache").mkdir()
    cv2.imwrite(str(root / ".cache" / "x.png"), np.zeros((8, 8), np.uint8))

    assert expand_paths([root]) == image_files(root) == sorted(wanted)
    index = index_folder(root, cache=False)
    assert index.n_read == len(wanted)  # the worklist read the same files
    assert not is_image_path("DICOMDIR") and is_image_path("x.TIFF") and is_image_path("IM1")


def test_named_files_are_taken_as_given(tmp_path: Path) -> None:
    named = tmp_path / "notes.txt"
    assert expand_paths([named, tmp_path / "missing.dcm"]) == [named, tmp_path / "missing.dcm"]

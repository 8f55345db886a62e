"""Stepping back through a multi-frame film shows frames already decoded without decoding them
again, within a memory budget (``viewer/frames.py``'s :class:`FrameCache`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PySide6.QtCore import Qt

from tests.viewer.test_reading_room import TIMEOUT, _no_mouse_rate_limit, multi_frame, open_main

__all__ = ["_no_mouse_rate_limit"]  # the reading room tests' autouse fixture applies here too


def test_stepping_back_to_a_frame_does_not_decode_it_again(
    qtbot: Any, make_window: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fpsm_core.io as io
    from viewer.frames import loaded_nbytes

    decoded: list[int] = []
    real = io.load_image

    def counted(path: Any, *args: Any, frame: int = 0, **kwargs: Any) -> Any:
        decoded.append(frame)  # the real decoder runs: only the calls are counted
        return real(path, *args, frame=frame, **kwargs)

    path, stack = multi_frame(tmp_path / "cine.dcm", frames=3)
    window = make_window()
    vp = open_main(qtbot, window, path)
    monkeypatch.setattr(io, "load_image", counted)
    grid = window.reading_room.grid
    cache = grid.services.loader.frames

    def key(modifier_key: Qt.Key) -> None:
        window.activateWindow()
        with qtbot.waitSignal(grid.frame_shown, timeout=TIMEOUT):
            qtbot.keyClick(window, modifier_key, Qt.KeyboardModifier.ControlModifier)

    key(Qt.Key.Key_PageDown)
    key(Qt.Key.Key_PageDown)
    assert vp.state.image.image.frame == 2
    key(Qt.Key.Key_PageUp)  # back to frame 2 of 3: already decoded
    assert vp.state.image.image.frame == 1
    np.testing.assert_array_equal(vp.state.image.image.pixels, stack[1].astype(np.float32))
    assert "frame 2/3" in vp.corners.text("bottom_right")
    assert decoded == [1, 2]
    assert cache.hits == 1

    # Bounded: room for two frames; the least recently shown one goes first.
    size = loaded_nbytes(vp.state.image)
    cache.max_bytes = int(2.5 * size)
    key(Qt.Key.Key_PageUp)  # frame 0: decoded; frame 2 (shown longest ago) leaves
    assert decoded == [1, 2, 0]
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes
    key(Qt.Key.Key_PageDown)  # frame 1: kept
    key(Qt.Key.Key_PageDown)  # frame 2: decoded again
    assert decoded == [1, 2, 0, 2]
    assert vp.state.image.image.frame == 2
    np.testing.assert_array_equal(vp.state.image.image.pixels, stack[2].astype(np.float32))
    assert len(cache) == 2 and cache.nbytes <= cache.max_bytes


def test_frame_cache_is_bounded_and_names_the_file_as_it_is(tmp_path: Path) -> None:
    from fpsm_core.io.image import XRayImage
    from viewer import display
    from viewer.frames import FrameCache, loaded_nbytes
    from viewer.workers import LoadedImage

    def frame(seed: int) -> LoadedImage:
        pixels = np.random.default_rng(seed).integers(0, 4096, (64, 64)).astype(np.float32)
        image = XRayImage(pixels=pixels, window=(2000.0, 4000.0), spacing_mm=None, path=None)
        return LoadedImage(tmp_path / "f.dcm", image, display.build_pyramid(pixels), 1.0)

    film = tmp_path / "f.dcm"
    film.write_bytes(b"x" * 10)
    frames = [frame(i) for i in range(4)]
    size = loaded_nbytes(frames[0])
    assert size == 64 * 64 * 4 + sum(level.nbytes for level in frames[0].pyramid.levels)
    cache = FrameCache(max_bytes=3 * size)
    for i, loaded in enumerate(frames[:3]):
        cache.put(FrameCache.key(film, i), loaded)
    assert cache.get(FrameCache.key(film, 0)) is frames[0]  # 0 is now the most recent
    cache.put(FrameCache.key(film, 3), frames[3])
    assert len(cache) == 3 and cache.nbytes == 3 * size
    assert cache.get(FrameCache.key(film, 1)) is None  # the least recently used went
    assert cache.get(FrameCache.key(film, 0)) is frames[0]
    # A file rewritten in place is another file.
    stat = film.stat()
    os.utime(film, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert cache.get(FrameCache.key(film, 0)) is None
    # A frame larger than the whole budget is not kept; a missing file is never a key.
    small = FrameCache(max_bytes=size - 1)
    small.put(FrameCache.key(film, 0), frames[0])
    assert len(small) == 0 and small.nbytes == 0
    assert FrameCache.key(tmp_path / "gone.dcm", 0) is None

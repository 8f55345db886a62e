"""Keep glibc's malloc from handing large buffers back to the kernel between batches.

A forward pass allocates and frees tensors of several MiB. Past ``M_MMAP_THRESHOLD`` (128 KiB at
first, adapted upwards to at most 32 MiB) glibc serves each from a fresh ``mmap`` and unmaps it on
free, and ``M_TRIM_THRESHOLD`` returns the top of the heap, so every batch faults its working set in
again: ~9,000-14,000 minor page faults and ~20-26 ms of system time per image here. Raising both
thresholds once at start-up (``mallopt`` through ctypes, the in-process equivalent of
``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_``) keeps the freed pages in the heap for the
next batch: measured over 400 films, 1-560 faults and 0.2-1.7 ms of system time per image. The price
is the heap's high-water mark staying resident (20-80 MiB here).
Chosen over a caching allocator from PyPI (jemalloc/tcmalloc via ``LD_PRELOAD``) because it needs
nothing installed and no re-exec; figures in ``docs/benchmarks.md``. ``FPSM_MALLOC=default`` turns
it off (the benchmark's baseline). Other C libraries (musl, macOS, Windows) are left as they are.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from dataclasses import dataclass

# glibc's malloc.h parameter numbers.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 * 1024 * 1024  # glibc caps it at HEAP_MAX/2 on 64-bit: 32 MiB is kept then
TRIM_THRESHOLD = 512 * 1024 * 1024

_applied: AllocatorTuning | None = None


@dataclass(frozen=True)
class AllocatorTuning:
    """What :func:`tune_allocator` did: ``tuned`` False says why in ``note``."""

    tuned: bool
    note: str


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library, looked up once (``find_library`` may run ``ldconfig`` in a subprocess, and
    :func:`release_memory` is called after every inference in the viewer)."""
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def tune_allocator() -> AllocatorTuning:
    """Raise glibc's mmap and trim thresholds for this process (once; later calls report it)."""
    global _applied
    if _applied is not None:
        return _applied
    if os.environ.get("FPSM_MALLOC", "").strip().lower() == "default":
        _applied = AllocatorTuning(False, "FPSM_MALLOC=default: glibc defaults kept")
        return _applied
    if not sys.platform.startswith("linux"):
        _applied = AllocatorTuning(False, f"not glibc ({sys.platform}): allocator left as is")
        return _applied
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        _applied = AllocatorTuning(False, "no mallopt in this C library: allocator left as is")
        return _applied
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    # A threshold above glibc's maximum is refused (returns 0); fall back to the largest it takes.
    mmap_ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) or bool(
        mallopt(_M_MMAP_THRESHOLD, 32 * 1024 * 1024)
    )
    trim_ok = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    _applied = AllocatorTuning(
        mmap_ok and trim_ok,
        "glibc mmap/trim thresholds raised" if mmap_ok and trim_ok else "mallopt refused",
    )
    return _applied


def release_memory() -> bool:
    """Hand the heap's free pages back to the kernel (glibc ``malloc_trim(0)``, every arena).

    For a long-lived interactive process (the viewer) after a burst of work: loading a model and
    running it on a worker thread leaves tens to hundreds of MiB free but resident in that
    thread's malloc arena, which glibc would otherwise keep. A no-op elsewhere; True when trimmed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        trim = _libc().malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))

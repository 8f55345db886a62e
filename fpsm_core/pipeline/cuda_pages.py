"""Unmap the CUDA libraries' clean pages in a process that has no CUDA device to run them on.

A CUDA build of PyTorch loads libtorch_cuda and NVIDIA's libraries (cuBLAS and cuBLASLt,
cuDNN, NCCL, nvrtc, nvJitLink, cuSPARSE, cuFFT, ...) at ``import torch``, GPU or not: the
dynamic loader and their static initialisers touch their code and read-only data, and those
pages stay mapped. Measured here (torch 2.14.1+cu130, no GPU): ~290 MiB of the viewer's RSS, file
pages of code that can never launch a kernel on this machine. A CPU-only wheel of torch does not
load them at all; where the CUDA wheel is installed, this module gives the pages back.

What it does, and only when ``torch.cuda.is_available()`` is False: for each *read-only*,
file-backed, private mapping of those libraries that holds no anonymous (copy-on-write) page,
``madvise(MADV_DONTNEED)``. That removes the pages from this process's page tables. They are the
file's own unmodified bytes: they stay in the kernel's page cache as clean, reclaimable cache
(shared with any other process mapping the same library) and return through an ordinary page
fault if the code ever runs. Mappings that are writable, or hold a page the process wrote
(relocations), are never touched, and a read-only mapping cannot gain one, so no data is lost.

This is reclaiming clean file-backed pages, not freeing memory the process owns: RSS falls by
what :func:`drop_cuda_library_pages` returns, anonymous memory is unchanged. ``FPSM_CUDA_PAGES=keep``
turns it off. Linux only; a no-op elsewhere.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass

MADV_DONTNEED = 4
# NVIDIA's pip wheels live under .../site-packages/nvidia/; torch's own CUDA libraries and
# triton's runtime sit beside its CPU ones, so they are named.
CUDA_LIBRARY = re.compile(
    r"/nvidia/|/lib(torch_cuda\w*|c10_cuda|torch_nvshmem|caffe2_nvrtc|cudnn\w*|cublas\w*|nccl"
    r"|cusparse\w*|cufft\w*|curand|cusolver\w*|nvrtc\S*|nvJitLink|cudart|cupti|nvToolsExt"
    r"|cufile\w*|nvshmem\w*|triton)\.so"
)
_HEAD = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ \S+\s*(.*)$")


@dataclass(frozen=True)
class Mapping:
    """One mapping of ``/proc/PID/smaps``: address range, permissions, path, resident kB."""

    start: int
    end: int
    perms: str
    path: str
    rss_kb: int
    anonymous_kb: int


def parse_smaps(lines: Iterable[str]) -> list[Mapping]:
    """The mappings of ``smaps`` lines (a text's ``splitlines()`` or the open file itself)."""
    out: list[Mapping] = []
    current: dict[str, object] | None = None

    def close() -> None:
        if current is not None:
            out.append(Mapping(**current))  # type: ignore[arg-type]

    for line in lines:
        head = _HEAD.match(line)
        if head:
            close()
            current = {
                "start": int(head.group(1), 16),
                "end": int(head.group(2), 16),
                "perms": head.group(3),
                "path": head.group(4).strip(),
                "rss_kb": 0,
                "anonymous_kb": 0,
            }
        elif current is not None and line.startswith(("Rss:", "Anonymous:")):
            key = "rss_kb" if line.startswith("Rss:") else "anonymous_kb"
            current[key] = int(line.split()[1])
    close()
    return out


def reclaimable(mappings: list[Mapping]) -> list[Mapping]:
    """The CUDA library mappings whose resident pages are all clean file pages.

    Read-only (no ``w``), private, file-backed, no anonymous page, something resident.
    """
    return [
        m
        for m in mappings
        if CUDA_LIBRARY.search(m.path)
        and m.perms[0] == "r"
        and m.perms[1] != "w"
        and m.perms[3] == "p"
        and m.anonymous_kb == 0
        and m.rss_kb > 0
    ]


def _cuda_device_present() -> bool:
    torch = sys.modules.get("torch")
    if torch is None:  # no torch, no CUDA libraries loaded by it
        return True
    return bool(torch.cuda.is_available())


def drop_cuda_library_pages() -> int:
    """Unmap the CUDA libraries' clean pages when no CUDA device is present; returns MiB dropped.

    0 when there is nothing to do: a CUDA device is present (the libraries are needed), torch is
    not imported, ``FPSM_CUDA_PAGES=keep``, not Linux, or no such mapping is resident.
    """
    if os.environ.get("FPSM_CUDA_PAGES", "").strip().lower() == "keep":
        return 0
    if not sys.platform.startswith("linux") or _cuda_device_present():
        return 0
    try:
        with open("/proc/self/smaps", encoding="utf-8") as smaps:  # streamed: ~3,000 mappings
            targets = reclaimable(parse_smaps(smaps))
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return 0
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    dropped_kb = 0
    for m in targets:
        if madvise(m.start, m.end - m.start, MADV_DONTNEED) == 0:
            dropped_kb += m.rss_kb
    return dropped_kb // 1024

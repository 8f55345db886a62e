"""Without a CUDA device, the CUDA libraries' clean pages are unmapped; nothing written is touched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fpsm_core.pipeline import cuda_pages
from fpsm_core.pipeline.cuda_pages import parse_smaps, reclaimable

REPO = Path(__file__).resolve().parents[3]
LIB = "/venv/lib/python3.11/site-packages"


def _mapping(range_: str, perms: str, path: str, rss: int, anonymous: int) -> str:
    return (
        f"{range_} {perms} 00000000 fe:00 1234                     {path}\n"
        f"Size:               {rss} kB\nRss:                {rss} kB\n"
        f"Pss:                {rss} kB\nAnonymous:          {anonymous} kB\n"
        "VmFlags: rd ex mr mw me\n"
    )


SMAPS = "".join(
    [
        _mapping(
            "7f0000000000-7f0000100000", "r-xp", f"{LIB}/nvidia/cu13/lib/libcublasLt.so.13", 900, 0
        ),
        _mapping(
            "7f0000100000-7f0000200000",
            "r--p",
            f"{LIB}/nvidia/cu13/lib/libcublasLt.so.13",
            800,
            600,
        ),
        _mapping(
            "7f0000200000-7f0000300000", "rw-p", f"{LIB}/nvidia/cu13/lib/libcublasLt.so.13", 700, 0
        ),
        _mapping("7f0000300000-7f0000400000", "r--p", f"{LIB}/torch/lib/libtorch_cuda.so", 600, 0),
        _mapping("7f0000400000-7f0000500000", "r-xp", f"{LIB}/torch/lib/libtorch_cpu.so", 500, 0),
        _mapping(
            "7f0000500000-7f0000600000", "r--s", f"{LIB}/nvidia/nccl/lib/libnccl.so.2", 400, 0
        ),
        _mapping(
            "7f0000600000-7f0000700000", "r-xp", f"{LIB}/nvidia/cudnn/lib/libcudnn.so.9", 0, 0
        ),
        _mapping("7f0000700000-7f0000800000", "rw-p", "", 300, 300),
        _mapping("7f0000800000-7f0000900000", "r--p", "/models/member0.safetensors", 200, 0),
    ]
)


def test_only_clean_read_only_pages_of_cuda_libraries_are_chosen() -> None:
    chosen = reclaimable(parse_smaps(SMAPS.splitlines()))
    assert [(m.perms, Path(m.path).name, m.rss_kb) for m in chosen] == [
        ("r-xp", "libcublasLt.so.13", 900),  # code, never written
        ("r--p", "libtorch_cuda.so", 600),  # read-only data, never written
    ]
    # Not chosen: relocated read-only data (written pages), writable data, torch's CPU library,
    # a shared mapping, nothing resident, anonymous memory, the model's weights.
    assert chosen[0].start == 0x7F0000000000 and chosen[0].end == 0x7F0000100000


def test_nothing_is_dropped_where_cuda_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    called: list[object] = []
    monkeypatch.setattr(cuda_pages, "reclaimable", lambda m: called.append(m) or [])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert cuda_pages.drop_cuda_library_pages() == 0
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("FPSM_CUDA_PAGES", "keep")
    assert cuda_pages.drop_cuda_library_pages() == 0
    assert called == []


CHILD = """
import json, sys, torch
from pathlib import Path
from fpsm_core.pipeline.cuda_pages import CUDA_LIBRARY, drop_cuda_library_pages, parse_smaps

def cuda_kb():
    with open("/proc/self/smaps") as smaps:
        maps = [m for m in parse_smaps(smaps) if CUDA_LIBRARY.search(m.path)]
    return sum(m.rss_kb for m in maps), sum(m.anonymous_kb for m in maps)

torch.manual_seed(0)
x, w = torch.rand(64, 64), torch.rand(64, 64)
before, anon_before = cuda_kb()
want = (x @ w).sum().item()
dropped = drop_cuda_library_pages()
after, anon_after = cuda_kb()
got = (x @ w).sum().item()
print(json.dumps({"before": before, "after": after, "anon_before": anon_before,
                  "anon_after": anon_after, "dropped": dropped, "same": want == got}))
"""


@pytest.mark.skipif(not Path("/proc/self/smaps").is_file(), reason="needs Linux /proc")
@pytest.mark.skipif(torch.cuda.is_available(), reason="the CUDA libraries are in use here")
def test_a_cuda_build_without_a_device_gives_its_library_pages_back(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    if out["before"] == 0:
        pytest.skip("this torch build loads no CUDA libraries")
    assert out["dropped"] * 1024 <= out["before"] - out["after"] + 1024
    assert out["after"] - out["anon_after"] < 0.1 * out["before"]  # file pages: nearly all gone
    assert out["anon_after"] == out["anon_before"]  # written pages untouched
    assert out["same"] is True

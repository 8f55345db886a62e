"""Where the viewer's memory is once the findings are shown: every mapping of ``/proc/PID/smaps``.

Run: ``python bench/bench_memory.py`` (``--help`` for options). Each launch is the viewer of
``bench_startup.py`` (a fresh process: window, 3000x3000 film, 3-member TResNet-M FPSM 4+3+2
512 px ensemble, findings with the heatmap shown), which at the "findings" point, the same point
as bench_startup's ``RSS findings`` column, writes its ``/proc/self/smaps`` and ``sys.modules``.
This script groups the mappings by what they hold (weights files, libtorch_cpu, libtorch_cuda,
the CUDA libraries, Qt, numpy/BLAS, other extension modules, the heap, anonymous memory) and
prints, per group, RSS, PSS, the anonymous and file-backed parts and USS (private pages), then the
modules imported by then. Units: MiB (2^20 bytes) throughout; the totals line also gives GB
(10^9 bytes), the unit of issue 21's 1.3 GB target.

Variants run side by side, interleaved: the ensemble stored in float32 and in float16
(``--dtype``), ``--keep-cuda-pages`` (this tree with ``FPSM_CUDA_PAGES=keep``: the CUDA
libraries' clean pages left mapped, see ``fpsm_core/pipeline/cuda_pages.py``), and
``--src LABEL=DIR`` source trees (e.g. an exported older commit) to compare.
USS and PSS depend on what else runs: a library page another process maps too (another Python
with torch) is shared, not private, so RSS is the figure comparable across machines and runs.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_startup import launch, make_assets  # noqa: E402

FIELDS = ("Rss", "Pss", "Anonymous", "Private_Clean", "Private_Dirty", "Shared_Clean")
# The first pattern that matches a mapping's path names its group (order matters).
GROUPS: tuple[tuple[str, str], ...] = (
    ("weights (*.safetensors)", r"\.safetensors$"),
    ("libtorch_cuda + libc10_cuda", r"/libtorch_cuda[^/]*\.so|/libc10_cuda\.so"),
    (
        "CUDA libraries (cuDNN, cuBLAS, NCCL, ...)",
        r"/nvidia/|/libcu[a-z]*\.so|/libnv[^/]*\.so|/libnccl|/triton/",
    ),
    ("libtorch_cpu", r"/libtorch_cpu\.so"),
    ("libtorch_python", r"/libtorch_python\.so"),
    ("other torch libraries", r"/torch/"),
    ("Qt + PySide6 + shiboken6", r"/PySide6/|/shiboken6|/libQt6|/qt6/"),
    (
        "numpy + BLAS/LAPACK + OpenMP",
        r"/numpy|openblas|/libgfortran|/libmkl|/libiomp|/libgomp|/scipy",
    ),
    ("other extension modules", r"/site-packages/|/dist-packages/"),
    ("Python + system libraries", r"/libpython|/python3|\.so(\.[0-9]+)*$"),
    ("heap ([heap], glibc main arena)", r"^\[heap\]$"),
    ("stacks", r"^\[stack"),
    ("anonymous (arenas, pymalloc, tensors)", r"^$"),
)
OTHER = "other (fonts, locale, caches, vdso)"
NOTABLE = (
    "torch._dynamo",
    "torch._inductor",
    "torch.fx",
    "torch.distributed",
    "torch.onnx",
    "torch.testing",
    "torchvision",
    "sympy",
    "scipy",
    "pandas",
    "matplotlib",
    "triton",
    "timm.models._hub",
    "huggingface_hub",
)


def parse_smaps(text: str) -> list[dict[str, object]]:
    """One dict per mapping: ``path`` and the kB fields of :data:`FIELDS`."""
    maps: list[dict[str, object]] = []
    head = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$")
    current: dict[str, object] | None = None
    for line in text.splitlines():
        m = head.match(line)
        if m:
            current = {
                "path": m.group(3).strip(),
                "start": int(m.group(1), 16),
                "end": int(m.group(2), 16),
            }
            maps.append(current)
            continue
        key, _, rest = line.partition(":")
        if current is not None and key in FIELDS:
            current[key] = int(rest.split()[0])
    return maps


def group_of(path: str) -> str:
    for name, pattern in GROUPS:
        if re.search(pattern, path):
            return name
    return OTHER


def breakdown(maps: Iterable[dict[str, object]]) -> dict[str, dict[str, float]]:
    """Per group, MiB: rss, pss, anon, file (file-backed resident), uss."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for m in maps:
        g = out[group_of(str(m["path"]))]
        kb = {f: float(m.get(f, 0)) / 1024 for f in FIELDS}  # type: ignore[arg-type]
        g["rss"] += kb["Rss"]
        g["pss"] += kb["Pss"]
        g["anon"] += kb["Anonymous"]
        g["file"] += kb["Rss"] - kb["Anonymous"]
        g["uss"] += kb["Private_Clean"] + kb["Private_Dirty"]
    return out


def big_anonymous(
    maps: list[dict[str, object]], buffers: list[list[object]], min_mib: float = 8.0
) -> list[str]:
    """Anonymous mappings of at least ``min_mib`` resident, each with what is known to lie in it.

    A mapping right after a library's own is usually its ``.bss`` (static data); one of 64 MiB
    is a glibc thread arena; otherwise the numpy arrays and torch storages whose buffers overlap
    it are named.
    """
    rows = []
    for i, m in enumerate(maps):
        rss = float(m.get("Rss", 0)) / 1024  # type: ignore[arg-type]
        if m["path"] or rss < min_mib:
            continue
        start, end = int(m["start"]), int(m["end"])  # type: ignore[call-overload]
        inside = [  # a buffer may straddle two mappings (numpy aligns, the kernel splits)
            str(w)
            for a, n, w in buffers
            if int(a) < end and int(a) + int(n) > start  # type: ignore[call-overload]
        ]
        prev = maps[i - 1] if i else None
        if inside:
            what = "; ".join(inside[:3]) + (f" (+{len(inside) - 3})" if len(inside) > 3 else "")
        elif prev is not None and prev["path"] and int(prev["end"]) == start:  # type: ignore[call-overload]
            what = f"right after {Path(str(prev['path'])).name} (its .bss, if it has one)"
        elif (end - start) >> 20 == 64:
            what = "a 64 MiB glibc malloc arena (a thread's heap)"
        else:
            what = "?"
        rows.append(f"{rss:6.1f} MiB of {(end - start) / 2**20:.1f}: {what}")
    return rows


def top_files(maps: Iterable[dict[str, object]], n: int) -> list[tuple[str, float, float]]:
    """The ``n`` files with the most resident memory: (name, RSS MiB, anonymous MiB)."""
    rss: dict[str, float] = defaultdict(float)
    anon: dict[str, float] = defaultdict(float)
    for m in maps:
        path = str(m["path"])
        if path.startswith("/"):
            rss[path] += float(m.get("Rss", 0)) / 1024  # type: ignore[arg-type]
            anon[path] += float(m.get("Anonymous", 0)) / 1024  # type: ignore[arg-type]
    ranked = sorted(rss, key=rss.__getitem__, reverse=True)[:n]
    return [(Path(p).name, rss[p], anon[p]) for p in ranked]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/fpsm_bench_startup"))
    p.add_argument("--repeats", type=int, default=3, help="launches per variant (medians)")
    p.add_argument(
        "--dtype",
        action="append",
        choices=("float32", "float16"),
        help="stored weights of the ensemble (repeatable; default both)",
    )
    p.add_argument(
        "--src",
        action="append",
        default=[],
        metavar="LABEL=DIR",
        help="also launch the viewer of another source tree, e.g. an older commit",
    )
    p.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment for every launch (e.g. MALLOC_ARENA_MAX=2)",
    )
    p.add_argument(
        "--keep-cuda-pages",
        action="store_true",
        help="also launch this tree with FPSM_CUDA_PAGES=keep (CUDA libraries' pages left mapped)",
    )
    p.add_argument(
        "--trace",
        action="store_true",
        help="run tracemalloc in the viewer (slower, more memory) to name numpy's buffers",
    )
    p.add_argument("--top", type=int, default=12, help="files listed by resident size")
    p.add_argument("--timeout", type=float, default=600.0)
    args = p.parse_args()
    dtypes = args.dtype or ["float32", "float16"]
    env_extra = dict(item.partition("=")[::2] for item in args.env)
    if args.trace:
        env_extra["FPSM_BENCH_TRACE"] = "1"
    args.work.mkdir(parents=True, exist_ok=True)

    keep: dict[str, str] = {"FPSM_CUDA_PAGES": "keep"}
    trees: list[tuple[str, Path, dict[str, str]]] = [("this tree", REPO, {})]
    if args.keep_cuda_pages:
        trees.append(("this tree, CUDA pages kept", REPO, keep))
    trees += [
        (label, Path(path).resolve(), {})
        for label, _, path in (item.partition("=") for item in args.src)
    ]
    variants = []
    for dtype in dtypes:
        model, film = make_assets(args.work, 3, "tresnet_m", 512, 3000, dtype)
        variants += [(f"{label}, {dtype}", src, env, model, film) for label, src, env in trees]

    dumps: dict[str, list[dict[str, object]]] = {v[0]: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):  # interleaved, so load on the machine hits each alike
            for label, src, env, model, film in variants:
                path = Path(tmp) / f"{len(dumps[label])}-{r}.json"
                marks = launch(src, "lazy", model, film, args.timeout, path, {**env_extra, **env})
                dump = json.loads(path.read_text())
                dump["marks"] = marks
                dumps[label].append(dump)

    print(f"# bench_memory  {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"load average at the end: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    if env_extra:
        print(f"environment: {env_extra}")
    print(
        f"viewer at 'findings shown', 3 x TResNet-M 512 px, 3000x3000 film; medians of "
        f"{args.repeats} launches; MiB (2^20 bytes)\n"
    )
    for label, runs in dumps.items():
        tables = [breakdown(parse_smaps(str(d["smaps"]))) for d in runs]
        names = [n for n, _ in GROUPS] + [OTHER]
        rss = [sum(g["rss"] for g in t.values()) for t in tables]
        med = statistics.median
        total_rss = med(rss)
        print(f"## {label}")
        print(
            f"RSS {total_rss:.0f} MiB = {total_rss * 2**20 / 1e9:.3f} GB "
            f"(runs: {', '.join(f'{x:.0f}' for x in rss)}); "
            f"VmRSS at findings {med(float(d['marks']['findings']['rss_mib']) for d in runs):.0f}, "  # type: ignore[index]
            f"peak {med(float(d['marks']['peak_rss_mib']) for d in runs):.0f} MiB"  # type: ignore[index]
        )
        points = ("window", "first_film", "model", "findings")
        print(
            "VmRSS at "
            + ", ".join(
                f"{pt} {med(float(d['marks'][pt]['rss_mib']) for d in runs):.0f} "  # type: ignore[index]
                f"({med(float(d['marks'][pt]['anon_mib']) for d in runs):.0f} anonymous)"  # type: ignore[index]
                for pt in points
                if all(pt in d["marks"] for d in runs)  # type: ignore[operator]
            )
        )
        live = dict(runs[0].get("live") or {})  # type: ignore[call-overload]
        buffers = live.pop("buffers", [])
        for key, value in live.items():
            if isinstance(value, list):
                print(f"{key}:")
                for item in value:
                    print(f"    {item}")
            else:
                print(f"{key}: {value:.1f}" if isinstance(value, float) else f"{key}: {value}")
        print("\n| group | RSS | anonymous | file-backed | PSS | USS |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        totals = defaultdict(list)
        for name in names:
            cells = []
            for key in ("rss", "anon", "file", "pss", "uss"):
                values = [t.get(name, {}).get(key, 0.0) for t in tables]
                cells.append(f"{med(values):.0f}")
            if any(c != "0" for c in cells):
                print(f"| {name} | " + " | ".join(cells) + " |")
        for key in ("rss", "anon", "file", "pss", "uss"):
            totals[key] = [sum(g[key] for g in t.values()) for t in tables]
        print("| **total** | " + " | ".join(f"**{med(totals[k]):.0f}**" for k in totals) + " |")
        print("\nanonymous mappings of 8 MiB or more, first run:")
        for row in big_anonymous(parse_smaps(str(runs[0]["smaps"])), buffers):
            print(f"  {row}")
        print("\nlargest files (RSS, of which anonymous: relocated/written pages), first run:")
        for name, r, a in top_files(parse_smaps(str(runs[0]["smaps"])), args.top):
            print(f"  {r:7.1f} {a:6.1f}  {name}")
        modules = set(runs[0]["modules"])  # type: ignore[arg-type]
        tops: dict[str, int] = defaultdict(int)
        for m in modules:
            tops[m.split(".")[0]] += 1
        biggest = sorted(tops.items(), key=lambda kv: -kv[1])[:8]
        print(
            f"\nmodules imported: {len(modules)}; by package: "
            + ", ".join(f"{k} {v}" for k, v in biggest)
        )
        print(
            "notable: "
            + ", ".join(f"{n} {'yes' if n in modules else 'no'}" for n in NOTABLE)
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Batch pipeline vs the bare forward rate, default vs tuned allocator, 1 vs 2 torchrun ranks.

Side by side in one run, on the same films and model (the bundled demo ensemble unless --model):

1. For each allocator (glibc defaults, ``FPSM_MALLOC=default``; then the tuned thresholds of
   ``fpsm_core.pipeline.allocator``), a fresh child process measures
   a. the **bare forward rate**: every member's ``forward_all`` over inputs decoded and prepared
      beforehand, at the batch size and thread count the pipeline uses;
   b. the **pipeline rate**: ``run_pipeline`` over the files (decode in worker processes, forwards,
      probabilities, ranking, result assembly), all results consumed;
   c. a bare-forward batch sweep (1/4/8/16) on the first 32 films, for the CPU batch-size rule;
   the bare pass and the pipeline alternate over fifths of the films (load that comes and goes
   falls on both alike);
   with minor page faults and system time per image and the peak RSS.
2. ``fpsm infer FILMS --out DIR`` under ``torchrun --nproc_per_node 1`` and ``2`` (1 thread per
   rank), wall time from launch (imports and model loading included) to the merged output.

The last line is ``pipeline / bare forward rate: X.XX`` (tuned allocator), the issue's target
being >= 0.90.

    python bench/bench_pipeline.py [--films DIR] [--n 400] [--model DIR] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(ROOT))


def _films(args: argparse.Namespace, scratch: Path) -> list[Path]:
    from fpsm_core.io.studies import image_files

    folder = Path(args.films) if args.films else scratch / "films"
    if not folder.exists():
        print(f"simulating {args.n} films (512 px DICOM) into {folder} ...", file=sys.stderr)
        subprocess.run(
            [sys.executable, "-m", "fpsm_core.cli", "sim", "--n", str(args.n), "--out",
             str(folder), "--format", "dicom", "--quiet"],
            check=True, cwd=ROOT, env=_env(),
        )  # fmt: skip
    files = image_files(folder)[: args.n]
    if len(files) < args.n:
        sys.exit(f"{folder} holds {len(files)} images, fewer than --n {args.n}")
    return files


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), **extra}


# -- child: one allocator setting -----------------------------------------------------------------
def _usage() -> tuple[int, float]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_minflt, ru.ru_stime


def _child(args: argparse.Namespace) -> None:
    from fpsm_core.pipeline import tune_allocator

    tuning = tune_allocator()
    import numpy as np
    import torch

    from fpsm_core.inference import InferenceService, prepare_item
    from fpsm_core.io import load_image
    from fpsm_core.pipeline import plan_run, run_pipeline

    paths = [Path(p) for p in json.loads(Path(args.child).read_text())]
    service = InferenceService(args.model, device="cpu")
    plan = plan_run("cpu", len(paths), batch_size=args.batch_size, threads=args.threads)
    torch.set_num_threads(plan.threads)
    service.batch_size = plan.batch_size
    keys = service.preprocess_keys()
    items = [prepare_item(load_image(p), keys) for p in paths]  # decoded before the clock
    models = [m.model for m in service.ensemble.members]

    def bare_seconds(batch: int, chunk_items: list) -> float:
        with torch.inference_mode():
            t0 = time.perf_counter()
            for start in range(0, len(chunk_items) - len(chunk_items) % batch, batch):
                chunk = chunk_items[start : start + batch]
                for m, model in enumerate(models):
                    model.forward_all(torch.from_numpy(np.stack([it.tensors[m] for it in chunk])))
            return time.perf_counter() - t0

    def bare(batch: int, count: int) -> float:
        bare_seconds(batch, items[:batch])  # warm-up at this shape
        return (count - count % batch) / bare_seconds(batch, items[:count])

    bare_seconds(plan.batch_size, items[: plan.batch_size])  # warm-up at this shape
    list(run_pipeline(service, paths[: plan.batch_size * 2], plan))  # warm-up: workers, shapes
    # Interleaved rounds: the bare pass and the pipeline over the same fifth of the films, in
    # turn, so load from other processes that comes and goes falls on both alike.
    rounds = 5  # 400 films: 5 x 80, whole batches of 8 in both
    size = len(paths) // rounds
    bare_s = pipe_s = 0.0
    bare_faults = pipe_faults = 0
    bare_sys = pipe_sys = 0.0
    for r in range(rounds):
        part = slice(r * size, (r + 1) * size)
        f0, s0 = _usage()
        bare_s += bare_seconds(plan.batch_size, items[part])
        f1, s1 = _usage()
        t0 = time.perf_counter()
        done = sum(1 for _ in run_pipeline(service, paths[part], plan))
        pipe_s += time.perf_counter() - t0
        f2, s2 = _usage()
        assert done == size
        bare_faults, bare_sys = bare_faults + f1 - f0, bare_sys + s1 - s0
        pipe_faults, pipe_sys = pipe_faults + f2 - f1, pipe_sys + s2 - s1
    n = size * rounds
    bare_rate, pipe_rate = n / bare_s, n / pipe_s
    f0 = s0 = 0
    f1, s1 = bare_faults, bare_sys
    f2, s2 = bare_faults + pipe_faults, bare_sys + pipe_sys
    items = items[:32]
    sweep = {b: bare(b, len(items)) for b in (1, 4, 8, 16)}
    print(
        json.dumps(
            {
                "allocator": tuning.note,
                "plan": plan.describe(),
                "bare": bare_rate,
                "pipeline": pipe_rate,
                "bare_faults": (f1 - f0) / n,
                "bare_sys_ms": (s1 - s0) / n * 1e3,
                "pipeline_faults": (f2 - f1) / n,
                "pipeline_sys_ms": (s2 - s1) / n * 1e3,
                "sweep": sweep,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


# -- parent ---------------------------------------------------------------------------------------
def _measure(args: argparse.Namespace, list_file: Path, malloc: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(list_file),
        "--batch-size",
        str(args.batch_size),
    ]
    if args.model:
        cmd += ["--model", args.model]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    env = _env(FPSM_MALLOC=malloc)
    out = subprocess.run(cmd, check=True, cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _torchrun(args: argparse.Namespace, files: list[Path], scratch: Path, ranks: int) -> float:
    out = scratch / f"torchrun{ranks}"
    listing = scratch / "list.csv"
    listing.write_text("path\n" + "".join(f"{p}\n" for p in files))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(ranks), "-m", "fpsm_core.cli", "infer", str(listing), "--out", str(out), "--json",
           "--device", "cpu", "--threads", "1", "--batch-size", str(args.batch_size)]  # fmt: skip
    if args.model:
        cmd += ["--model", args.model]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=ROOT, env=_env(OMP_NUM_THREADS="1"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    elapsed = time.perf_counter() - t0
    rows = (out / "results.jsonl").read_text().splitlines()
    assert len(rows) == len(files), f"{len(rows)} merged rows for {len(files)} files"
    return len(files) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--films", help="folder of films (default: simulate --n into a temp dir)")
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--model", default=None, help="default: the bundled demo ensemble")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="default: the pipeline's plan")
    parser.add_argument("--skip-torchrun", action="store_true")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        scratch = Path(tmp)
        files = _films(args, scratch)
        list_file = scratch / "files.json"
        list_file.write_text(json.dumps([str(p) for p in files]))
        load = os.getloadavg()[0]
        print(f"{len(files)} films, batch {args.batch_size}, load average {load:.1f} at start")
        runs = {mode: _measure(args, list_file, mode) for mode in ("default", "tuned")}
        print(f"\n{'allocator':<10} {'plan':<46} {'bare img/s':>10} {'pipeline img/s':>14} "
              f"{'ratio':>6} {'faults/img bare,pipe':>21} {'sys ms/img':>11} {'peak RSS':>9}")  # fmt: skip
        for mode, r in runs.items():
            print(
                f"{mode:<10} {r['plan']:<46} {r['bare']:>10.2f} {r['pipeline']:>14.2f} "
                f"{r['pipeline'] / r['bare']:>6.2f} "
                f"{r['bare_faults']:>10.0f},{r['pipeline_faults']:>10.0f} "
                f"{r['bare_sys_ms']:>5.1f},{r['pipeline_sys_ms']:>5.1f} "
                f"{r['peak_rss_mib']:>6.0f} MiB"
            )
        print("\nbare forward img/s by batch (first 32 films):")
        for mode, r in runs.items():
            sweep = "  ".join(f"b{b}: {rate:.2f}" for b, rate in r["sweep"].items())
            print(f"  {mode:<8} {sweep}")
        tuned = runs["tuned"]
        print(f"\ntuned / default: bare {tuned['bare'] / runs['default']['bare']:.2f}x, "
              f"pipeline {tuned['pipeline'] / runs['default']['pipeline']:.2f}x")  # fmt: skip
        if not args.skip_torchrun:
            one = _torchrun(args, files, scratch, 1)
            two = _torchrun(args, files, scratch, 2)
            print(f"\nfpsm infer under torchrun, launch to merged output: 1 rank {one:.2f} img/s, "
                  f"2 ranks {two:.2f} img/s ({two / one:.2f}x)")  # fmt: skip
        print(f"load average {os.getloadavg()[0]:.1f} at the end")
        print(f"pipeline / bare forward rate: {tuned['pipeline'] / tuned['bare']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

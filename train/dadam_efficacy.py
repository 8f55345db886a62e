"""Efficacy-filtered DADAM vs all patches vs no paste, in one command, over several seeds.

    python -m train.dadam_control efficacy --labels data/sim/labels.csv --library data/dadam_lib \\
        --test-csv data/sim_test/labels.csv --test-boxes data/sim_test/boxes.csv \\
        --min-efficacy 0.02 --target 400 --budget 1200 --seeds 0 1 --out runs/efficacy

Steps (each skipped when its output is already there, so a killed run resumes):

1. score the library's patches with ``--scorer`` (``fpsm dadam score``; ``--score-per-class`` caps
   how many per class, drawn with ``--plan-seed``); the scored patches are the pool of both DADAM arms;
2. plan and generate two DADAM sets with the same targets, budget and seed: **all** (every pooled
   patch) and **filtered** (pooled patches with efficacy >= ``--min-efficacy``);
3. write the **control** of the "all" set (``write_control``: the same films, unpasted);
4. fine-tune ``--init-from`` on each arm's labels for each ``--seeds`` (``fpsm train CONFIG``);
5. ``train.compare`` the arms on the held-out set, control as reference, each arm the mean of its
   seeds with runs and images resampled (paired bootstrap intervals).

The filtered arm can reach fewer targets (classes whose patches all fall below the threshold); the
synthetic counts of both arms are printed and written to ``OUT/arms.json`` so a reader sees it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.dadam.efficacy import filter_by_efficacy, latest_scores, score_patches
from fpsm_core.dadam.generator import generate
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.dadam.planner import make_plan, write_plan
from fpsm_core.dadam.table import read_labels_csv
from fpsm_core.errors import FpsmError
from fpsm_core.labels import LABELS
from train.dadam_control import write_control

ARMS = ("control", "all", "filtered")


def _pool(lib: PatchLibrary, per_class: int | None, seed: int) -> list[Any]:
    patches = sorted(lib.patches(None), key=lambda p: p.id)
    if per_class is None:
        return patches
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for label in sorted({p.label for p in patches}):
        mine = [p for p in patches if p.label == label]
        pick = sorted(rng.permutation(len(mine))[:per_class].tolist())
        out.extend(mine[i] for i in pick)
    return sorted(out, key=lambda p: p.id)


def _arm_sets(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    table = read_labels_csv(args.labels)
    counts = table.counts()
    targets = {n: args.target for n in LABELS if n != "No Finding" and counts[n] < args.target}
    with PatchLibrary(args.library, create=False) as lib:
        pool = _pool(lib, args.score_per_class, args.plan_seed)
        rep = score_patches(
            lib, args.scorer, labels_csv=args.score_csv or args.labels, per_patch=args.per_patch,
            seed=args.plan_seed, patch_ids=[p.id for p in pool], device=args.device,
            progress=lambda d, t: print(f"\rscored {d}/{t}", end="", file=sys.stderr),
        )  # fmt: skip
        print(f"\nscoring: {len(rep.scored)} new, {len(rep.skipped)} stored, "
              f"{len(rep.failed)} failed ({rep.patches_per_second:.2f} patches/s)")  # fmt: skip
        scores = latest_scores(lib, rep.model.id)
        pooled = [p for p in pool if p.id in scores]
        kept, below, _ = filter_by_efficacy(pooled, scores, args.min_efficacy)
        info: dict[str, Any] = {
            "scorer": {"name": rep.model.name, "id": rep.model.id},
            "min_efficacy": args.min_efficacy,
            "pool": len(pooled),
            "kept": len(kept),
            "below": below,
            "kept_by_class": {},
        }
        for p in kept:
            info["kept_by_class"][p.label] = info["kept_by_class"].get(p.label, 0) + 1
        sources = {"labels_csv": str(Path(args.labels).resolve()), "library": str(args.library)}
        for arm, chosen in (("all", pooled), ("filtered", kept)):
            by_label: dict[str, list[Any]] = {}
            for p in chosen:
                by_label.setdefault(p.label, []).append(p)
            plan_path = out / f"plan_{arm}.jsonl"
            if not plan_path.is_file():
                plan = make_plan(table, by_label, targets=targets, budget=args.budget,
                                 seed=args.plan_seed, sources=sources)  # fmt: skip
                write_plan(plan, plan_path)
            gen = generate(plan_path, lib, args.images or Path(args.labels).parent, out / arm,
                           workers=args.gen_workers)  # fmt: skip
            n_syn = sum(1 for line in (out / arm / "manifest.jsonl").open()) - 1
            info[arm] = {"synthetic": n_syn, "failed": len(gen.failed)}
    control = out / "control_labels.csv"
    if not control.is_file():
        write_control(out / "all", control)
    info["csv"] = {
        "control": str(control),
        "all": str(out / "all" / "labels.csv"),
        "filtered": str(out / "filtered" / "labels.csv"),
    }
    (out / "arms.json").write_text(json.dumps(info, indent=1, sort_keys=True))
    print(f"arms: pool {len(pooled)} patches, {len(kept)} at efficacy >= {args.min_efficacy}; "
          f"synthetic images all {info['all']['synthetic']}, "
          f"filtered {info['filtered']['synthetic']}")  # fmt: skip
    return info


def _train(args: argparse.Namespace, csvs: dict[str, str]) -> dict[str, list[Path]]:
    runs: dict[str, list[Path]] = {arm: [] for arm in ARMS}
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for seed in args.seeds:
        for arm in ARMS:
            name = f"{arm}_seed{seed}"
            ckpt = args.out / "runs" / name / f"{name}.json"
            if not ckpt.is_file():
                cmd = [
                    sys.executable, "-m", "fpsm_core.cli.main", "train", str(args.config),
                    "--train-csv", csvs[arm], "--init-from", str(args.init_from),
                    "--out", str(ckpt.parent), "--name", name,
                    "--set", f"run.seed={seed}", "--set", f"data.cache_dir={args.out / 'cache'}",
                    *[x for kv in args.set for x in ("--set", kv)],
                ]  # fmt: skip
                print("$ " + " ".join(cmd), flush=True)
                done = subprocess.run(cmd, env=env)
                if done.returncode != 0 or not ckpt.is_file():
                    raise FpsmError(f"training {name} failed (exit {done.returncode}); see above.")
            runs[arm].append(ckpt)
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.dadam_control efficacy",
                                description=__doc__.splitlines()[0] if __doc__ else None)  # fmt: skip
    p.add_argument("--labels", type=Path, required=True, help="base training labels CSV")
    p.add_argument("--images", type=Path, help="root of its paths (default: its folder)")
    p.add_argument("--library", type=Path, required=True, help="patch library")
    p.add_argument("--scorer", default="resources/models/demo", help="model that scores patches")
    p.add_argument("--score-csv", type=Path, help="images to score on (default: --labels)")
    p.add_argument("--score-per-class", type=int, help="patches per class in the pool")
    p.add_argument("--per-patch", type=int, default=8, help="compositions per patch (8)")
    p.add_argument("--min-efficacy", type=float, default=0.02)
    p.add_argument("--target", type=int, default=400)
    p.add_argument("--budget", type=int, default=1200)
    p.add_argument("--plan-seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="training seeds")
    p.add_argument("--config", type=Path, default=Path("train/configs/demo_fpsm_dadam.yaml"))
    p.add_argument("--init-from", type=Path, default=Path("resources/models/demo/fpsm.json"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra fpsm train overrides (repeatable)")  # fmt: skip
    p.add_argument("--test-csv", type=Path, required=True)
    p.add_argument("--test-boxes", type=Path)
    p.add_argument("--device", default="auto")
    p.add_argument("--gen-workers", type=int, default=1)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        info = _arm_sets(args)
        runs = _train(args, info["csv"])
    except (FpsmError, OSError) as exc:
        print(f"train.dadam_control efficacy: {exc}", file=sys.stderr)
        return 2
    from train.compare import main as compare_main

    cmp = ["--csv", str(args.test_csv), "--format", "cxrlt", "--ref", "control",
           "--out", str(args.out / "compare"), "--bootstrap", str(args.bootstrap),
           "--title", "Efficacy-filtered DADAM vs all patches vs no paste"]  # fmt: skip
    if args.test_boxes:
        cmp += ["--boxes", str(args.test_boxes)]
    for arm in ARMS:
        for ckpt in runs[arm]:
            cmp += ["--model", f"{arm}={ckpt}"]
    return compare_main(cmp)


if __name__ == "__main__":
    raise SystemExit(main())

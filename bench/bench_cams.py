"""Benchmark: closed-form per-level Grad-CAM vs the bare forward pass vs the grad-cam package.

Same run, same models: a 3-member ensemble of TResNet-M FPSM 4+3+2 (26 classes, random init; the
second member has the synthetic-image embedding, as the paper's ensemble) on one 512 px image.

    bare       forward_all of every member (what inference needs for the probabilities)
    closed     the same forward passes plus all 26 x 3 closed-form raw maps per member, copied to
               the CPU as the inference Result keeps them (low resolution)
    on demand  Grad-CAM-normalised 512 px maps and fused maps for all classes (what a viewer would
               ask for, one class at a time in practice)
    package    grad-cam's GradCAM of each level's logit, one forward + backward per map (how the
               package is normally used); timed on a subset and extrapolated per map unless --full

Run: ``HF_HUB_OFFLINE=1 python bench/bench_cams.py [--full] [--repeats 5] [--size 512]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fpsm_core.explain import cams_from_output, ensemble_camset, package_cams  # noqa: E402
from fpsm_core.model import create_fpsm  # noqa: E402


def _time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tresnet_m")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--package-classes",
        type=int,
        default=2,
        help="classes timed through the package (1 member, all levels)",
    )
    parser.add_argument(
        "--full",
        action="store_true",
        help="run the package for every member, class and level (minutes)",
    )
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    members = [
        create_fpsm(args.backbone, levels=(4, 3, 2), synthetic_embedding=(i == 1)).eval()
        for i in range(args.members)
    ]
    n_classes, n_levels = members[0].num_classes, len(members[0].levels)
    x = torch.randn(1, 3, args.size, args.size)

    def bare() -> None:
        with torch.inference_mode():
            for m in members:
                out = m.forward_all(x)
                torch.sigmoid(out.logits).numpy()

    cams_holder: list = []

    def closed() -> None:
        cams_holder.clear()
        with torch.inference_mode():
            for m in members:
                out = m.forward_all(x)
                torch.sigmoid(out.logits).numpy()
                cams_holder.append(cams_from_output(m, out, args.size))

    with torch.inference_mode():
        outputs = [m.forward_all(x) for m in members]

    def maps_only() -> None:
        with torch.inference_mode():
            for m, out in zip(members, outputs, strict=True):
                cams_from_output(m, out, args.size)

    maps_total = args.members * n_classes * n_levels
    subset = list(range(args.package_classes))
    m0 = members[0]

    def package_one(c: int) -> np.ndarray:
        return package_cams(m0, x, "gradcam", "level", classes=[c], batch_size=1)

    for _ in range(2):  # warm-up (allocator, oneDNN kernels)
        bare()
        closed()
    package_one(0)
    t_bare, t_closed, t_maps, t_pkg, parts = [], [], [], [], {}
    for r in range(args.repeats):  # interleaved: load from other processes hits all alike
        t_bare.append(_time(bare))
        t_closed.append(_time(closed))
        t_maps.append(_time(maps_only))
        if not args.full:  # one package call (one class, every level) per round
            c = subset[r % len(subset)]
            t0 = time.perf_counter()
            parts[c] = package_one(c)
            t_pkg.append((time.perf_counter() - t0) / n_levels)
    # The machine is shared: noise only adds time, so the minimum estimates the cost best.
    bare_s, closed_s, maps_s = min(t_bare), min(t_closed), min(t_maps)

    ens = ensemble_camset(cams_holder)
    t_norm = _time(lambda: [c.level_maps() for c in cams_holder])
    t_fused = _time(lambda: ens.fused())
    kb = sum(c.nbytes() for c in cams_holder) / 1024

    if args.full:
        t0 = time.perf_counter()
        for m in members:
            package_cams(m, x, "gradcam", "level", classes=None, batch_size=1)
        package_s = time.perf_counter() - t0
        package_note = f"MEASURED on all {maps_total} maps"
        max_diff = float("nan")
    else:
        per_map = min(t_pkg)
        package_s = per_map * maps_total
        done = sorted(parts)
        package_note = (
            f"EXTRAPOLATED: {per_map:.2f} s/map (min of {len(t_pkg)} calls of 1 class x "
            f"{n_levels} levels, member 1, classes {done}) x {maps_total} maps"
        )
        theirs = np.concatenate([parts[c] for c in done], axis=1)
        ours = cams_holder[0].take(done).level_maps()
        max_diff = float(np.abs(ours - theirs).max())

    print(
        f"# bench_cams: {args.backbone} FPSM 4+3+2, {args.members} members, "
        f"{args.size} px, batch 1, {n_classes} classes x {n_levels} levels"
    )
    print(
        f"# machine: {platform.processor() or platform.machine()}, torch threads "
        f"{torch.get_num_threads()}, os.cpu_count {os.cpu_count()}, torch {torch.__version__}"
    )
    print(f"# min of {args.repeats} interleaved runs; date {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"bare ensemble forward                       {bare_s * 1e3:9.1f} ms")
    print(
        f"forward + all {maps_total} closed-form maps         {closed_s * 1e3:9.1f} ms"
        f"   ratio {closed_s / bare_s:.3f}x (target <= 1.15x)"
    )
    print(
        f"  the maps alone, from the forward's output  {maps_s * 1e3:9.1f} ms"
        f"   (bare + maps) / bare = {(bare_s + maps_s) / bare_s:.3f}x;  Result keeps {kb:.0f} KiB"
    )
    print(
        f"  on demand: all {maps_total} maps normalised at {args.size} px  {t_norm * 1e3:9.1f} ms"
    )
    print(f"  on demand: ensemble fused maps, {n_classes} classes    {t_fused * 1e3:9.1f} ms")
    print(
        f"grad-cam package, same {maps_total} maps            {package_s * 1e3:9.1f} ms"
        f"   {package_note}"
    )
    for name, runs in (
        ("bare", t_bare),
        ("closed", t_closed),
        ("maps", t_maps),
        ("pkg/map", t_pkg),
    ):
        print(f"# runs {name:<6} (ms): {' '.join(f'{t * 1e3:.0f}' for t in runs)}")
    print(
        f"package / closed form                       {package_s / closed_s:9.0f}x (target >= 200x)"
    )
    if not np.isnan(max_diff):
        print(f"max |closed form - package| on the subset   {max_diff:.2e} (tolerance 1e-4)")


if __name__ == "__main__":
    main()

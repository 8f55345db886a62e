"""The composition studio's core: drag-step composite, model-check overhead, scoring throughput.

Prints, side by side in one run (medians of interleaved repeats):

- one drag step at 1024 px: ``render`` of a recipe whose patch moved, the target already loaded
  (what the studio redraws per mouse move), without and with the studio's ``ComposeCache``
  (interleaved), against a 60 Hz frame (16.7 ms);
- the model check (``check_composition``: two forwards with closed-form CAMs, per member and level
  readout, in-box energy, display maps) against the two bare forwards it needs
  (``InferenceService.predict([original, composite])`` without CAMs), in ABBA order, the issue's
  target being at most +10 %;
- ``score_patches`` throughput in patches/s at N = 8 compositions per patch (steady state: the
  originals' forwards are cached after the first patches, so the first pass and the rest are shown
  apart).

Run: ``HF_HUB_OFFLINE=1 python bench/bench_studio.py [--model resources/models/demo] [--repeats 9]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fpsm_core.dadam import PatchLibrary, import_boxes, read_boxes  # noqa: E402
from fpsm_core.dadam.composition import ComposeCache  # noqa: E402
from fpsm_core.dadam.efficacy import score_patches  # noqa: E402
from fpsm_core.dadam.model_check import as_service, check_composition, grey_image  # noqa: E402
from fpsm_core.dadam.recipe import Recipe, RecipePatch, load_target, render  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="resources/models/demo")
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--patches", type=int, default=8, help="patches to score")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    import torch

    import fpsm_core.sim as sim

    tmp = Path(tempfile.mkdtemp(prefix="bench_studio_"))
    src = tmp / "src"
    sim.write_dataset(src, n=24, seed=2, format="png", size=1024)
    dst_labels = sim.write_dataset(tmp / "dst", n=16, seed=3, format="png", size=256)
    with PatchLibrary(tmp / "lib") as lib:
        import_boxes(lib, read_boxes(src / "boxes.csv", "fpsm"), src, dataset="sim")
        patches = [p for p in lib.patches(None) if p.label != "Support Devices"]
        p = max(patches, key=lambda q: q.width * q.height if q.label == "Cardiomegaly" else 0)
        target_rel = next(x.relative_to(src).as_posix() for x in sorted((src / "images").iterdir()))
        recipe = Recipe(target_rel, (), (RecipePatch(p.id, p.label, p.rel_center),), seed=1)
        target = load_target(recipe, src)
        # -- drag steps at 1024 px
        target[0].setflags(write=False)  # a loaded target, as the studio keeps it
        cache = ComposeCache()  # the studio's: what a move does not change is kept
        render(recipe, lib, target=target)  # warm the pixel cache
        steps: dict[str, list[float]] = {"no cache": [], "ComposeCache": []}
        for i in range(max(args.repeats * 10, 50)):
            moved = recipe.moved(0, (p.rel_center[0] + 0.002 * (i % 20), p.rel_center[1]))
            for name, with_cache in (("no cache", None), ("ComposeCache", cache)):
                t0 = time.perf_counter()
                comp = render(moved, lib, target=target, cache=with_cache)
                steps[name].append((time.perf_counter() - t0) * 1e3)
        for name, xs in steps.items():
            drag = statistics.median(xs)
            print(f"drag step at {target[0].shape[1]}x{target[0].shape[0]} px "
                  f"({p.label} patch {p.width}x{p.height}), render with {name}: median "
                  f"{drag:.2f} ms = {drag / 16.7:.2f} of a 60 Hz frame")  # fmt: skip
        # -- model check vs the two bare forwards
        service = as_service(args.model, args.device)
        original = target[0]
        box = comp.placements[0].box
        imgs = [grey_image(original, "original"), grey_image(comp.image)]
        service.predict(imgs)
        check_composition(service, original, comp.image, box, p.label)
        # wall time and this process's CPU time: on a shared machine the CPU time is the steadier
        wall: dict[str, list[float]] = {"bare": [], "check": []}
        cpu: dict[str, list[float]] = {"bare": [], "check": []}
        runs = {
            "bare": lambda: service.predict(imgs),
            "check": lambda: check_composition(service, original, comp.image, box, p.label),
        }
        for i in range(args.repeats):  # ABBA: neither always runs first after the other
            for name in ("bare", "check") if i % 2 == 0 else ("check", "bare"):
                t0, c0 = time.perf_counter(), time.process_time()
                runs[name]()
                wall[name].append(time.perf_counter() - t0)
                cpu[name].append(time.process_time() - c0)
        med = statistics.median
        b, c = med(wall["bare"]), med(wall["check"])
        bc, cc = med(cpu["bare"]), med(cpu["check"])
        print(f"model check on {service.device}: bare forwards {b * 1e3:.0f} ms wall / "
              f"{bc * 1e3:.0f} ms CPU, check {c * 1e3:.0f} ms wall / {cc * 1e3:.0f} ms CPU; "
              f"overhead {100 * (c / b - 1):+.1f} % wall, {100 * (cc / bc - 1):+.1f} % CPU "
              f"(target <= +10 %)")  # fmt: skip
        # -- scoring throughput at N = 8
        ids = [q.id for q in patches[: args.patches]]
        half = len(ids) // 2
        c0 = time.process_time()
        first = score_patches(
            lib, service, labels_csv=dst_labels, per_patch=8, patch_ids=ids[:half]
        )
        c1 = time.process_time()
        rest = score_patches(lib, service, labels_csv=dst_labels, per_patch=8, patch_ids=ids[half:])
        c2 = time.process_time()
        print(f"scoring at N=8: first {half} patches {first.patches_per_second:.2f} patches/s "
              f"({(c1 - c0) / max(half, 1):.1f} CPU-s/patch, originals read), next "
              f"{len(ids) - half} {rest.patches_per_second:.2f} patches/s "
              f"({(c2 - c1) / max(len(ids) - half, 1):.1f} CPU-s/patch); "
              f"torch threads {torch.get_num_threads()}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

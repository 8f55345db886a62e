"""DADAM throughput: composed images per second at 1024 px, and patch-library insert/query rates.

Prints, side by side in one run:

- composition alone (decoded image in memory -> composed image in memory): CutMix with one patch
  and MixUp with two, lung field estimated from each image, on 1 process and on N processes;
- the generator end to end (PNG decode via fpsm_core.io, compose, PNG encode, manifest), 1 and N
  workers, against the issue's target of 100 images/s;
- library inserts (one transaction per patch, and batched) and queries.

Generator rates are steady-state (from the 4*workers-th image on); the start-up of the worker
processes (spawn, imports) is shown separately.

Run: ``HF_HUB_OFFLINE=1 python bench/bench_dadam.py [--size 1024] [--n 400] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fpsm_core.dadam.composition import PatchSpec, compose  # noqa: E402
from fpsm_core.dadam.generator import generate  # noqa: E402
from fpsm_core.dadam.library import PatchLibrary  # noqa: E402
from fpsm_core.dadam.planner import make_plan, write_plan  # noqa: E402
from fpsm_core.dadam.table import LabelTable, write_labels_csv  # noqa: E402
from fpsm_core.labels import LABEL_INDEX, LABELS  # noqa: E402

TARGET = 100.0
LUNG_CLASSES = ("Nodule", "Mass", "Consolidation", "Atelectasis")
OTHER_CLASSES = ("Pneumothorax", "Pleural Effusion", "Cardiomegaly", "Fracture")


def chest(size: int, seed: int) -> np.ndarray:
    """A chest-like 8-bit film: body, two dark lungs, ribs, noise."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    img = np.full((size, size), 25.0, np.float32)
    img[((xx - 0.5) / 0.46) ** 2 + ((yy - 0.55) / 0.56) ** 2 <= 1.0] = 165.0
    for cx in (0.31, 0.69):
        lung = ((xx - cx) / 0.14) ** 2 + ((yy - 0.45) / 0.25) ** 2 <= 1.0
        img[lung] = 70.0
    img += 18.0 * (np.sin(yy * 60.0) > 0.7)  # ribs
    img += rng.normal(0, 4.0, img.shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(img, (0, 0), 1.5), 0, 255).astype(np.uint8)


def patches(n: int, seed: int = 0) -> list[tuple[np.ndarray, tuple[int, int, int, int], str]]:
    """Lesion crops with NIH-like sizes at 1024 px (30-300 px boxes, 25 % margin)."""
    rng = np.random.default_rng(seed)
    out = []
    for k in range(n):
        side = int(rng.uniform(30, 300))
        m = max(6, side // 4)
        crop = np.full((side + 2 * m, side + 2 * m), int(rng.uniform(60, 140)), np.uint8)
        cv2.circle(crop, (m + side // 2, m + side // 2), side // 2, int(rng.uniform(170, 230)), -1)
        crop = cv2.GaussianBlur(crop, (0, 0), 2.0)
        label = (LUNG_CLASSES + OTHER_CLASSES)[k % 8]
        out.append((crop, (m, m, m + side, m + side), label))
    return out


def _specs(crops, k: int, rng: np.random.Generator, mixup: bool) -> list[PatchSpec]:
    chosen = [crops[int(rng.integers(len(crops)))] for _ in range(2 if mixup else 1)]
    return [
        PatchSpec(pix, box, label, (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.3, 0.7))),
                  alpha=0.6 if mixup else 1.0, spacing_mm=(0.14, 0.14), image_size=(2500, 2500))
        for pix, box, label in chosen
    ]  # fmt: skip


def compose_timed(size: int, n: int, seed: int = 0) -> tuple[int, float]:
    """Compose n images (setup excluded); returns (n, seconds)."""
    cv2.setNumThreads(1)
    dests = [chest(size, s) for s in range(8)]
    crops = patches(64)
    rng = np.random.default_rng(seed)
    jobs = [(dests[k % 8], _specs(crops, k, rng, mixup=k % 2 == 1)) for k in range(n)]
    spacing = (0.14 * 2500 / size,) * 2
    t0 = time.perf_counter()
    for k, (dest, specs) in enumerate(jobs):
        compose(dest, specs, dest_spacing=spacing, rng=np.random.default_rng(k))
    return n, time.perf_counter() - t0


def _compose_worker(args: tuple[int, int, int]) -> tuple[int, float]:
    return compose_timed(*args)


def compose_rates(size: int, n: int, workers: int) -> dict[int, float]:
    """Images/s of composition alone on 1 process and on ``workers`` processes at once."""
    n1, t1 = compose_timed(size, n)
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers) as pool:
        done = pool.map(_compose_worker, [(size, n // workers, w) for w in range(workers)])
    # Each process times its own loop (setup excluded); they run concurrently.
    return {1: n1 / t1, workers: sum(k for k, _ in done) / max(t for _, t in done)}


def generator_rates(size: int, n: int, workers: int, tmp: Path, fmt: str) -> dict[str | int, float]:
    """Generator images/s (1 and N workers) and the decode+encode floor, destinations in ``fmt``."""
    tmp = tmp / fmt
    images = tmp / "base" / "images"
    images.mkdir(parents=True)
    n_dest = 60
    meta, ys = [], []
    rng = np.random.default_rng(1)
    for i in range(n_dest):
        params = (
            [cv2.IMWRITE_JPEG_QUALITY, 95] if fmt == "jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        cv2.imwrite(str(images / f"d{i:03d}.{fmt}"), chest(size, 100 + i), params)
        y = np.zeros(len(LABELS), np.uint8)
        if i % 3 == 0:
            y[LABEL_INDEX["No Finding"]] = 1
        else:
            y[LABEL_INDEX[(LUNG_CLASSES + OTHER_CLASSES)[int(rng.integers(8))]]] = 1
        meta.append({"dicom_id": f"d{i:03d}", "subject_id": str(i), "study_id": str(i), "ViewPosition": "PA",
                     "ViewCodeSequence_CodeMeaning": "postero-anterior", "path": f"images/d{i:03d}.{fmt}"})  # fmt: skip
        ys.append(y)
    labels_csv = tmp / "base" / "labels.csv"
    write_labels_csv(labels_csv, ((m, y, 0) for m, y in zip(meta, ys, strict=True)))
    table = LabelTable(labels_csv, tuple(meta), np.array(ys), np.zeros(n_dest, np.uint8))
    with PatchLibrary(tmp / "lib") as lib:
        for k, (pix, box, label) in enumerate(patches(64)):
            lib.add_patch(pix, box, label, dataset="bench", image_id=f"p{k}", source_box=box,
                          image_size=(2500, 2500), rel_center=(0.4, 0.5), spacing_mm=(0.14, 0.14))  # fmt: skip
        targets = {name: n for name in LUNG_CLASSES + OTHER_CLASSES}
        plan = make_plan(
            table, lib, targets=targets, budget=n, seed=0, sources={"labels_csv": str(labels_csv)}
        )
    plan_path = write_plan(plan, tmp / "plan.jsonl")
    rates: dict[str | int, float] = {}
    # The floor: decode the destination and encode a PNG, nothing else (same files, same order).
    t0 = time.perf_counter()
    for item in plan.items:
        img = cv2.imread(str(tmp / "base" / item.dest["path"]), cv2.IMREAD_GRAYSCALE)
        if fmt == "jpg":
            cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        else:
            cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    rates["io_floor"] = len(plan.items) / (time.perf_counter() - t0)
    for w in sorted({1, workers}):
        stamps: list[float] = []
        rep = generate(
            plan_path, tmp / "lib", tmp / "base", tmp / f"out{w}", workers=w,
            progress=lambda done, total, s=stamps: s.append(time.perf_counter()),
        )  # fmt: skip
        # Steady state: from the 4*w-th image on (worker start-up and imports excluded).
        k0 = 4 * w
        rates[w] = (len(stamps) - k0) / (stamps[-1] - stamps[k0 - 1])
        rates[f"{w}_with_startup"] = rep.generated / rep.seconds
    return rates


def library_rates(tmp: Path, n: int = 2000) -> dict[str, float]:
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 255, (64, 64), dtype=np.uint8) for _ in range(n)]
    out = {}
    for mode in ("per_patch", "batched"):
        with PatchLibrary(tmp / f"lib_{mode}") as lib:
            t0 = time.perf_counter()
            if mode == "per_patch":
                for k, pix in enumerate(crops):
                    lib.add_patch(pix, (8, 8, 56, 56), LABELS[k % 26], dataset="b", image_id=str(k),
                                  source_box=(0, 0, 48, 48), image_size=(1024, 1024), rel_center=(0.5, 0.5))  # fmt: skip
            else:
                for start in range(0, n, 100):
                    with lib.transaction():
                        for k in range(start, min(start + 100, n)):
                            lib.add_patch(crops[k], (8, 8, 56, 56), LABELS[k % 26], dataset="b", image_id=str(k),
                                          source_box=(0, 0, 48, 48), image_size=(1024, 1024), rel_center=(0.5, 0.5))  # fmt: skip
            out[f"insert_{mode}"] = n / (time.perf_counter() - t0)
            if mode == "batched":
                t0 = time.perf_counter()
                for k in range(500):
                    lib.patches(LABELS[k % 26])
                out["query_by_label"] = 500 / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                for k in range(1, 5001):
                    lib.get(k % n + 1)
                out["get_by_id"] = 5000 / (time.perf_counter() - t0)
                t0 = time.perf_counter()
                for k in range(1, 1001):
                    lib.load_pixels(lib.get(k))
                out["load_pixels"] = 1000 / (time.perf_counter() - t0)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--n", type=int, default=400, help="images per measurement")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    os.environ.setdefault("FPSM_CONFIG_DIR", tempfile.mkdtemp(prefix="fpsm_bench_cfg_"))
    print(f"DADAM benchmark: {args.size} px, {args.n} images per measurement, {args.workers} workers, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    comp = compose_rates(args.size, args.n, args.workers)
    one, many = comp[1], comp[args.workers]
    with tempfile.TemporaryDirectory() as d:
        gens = {
            f: generator_rates(args.size, args.n, args.workers, Path(d), f) for f in ("jpg", "png")
        }
        lib = library_rates(Path(d))
    rows = [
        ("compose in memory, 1 process", one),
        (f"compose in memory, {args.workers} processes", many),
    ]
    for fmt, gen in gens.items():
        rows.append((f"{fmt.upper()} decode + encode only (I/O floor), 1 proc", gen["io_floor"]))
        rows += [
            (f"generate {fmt.upper()} (io load, compose, write), {w} worker(s)", r)
            for w, r in gen.items()
            if isinstance(w, int)
        ]
        rows.append(
            (
                f"  same, {args.workers} workers, incl. process start-up",
                gen[f"{args.workers}_with_startup"],
            )
        )
    print(f"\n{'images/s at ' + str(args.size) + ' px':<52}{'rate':>10}{'vs target 100/s':>18}")
    for name, rate in rows:
        print(f"{name:<52}{rate:>10.1f}{rate / TARGET:>17.2f}x")
    print(f"{'parallel speed-up (compose)':<48}{many / one:>10.2f}x")
    for fmt, gen in gens.items():
        print(
            f"{'parallel speed-up (generate ' + fmt.upper() + ')':<48}{gen[args.workers] / gen[1]:>10.2f}x"
        )
        print(
            f"{'generate / I/O floor (' + fmt.upper() + ', 1 process)':<48}{gen[1] / gen['io_floor']:>10.2f}x"
        )
    print(f"\n{'patch library (64 px crops)':<48}{'per s':>10}")
    for name, rate in lib.items():
        print(f"{name:<48}{rate:>10.1f}")
    print(
        f"{'batched / per-patch insert':<48}{lib['insert_batched'] / lib['insert_per_patch']:>10.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

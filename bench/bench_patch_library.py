"""Patch-library curation at gallery scale: a 50,000-patch library, queried and curated.

Builds a synthetic library quickly (rows bulk-inserted in one transaction, the 26 patch files
shared between rows, random sizes, data sets, readers and dHashes), then prints, side by side in
one run (medians of ``--repeats``):

- open the library and get the first page of ids (what the virtualised gallery shows first), in
  insertion order, sorted by size, and filtered by class and state;
- every id of a sort (the gallery's scroll range), a page of ``Patch`` objects, its thumbnails;
- label x state counts, free-text search, duplicate groups over the whole library;
- accept 1,000 selected patches (one transaction with its history rows), and undo it;
- the same through the command line: ``fpsm dadam library LIB --accept <1,000 ids>`` in a fresh
  process (interpreter start included) and in-process, and ``--list --json`` of every patch.

Run: ``python bench/bench_patch_library.py [--n 50000] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fpsm_core.cli.main import main as cli_main  # noqa: E402
from fpsm_core.dadam.library import PatchLibrary  # noqa: E402
from fpsm_core.labels import LABELS  # noqa: E402

DATASETS = ("nih", "vindr", "chestxdet", "sim")


def build(root: Path, n: int, seed: int = 0) -> float:
    """A library of n patches; returns the seconds it took."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    with PatchLibrary(root) as lib:
        files = []
        for k in range(len(LABELS)):
            pix = rng.integers(0, 255, (64, 64), dtype=np.uint8)
            rel = Path("patches") / "shared" / f"{k:02d}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / rel), pix)
            files.append(rel.as_posix())
        labels = rng.integers(0, len(LABELS), n)
        sides = rng.integers(8, 400, n)
        spacing = rng.choice([0.14, 0.17, 0.5, np.nan], n)
        ds = rng.integers(0, len(DATASETS), n)
        readers = rng.integers(1, 4, n)
        hashes = rng.integers(-(2**63), 2**63 - 1, n, dtype=np.int64)
        now = time.time()
        rows = []
        prov = []
        for i in range(n):
            s = int(sides[i])
            sp = None if np.isnan(spacing[i]) else float(spacing[i])
            x0, y0 = float(rng.integers(0, 2000)), float(rng.integers(0, 2000))
            image_id = f"img{i // 3:06d}"
            rows.append((
                hashlib.sha256(str(i).encode()).hexdigest(), LABELS[labels[i]], files[labels[i]],
                64, 64, 8, 8, 56, 56, None if sp is None else s * sp, None if sp is None else s * sp,
                sp, sp, 3000, 3000, 0.5, 0.5, now - n + i, now - n + i, DATASETS[ds[i]], image_id,
                f"/data/{image_id}.png", x0, y0, x0 + s, y0 + s, s, None if sp is None else s * sp,
                int(readers[i]), int(hashes[i]),
            ))  # fmt: skip
            for r in range(int(readers[i])):
                prov.append((i + 1, DATASETS[ds[i]], image_id, f"R{r}", LABELS[labels[i]],
                             x0 + r, y0, x0 + s, y0 + s))  # fmt: skip
        with lib.transaction() as db:
            db.executemany(
                "INSERT INTO patches(sha256, label, file, width, height, box_x0, box_y0, box_x1, "
                "box_y1, width_mm, height_mm, spacing_row, spacing_col, image_width, image_height,"
                " rel_cx, rel_cy, created, updated, dataset, image_id, image_path, src_x0, src_y0,"
                " src_x1, src_y1, size_px, size_mm, n_readers, dhash) VALUES "
                f"({','.join('?' * 30)})",
                rows,
            )
            db.executemany(
                "INSERT INTO provenance(patch_id, dataset, image_id, reader, source_label, x0, y0,"
                " x1, y1) VALUES (?,?,?,?,?,?,?,?,?)",
                prov,
            )
        lib.connection.execute("ANALYZE")
    return time.perf_counter() - t0


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def first_page(root: Path, **query: object) -> list[int]:
    with PatchLibrary(root) as lib:
        return lib.query_ids(limit=200, **query)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="bench_lib_") as tmp:
        root = Path(tmp) / "lib"
        rows.append((f"build a {args.n:,}-patch library (bulk rows, shared files)",
                     f"{build(root, args.n):.1f} s"))  # fmt: skip
        r = args.repeats
        for what, q in (
            ("open + first 200 ids, insertion order", {}),
            ("open + first 200 ids, by size (largest first)", {"sort": "size", "descending": True}),
            ("open + first 200 ids, Nodule unreviewed, by rating", {"labels": ["Nodule"],
             "states": ["unreviewed"], "sort": "rating"}),
            ("open + first 200 ids, 10-30 mm, 2+ readers, by source", {"min_size": 10,
             "max_size": 30, "size_unit": "mm", "min_readers": 2, "sort": "source"}),
        ):  # fmt: skip
            rows.append((what, f"{median_ms(lambda q=q: first_page(root, **q), r):.1f} ms"))
        with PatchLibrary(root) as lib:
            ids: list[int] = []
            t = median_ms(lambda: ids.extend(lib.query_ids(sort="size")), r)
            rows.append((f"all {args.n:,} ids by size (the scroll range)", f"{t:.1f} ms"))
            page = ids[:200]
            rows.append(("200 Patch objects of a page (get_many)",
                         f"{median_ms(lambda: lib.get_many(page), r):.1f} ms"))  # fmt: skip
            patches = lib.get_many(page)
            t = median_ms(lambda: [lib.load_pixels(p) for p in patches], r)
            rows.append(("200 thumbnails decoded (64x64 PNG)", f"{t:.1f} ms"))
            rows.append(("label x state counts",
                         f"{median_ms(lib.state_counts, r):.1f} ms"))  # fmt: skip
            lib.add_tags(ids[::97], ["check"])
            t = median_ms(lambda: lib.query_ids(text="chec", limit=200), r)
            rows.append(("free-text search in notes and tags, first 200", f"{t:.1f} ms"))
            t0 = time.perf_counter()
            groups = lib.duplicate_groups()
            rows.append((f"duplicate groups over the library ({len(groups):,} found)",
                         f"{time.perf_counter() - t0:.2f} s"))  # fmt: skip
            rng = np.random.default_rng(1)
            sel = [int(i) for i in rng.choice(ids, 1000, replace=False)]
            acc, und = [], []
            for _ in range(r):
                t0 = time.perf_counter()
                lib.set_state(sel, "accepted")
                acc.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                lib.undo()
                und.append((time.perf_counter() - t0) * 1000)
            rows.append(("accept 1,000 selected patches (one transaction + history)",
                         f"{statistics.median(acc):.1f} ms"))  # fmt: skip
            rows.append(("undo that accept", f"{statistics.median(und):.1f} ms"))
        id_args = [str(i) for i in sel]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "fpsm_core.cli.main", "dadam", "library", str(root)]

        def cli_accept() -> None:
            subprocess.run([*cmd, "--accept", *id_args], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip
            subprocess.run([*cmd, "--unreview", *id_args], env=env, check=True,
                           stdout=subprocess.DEVNULL)  # fmt: skip

        t = median_ms(cli_accept, max(1, r // 2)) / 2
        rows.append(("CLI: fpsm dadam library --accept 1,000 ids (new process)", f"{t:.0f} ms"))
        t = median_ms(lambda: subprocess.run([*cmd, "--json"], env=env, check=True,
                                             stdout=subprocess.DEVNULL), max(1, r // 2))  # fmt: skip
        rows.append(("CLI: fpsm dadam library --json counts (new process: the start-up floor)",
                     f"{t:.0f} ms"))  # fmt: skip

        def inproc(argv: list[str]) -> None:
            with contextlib.redirect_stdout(io.StringIO()):
                cli_main(["dadam", "library", str(root), *argv])

        # Accept then un-review, halved: accepting what is already accepted writes nothing.
        t = median_ms(lambda: (inproc(["--accept", *id_args]), inproc(["--unreview", *id_args])), r)
        rows.append(("CLI in-process: --accept 1,000 ids", f"{t / 2:.1f} ms"))
        t = median_ms(lambda: inproc(["--list", "--json"]), max(1, r // 2))
        rows.append((f"CLI in-process: --list --json, all {args.n:,} patches", f"{t:.0f} ms"))
    width = max(len(w) for w, _ in rows)
    print(f"{'what':<{width}}  figure")
    for what, fig in rows:
        print(f"{what:<{width}}  {fig}")


if __name__ == "__main__":
    main()

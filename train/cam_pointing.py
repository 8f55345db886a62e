"""Per-level Grad-CAM pointing game by lesion size, on a box-annotated (simulated) test set.

For every ground-truth box of a positive finding, the closed-form Grad-CAM of that finding at each
pyramid level of one model (and the fused map) is mapped back onto the image, and the pointing game
asks whether the map's peak falls inside the box. Boxes are bucketed by their longer side relative
to the image: small (< 12 %), medium (12-30 %), large (> 30 %). This is the check behind the paper's
claim that shallow levels help with small lesions and deep ones with large.

    python -m train.cam_pointing --model resources/models/demo/fpsm.json \\
        --labels data/sim_test/labels.csv --boxes data/sim_test/boxes.csv --out docs/demo_cams.md
"""

from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from fpsm_core.explain import CamSet, pointing_game, pointing_region, resize_maps
from fpsm_core.inference import InferenceService
from fpsm_core.io import ImageLoadError, load_image
from fpsm_core.preprocess import unletterbox

BUCKETS = (("small", 0.0, 0.12), ("medium", 0.12, 0.30), ("large", 0.30, 1.01))


def _bucket(box: tuple[float, ...], shape: tuple[int, int]) -> str:
    frac = max((box[2] - box[0]) / shape[1], (box[3] - box[1]) / shape[0])
    return next(name for name, lo, hi in BUCKETS if lo <= frac < hi)


def evaluate(
    model: Path,
    labels_csv: Path,
    boxes_csv: Path,
    limit: int | None = None,
    tolerance: float = 0.0,
) -> dict:
    service = InferenceService(model, device="auto", batch_size=8)
    member = service.ensemble.members[0]
    levels = member.model.levels
    size = member.meta.preprocessing.input_size
    label_index = {lab: i for i, lab in enumerate(service.labels)}
    paths = {
        r["dicom_id"]: labels_csv.parent / r["path"] for r in csv.DictReader(labels_csv.open())
    }
    boxes: dict[str, list[tuple[str, tuple[float, ...]]]] = defaultdict(list)
    for row in csv.DictReader(boxes_csv.open()):
        if row["x_min"] and row["class_name"] in label_index:
            box = tuple(float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            boxes[row["image_id"]].append((row["class_name"], box))
    ids = [i for i in paths if i in boxes][:limit]
    # hits[(bucket or class)][column] -> list of bool; columns are the levels then "fused"
    by_bucket: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    by_class: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for image_id in ids:
        try:
            image = load_image(paths[image_id])
        except ImageLoadError as exc:
            print(exc)
            continue
        result = service.predict([image], cams=True)[0]
        assert result.cams is not None  # asked for
        raw = result.cams[0]  # member 0: per level (C, h, w)
        shape = result.image_shape
        for label, box in boxes[image_id]:
            c = label_index[label]
            cams = CamSet(
                levels=levels,
                classes=np.array([[c]]),
                raw=tuple(level[c][None, None] for level in raw),
                input_size=(size, size),
            )
            per_level = np.stack([resize_maps(level[c][None], size)[0] for level in raw])
            maps = np.concatenate([per_level, cams.fused(size=size)[0]], axis=0)
            on_image = unletterbox(maps, result.letterboxes[0], size, shape)
            hits = pointing_game(on_image, box, tolerance=tolerance)
            bucket = _bucket(box, shape)
            # a peak at a uniformly random pixel would hit with the box's share of the image
            inside = pointing_region(shape, box, tolerance).mean()
            by_bucket[bucket]["chance"].append(float(inside))
            by_class[label]["chance"].append(float(inside))
            for column, hit in zip([f"L{lv}" for lv in levels] + ["fused"], hits, strict=True):
                by_bucket[bucket][column].append(bool(hit))
                by_class[label][column].append(bool(hit))
    return {
        "levels": levels,
        "by_bucket": by_bucket,
        "by_class": by_class,
        "images": len(ids),
        "tolerance": tolerance,
    }


def markdown(report: dict, title: str) -> str:
    columns = [f"L{lv}" for lv in report["levels"]] + ["fused", "chance"]
    tol = report.get("tolerance", 0.0)
    out = [
        f"# {title}",
        "",
        f"Pointing game hit rate (%), {report['images']} images"
        + (f", peaks within {tol:g} px of the box count" if tol else "")
        + ". *chance* is the rate of a peak at a uniformly random pixel (the boxes' mean share of"
        " the image).",
        "",
    ]
    for key, rows, order in (
        (
            "lesion size (longer box side / image side)",
            report["by_bucket"],
            [b[0] for b in BUCKETS],
        ),
        ("finding", report["by_class"], sorted(report["by_class"])),
    ):
        out += [
            f"| {key} | boxes | " + " | ".join(columns) + " |",
            "|---|---:|" + "---:|" * len(columns),
        ]
        for name in order:
            if name not in rows:
                continue
            n = len(rows[name][columns[0]])
            cells = " | ".join(f"{100 * np.mean(rows[name][c]):.1f}" for c in columns)
            out.append(f"| {name} | {n} | {cells} |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--labels", type=Path, required=True)
    parser.add_argument("--boxes", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--title", default="Per-level Grad-CAM pointing game by lesion size")
    parser.add_argument(
        "--tolerance", type=float, default=0.0, help="count peaks within this many pixels of a box"
    )
    parser.add_argument("--json", type=Path, help="also write the hit rates as JSON")
    args = parser.parse_args(argv)
    report = evaluate(args.model, args.labels, args.boxes, args.limit, args.tolerance)
    text = markdown(report, args.title)
    args.out.write_text(text + "\n", encoding="utf-8")
    if args.json:
        rates = {
            group: {
                name: {col: float(np.mean(v)) for col, v in cols.items()}
                | {"boxes": len(next(iter(cols.values())))}
                for name, cols in report[group].items()
            }
            for group in ("by_bucket", "by_class")
        }
        summary = {"model": str(args.model), "levels": list(report["levels"]),
                   "images": report["images"], "tolerance": args.tolerance, **rates}  # fmt: skip
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

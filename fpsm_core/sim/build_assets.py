"""Regenerate the simulator's small real-data assets under ``resources/sim/`` from PyPI wheels.

The simulator draws lung outlines from real annotated radiographs and sizes some findings after real
bounding boxes. Both come from data files inside the ``torchxrayvision`` wheel (Apache-2.0 code; the
lung masks are V7 Labs' CC BY 4.0 annotations, the boxes are the NIH ChestX-ray14 ``BBox_List_2017``).
This script reads the wheel (fetched with ``pip download --no-deps`` when no path is given), keeps a
few dozen clean two-lung masks as resampled contours and summarises the NIH boxes per CXR-LT class,
and writes two small JSON files. It is run by hand, never at simulation time:

    python -m fpsm_core.sim.build_assets [--wheel PATH] [--out resources/sim]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.labels import NIH_TO_CXRLT

WHEEL_PIN = "torchxrayvision==1.5.7"
MASK_ZIP = "torchxrayvision/data/semantic_masks_v7labs_lungs.zip"
NIH_BOXES = "torchxrayvision/data/BBox_List_2017.csv.gz"
CONTOUR_POINTS = 64
MAX_TEMPLATES = 48
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _fetch_wheel(dest: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL_PIN, "-d", str(dest)],
        check=True,
    )
    return next(dest.glob("torchxrayvision-*.whl"))


def _resample(contour: np.ndarray, n: int) -> np.ndarray:
    """Resample a closed contour to ``n`` points evenly spaced by arc length, from its top point."""
    pts = contour.reshape(-1, 2).astype(np.float64)
    start = int(np.argmin(pts[:, 1] * 1e4 + pts[:, 0]))
    pts = np.roll(pts, -start, axis=0)
    closed = np.vstack([pts, pts[:1]])
    seg = np.linalg.norm(np.diff(closed, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    targets = np.linspace(0.0, arc[-1], n, endpoint=False)
    x = np.interp(targets, arc, closed[:, 0])
    y = np.interp(targets, arc, closed[:, 1])
    return np.stack([x, y], axis=1)


def _lung_pair(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Return (image-left lung, image-right lung) contours of a clean two-lung mask, else None."""
    binary = (mask > 127).astype(np.uint8)
    h, w = binary.shape
    if min(h, w) < 256:
        return None
    count, labels, stats, centroids = cv2.connectedComponentsWithStats(binary)
    order = np.argsort(stats[1:, cv2.CC_STAT_AREA])[::-1] + 1
    if len(order) < 2:
        return None
    big = order[:2]
    areas = stats[big, cv2.CC_STAT_AREA].astype(float)
    if areas.min() < 0.04 * h * w or areas.max() / areas.min() > 1.7:
        return None
    if len(order) > 2 and stats[order[2], cv2.CC_STAT_AREA] > 0.002 * h * w:
        return None  # annotation arrows or a split lung
    contours = []
    for idx in sorted(big, key=lambda i: centroids[i][0]):
        x, y, bw, bh = stats[idx, :4]
        if x <= 1 or y <= 1 or x + bw >= w - 1 or y + bh >= h - 1:
            return None  # cut by the image border
        found, _ = cv2.findContours(
            (labels == idx).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
        )
        contour = max(found, key=cv2.contourArea)
        hull_area = cv2.contourArea(cv2.convexHull(contour))
        if cv2.contourArea(contour) < 0.85 * hull_area:
            return None
        contours.append(_resample(contour, CONTOUR_POINTS))
    left, right = contours
    if left[:, 0].max() >= right[:, 0].min():
        return None
    return left, right


def lung_templates(wheel: zipfile.ZipFile) -> list[dict[str, object]]:
    """Clean lung pairs from the V7 Labs masks, normalised to the pair's bounding box."""
    with zipfile.ZipFile(io.BytesIO(wheel.read(MASK_ZIP))) as masks:
        names = sorted(n for n in masks.namelist() if not n.endswith("/"))
        pairs = []
        for name in names:
            buf = np.frombuffer(masks.read(name), np.uint8)
            mask = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
            if mask is None:
                continue
            pair = _lung_pair(mask)
            if pair is None:
                continue
            both = np.vstack(pair)
            lo, hi = both.min(axis=0), both.max(axis=0)
            aspect = (hi[1] - lo[1]) / (hi[0] - lo[0])
            if not 0.65 <= aspect <= 1.25:
                continue
            norm = [((c - lo) / (hi - lo)).round(4).tolist() for c in pair]
            pairs.append(
                {"source": name.split("/")[-1], "right_lung": norm[0], "left_lung": norm[1]}
            )
    step = max(1, len(pairs) // MAX_TEMPLATES)
    return pairs[::step][:MAX_TEMPLATES]


def nih_box_stats(wheel: zipfile.ZipFile) -> dict[str, dict[str, object]]:
    """Quantiles of NIH box width, height and centre as fractions of the 1024 px image."""
    text = gzip.decompress(wheel.read(NIH_BOXES)).decode()
    rows: dict[str, list[list[float]]] = {}
    for line in text.splitlines()[1:]:  # the header is malformed: skip it, parse by position
        parts = line.split(",")
        if len(parts) < 6:
            continue
        label = NIH_TO_CXRLT.get(parts[1])
        if label is None:
            continue
        x, y, w, h = (float(v) / 1024.0 for v in parts[2:6])
        rows.setdefault(label, []).append([w, h, x + w / 2, y + h / 2])
    stats: dict[str, dict[str, object]] = {}
    for label, values in sorted(rows.items()):
        arr = np.asarray(values)
        stats[label] = {
            "n": len(values),
            "quantiles": list(QUANTILES),
            **{
                key: np.quantile(arr[:, i], QUANTILES).round(4).tolist()
                for i, key in enumerate(("width", "height", "centre_x", "centre_y"))
            },
        }
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a torchxrayvision wheel (else pip download)")
    parser.add_argument("--out", type=Path, default=Path("resources/sim"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel_path = args.wheel or _fetch_wheel(Path(tmp))
        with zipfile.ZipFile(wheel_path) as wheel:
            templates = lung_templates(wheel)
            boxes = nih_box_stats(wheel)
    args.out.mkdir(parents=True, exist_ok=True)
    lungs = {
        "source": f"{WHEEL_PIN}: {MASK_ZIP} (V7 Labs lung annotations, CC BY 4.0)",
        "points_per_contour": CONTOUR_POINTS,
        "frame": "x, y as fractions of the bounding box of both lungs; image left = patient right",
        "templates": templates,
    }
    (args.out / "lung_contours.json").write_text(json.dumps(lungs, separators=(",", ":")))
    box_doc = {
        "source": f"{WHEEL_PIN}: {NIH_BOXES} (NIH ChestX-ray14 boxes, 1024 px images)",
        "units": "fractions of the image width / height",
        "classes": boxes,
    }
    (args.out / "box_stats.json").write_text(json.dumps(box_doc, indent=1))
    print(f"wrote {len(templates)} lung templates and box stats for {len(boxes)} classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())

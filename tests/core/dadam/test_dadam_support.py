"""Shared helpers of the DADAM tests (no tests here): tiny chest-like images and data sets.

The images are drawn with numpy (a bright body, two dark lung fields, a brighter mediastinum, a
little noise) so the tests do not depend on the simulator; lesions are bright discs with exact boxes.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.labels import CXRLT_META_COLUMNS, LABELS

DATA = Path(__file__).resolve().parents[2] / "data"
META = CXRLT_META_COLUMNS
LUNGS = ((0.31, 0.45, 0.14, 0.25), (0.69, 0.45, 0.14, 0.25))


def chest(size: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A chest-like uint8 image and its true lung mask (bool)."""
    rng = np.random.default_rng(seed)
    yy, xx = (np.mgrid[0:size, 0:size] + 0.5) / size
    img = np.full((size, size), 20.0)
    body = ((xx - 0.5) / 0.45) ** 2 + ((yy - 0.55) / 0.55) ** 2 <= 1.0
    img[body] = 170.0
    lungs = np.zeros((size, size), bool)
    for cx, cy, ax, ay in LUNGS:
        jx, jy = rng.uniform(-0.01, 0.01, 2)
        lungs |= ((xx - cx - jx) / ax) ** 2 + ((yy - cy - jy) / ay) ** 2 <= 1.0
    img[lungs] = 60.0
    img += rng.normal(0, 3.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8), lungs


def add_lesion(
    img: np.ndarray, cx: int, cy: int, r: int, value: int = 200
) -> tuple[int, int, int, int]:
    """Draw a bright disc; returns its box (x0, y0, x1, y1), x1/y1 exclusive."""
    cv2.circle(img, (cx, cy), r, int(value), -1)
    return (cx - r, cy - r, cx + r + 1, cy + r + 1)


def write_dataset(
    root: Path,
    n: int = 12,
    size: int = 96,
    seed: int = 0,
    lesions: dict[int, list[str]] | None = None,
) -> tuple[Path, Path, Path]:
    """Images, a CXR-LT labels CSV and an fpsm (VinDr layout) boxes CSV.

    Rows listed in ``lesions`` get one bright disc per label (with a box); the others are normal.

    Returns:
        (images folder, labels CSV, boxes CSV).
    """
    lesions = lesions or {}
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    labels_csv = root / "labels.csv"
    boxes_csv = root / "boxes.csv"
    with labels_csv.open("w", newline="") as lf, boxes_csv.open("w", newline="") as bf:
        lw, bw = csv.writer(lf), csv.writer(bf)
        lw.writerow([*META, *LABELS])
        bw.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
        for i in range(n):
            img, _ = chest(size, seed * 1000 + i)
            names = lesions.get(i, [])
            for j, name in enumerate(names):
                cx = int(size * (0.3 if j % 2 == 0 else 0.7))
                cy = int(size * (0.4 + 0.1 * (j // 2)))
                box = add_lesion(img, cx, cy, max(3, size // 16))
                bw.writerow([f"img{i:03d}", "R1", name, *box])
            cv2.imwrite(str(images / f"img{i:03d}.png"), img)
            y = [0] * len(LABELS)
            for name in names:
                y[LABELS.index(name)] = 1
            if not names:
                y[LABELS.index("No Finding")] = 1
            lw.writerow(
                [
                    f"img{i:03d}",
                    f"{1000 + i // 2}",
                    f"{5000 + i}",
                    "PA",
                    "postero-anterior",
                    f"images/img{i:03d}.png",
                    *y,
                ]
            )
    return images, labels_csv, boxes_csv


def correlated_labels(n: int, seed: int = 0) -> np.ndarray:
    """An (n, 26) 0/1 matrix with a long tail and a few strong co-occurrences."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n, 3))
    y = np.zeros((n, len(LABELS)), np.uint8)
    prevalence = np.linspace(0.30, 0.01, len(LABELS))
    loadings = np.zeros((len(LABELS), 3))
    loadings[LABELS.index("Nodule"), 0] = 0.8
    loadings[LABELS.index("Mass"), 0] = 0.8
    loadings[LABELS.index("Lung Lesion"), 0] = 0.6
    loadings[LABELS.index("Pneumothorax"), 1] = 0.8
    loadings[LABELS.index("Subcutaneous Emphysema"), 1] = 0.8
    loadings[LABELS.index("Fracture"), 1] = 0.6
    loadings[LABELS.index("Cardiomegaly"), 2] = 0.7
    loadings[LABELS.index("Edema"), 2] = 0.7
    loadings[LABELS.index("Pleural Effusion"), 2] = 0.5
    from statistics import NormalDist

    for c in range(len(LABELS)):
        if LABELS[c] == "No Finding":
            continue
        score = f @ loadings[c] + rng.normal(size=n) * np.sqrt(
            max(1 - (loadings[c] ** 2).sum(), 0.1)
        )
        thr = NormalDist().inv_cdf(1 - prevalence[c]) * np.sqrt(
            (loadings[c] ** 2).sum() + max(1 - (loadings[c] ** 2).sum(), 0.1)
        )
        y[:, c] = score > thr
    nf = LABELS.index("No Finding")
    y[:, nf] = (np.delete(y, nf, axis=1).sum(axis=1) == 0).astype(np.uint8)
    return y


def table_from_y(y: np.ndarray):  # -> LabelTable
    from fpsm_core.dadam.table import LabelTable

    meta = tuple(
        {"dicom_id": f"d{i}", "subject_id": f"s{i // 3}", "study_id": f"t{i}", "ViewPosition": "PA",
         "ViewCodeSequence_CodeMeaning": "postero-anterior", "path": f"images/d{i}.png"}
        for i in range(len(y))
    )  # fmt: skip
    return LabelTable(None, meta, y.astype(np.uint8), np.zeros(len(y), np.uint8))


def full_txv_file(name: str, tmp: Path) -> Path | None:
    """A data file of the torchxrayvision package if it is installed or its wheel is at hand."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is not None and spec.submodule_search_locations:
        path = Path(next(iter(spec.submodule_search_locations))) / "data" / name
        if path.is_file():
            return path
    import os

    for wheel in sorted(
        Path(os.environ.get("FPSM_TXV_WHEEL_DIR", "/tmp/txv")).glob("torchxrayvision-*.whl")
    ):
        with zipfile.ZipFile(wheel) as zf:
            member = f"torchxrayvision/data/{name}"
            if member in zf.namelist():
                out = tmp / name
                out.write_bytes(zf.read(member))
                return out
    return None


def gz_rows(path: Path) -> list[list[str]]:
    with io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))

"""Tiny learnable radiograph data sets written into a test folder.

Images are smooth grey "chests"; a large bright disc marks Cardiomegaly, a small bright dot marks
Nodule and a thin bright line marks Support Devices, so a resnet18 at 64 px learns them in a few
epochs on a CPU. The CSV follows the CXR-LT layout with MIMIC-style paths.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.labels import CXRLT_META_COLUMNS, LABELS

SIGNAL_CLASSES = ("Cardiomegaly", "Nodule", "Support Devices")
META = CXRLT_META_COLUMNS


def make_image(rng: np.random.Generator, labels: set[str], h: int = 72, w: int = 64) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 90 + 20 * rng.standard_normal((h, w)).astype(np.float32)
    for cx in (w * 0.3, w * 0.7):
        img -= 40 * np.exp(-(((xx - cx) / (w * 0.15)) ** 2 + ((yy - h * 0.5) / (h * 0.3)) ** 2))
    if "Cardiomegaly" in labels:
        img += 90 * (((xx - w * 0.5) ** 2 + (yy - h * 0.6) ** 2) < (0.22 * w) ** 2)
    if "Nodule" in labels:
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.5) * h
        img += 120 * (((xx - cx) ** 2 + (yy - cy) ** 2) < (0.06 * w) ** 2)
    if "Support Devices" in labels:
        x0 = int(rng.uniform(0.3, 0.7) * w)
        img[:, x0 : x0 + 2] += 130
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dataset(
    root: Path,
    n: int = 48,
    seed: int = 0,
    *,
    synthetic: bool = False,
    name: str = "labels.csv",
    broken: int = 0,
    missing: int = 0,
) -> Path:
    """Write ``n`` images and a CXR-LT CSV under ``root``; returns the CSV path.

    Args:
        synthetic: add the DADAM ``synthetic`` column (every other image is 1).
        broken: how many listed files are corrupt (not images).
        missing: how many listed files do not exist.
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        present = {
            c for c, p in zip(SIGNAL_CLASSES, (0.5, 0.4, 0.35), strict=True) if rng.random() < p
        }
        subject = 10000000 + i // 2  # two images per patient
        study = 50000000 + i
        dicom_id = f"img{seed}_{i:04d}"
        rel = f"files/p{str(subject)[:2]}/p{subject}/s{study}/{dicom_id}.png"
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if i < broken:
            path.write_bytes(b"this is not a PNG")
        elif i < broken + missing:
            pass
        else:
            cv2.imwrite(str(path), make_image(rng, present))
        labels = {lab: int(lab in present) for lab in LABELS}
        labels["No Finding"] = int(not present)
        row = {
            "dicom_id": dicom_id,
            "subject_id": subject,
            "study_id": study,
            "ViewPosition": "PA",
            "ViewCodeSequence_CodeMeaning": "postero-anterior",
            "path": rel,
            **labels,
        }
        if synthetic:
            row["synthetic"] = i % 2
        rows.append(row)
    csv_path = root / name
    columns = [*META, *LABELS, *(["synthetic"] if synthetic else [])]
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


def tiny_config(csv_path: Path, out_dir: Path, **overrides: object) -> dict[str, object]:
    """A config dict for a seconds-long CPU run of resnet18 at 64 px."""
    config: dict[str, dict[str, object]] = {
        "data": {
            "format": "cxrlt",
            "train_csv": str(csv_path),
            "val_fraction": 0.25,
            "num_workers": 0,
        },
        "model": {"backbone": "resnet18", "levels": [4, 3, 2]},
        "input": {"input_size": 64},
        "loss": {"type": "bce"},
        "optim": {
            "epochs": 2,
            "batch_size": 8,
            "lr": 2e-3,
            "warmup_epochs": 0.0,
            "ema": False,
            "amp": False,
        },
        "run": {"out_dir": str(out_dir), "name": "tiny", "progress": False, "device": "cpu"},
    }
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    return config  # type: ignore[return-value]

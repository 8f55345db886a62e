"""The DADAM report: per-class counts before and after, and the co-occurrence it kept.

Like the paper's Fig. 2d, the original and augmented label correlation matrices (absolute values,
zero diagonal) are drawn side by side on one colour scale, with their distance in the title. Drawn
with OpenCV, so no plotting library is needed. ``write_report`` also writes ``report.json`` and a
markdown table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.dadam.cooc import MatrixDistance, correlation_matrix, matrix_distance
from fpsm_core.dadam.table import LabelTable, read_labels_csv
from fpsm_core.labels import LABELS

_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class DadamReport:
    """Counts and co-occurrence of a data set before and after augmentation.

    Attributes:
        counts_before: Label -> positive images in the original rows.
        counts_after: Label -> positive images in the augmented set (original + synthetic).
        n_before: Original rows.
        n_after: Rows after augmentation.
        corr_before: (26, 26) correlation matrix of the original rows.
        corr_after: (26, 26) correlation matrix of all rows.
        distance: How far the two matrices are apart.
        files: What ``write_report`` wrote (name -> path).
    """

    counts_before: Mapping[str, int]
    counts_after: Mapping[str, int]
    n_before: int
    n_after: int
    corr_before: np.ndarray
    corr_after: np.ndarray
    distance: MatrixDistance
    files: Mapping[str, Path]


def compare(original: LabelTable, augmented: LabelTable) -> DadamReport:
    """Counts and correlation matrices of two label tables."""
    a = correlation_matrix(original.y)
    b = correlation_matrix(augmented.y)
    return DadamReport(
        counts_before=original.counts(),
        counts_after=augmented.counts(),
        n_before=len(original),
        n_after=len(augmented),
        corr_before=a,
        corr_after=b,
        distance=matrix_distance(a, b),
        files={},
    )


def render_matrices(
    a: np.ndarray,
    b: np.ndarray,
    *,
    titles: tuple[str, str] = ("original", "augmented"),
    caption: str = "",
    labels: Sequence[str] = LABELS,
    cell: int = 18,
) -> np.ndarray:
    """Two correlation matrices side by side on one colour scale (BGR uint8 image)."""
    n = len(labels)
    vmax = max(float(a.max()), float(b.max()), 1e-6)
    label_w = 200
    top = 200
    gap = 40
    side = n * cell
    bar_w = 60
    width = label_w + 2 * side + gap + bar_w + 40
    height = top + side + 60
    img = np.full((height, width, 3), 255, np.uint8)

    def heat(m: np.ndarray) -> np.ndarray:
        scaled = np.clip(m / vmax * 255.0, 0, 255).astype(np.uint8)
        big = cv2.resize(scaled, (side, side), interpolation=cv2.INTER_NEAREST)
        return cv2.applyColorMap(big, cv2.COLORMAP_VIRIDIS)

    for k, (m, title) in enumerate(((a, titles[0]), (b, titles[1]))):
        x0 = label_w + k * (side + gap)
        img[top : top + side, x0 : x0 + side] = heat(m)
        cv2.putText(img, title, (x0, 22), _FONT, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        # Column names, written horizontally then rotated to run upwards.
        strip = np.full((cell * n, top - 40, 3), 255, np.uint8)
        for j, name in enumerate(labels):
            cv2.putText(
                strip, name[:26], (4, j * cell + cell - 5), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA
            )
        rotated = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
        img[36 : 36 + rotated.shape[0], x0 : x0 + side] = rotated[:, :side]
    for i, name in enumerate(labels):
        cv2.putText(
            img, name[:28], (4, top + i * cell + cell - 5), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA
        )
    # Colour bar.
    bx = label_w + 2 * side + gap + 10
    ramp = np.linspace(255, 0, side).astype(np.uint8)[:, None].repeat(16, axis=1)
    img[top : top + side, bx : bx + 16] = cv2.applyColorMap(ramp, cv2.COLORMAP_VIRIDIS)
    cv2.putText(img, f"{vmax:.2f}", (bx + 20, top + 10), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "0", (bx + 20, top + side), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    if caption:
        cv2.putText(img, caption, (label_w, top + side + 35), _FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def render_counts(
    before: Mapping[str, int], after: Mapping[str, int], labels: Sequence[str] = LABELS
) -> np.ndarray:
    """Horizontal bars of positives per class, before (grey) and after (blue), log scale."""
    row = 18
    label_w = 210
    plot_w = 520
    height = 40 + row * len(labels) + 20
    img = np.full((height, label_w + plot_w + 90, 3), 255, np.uint8)
    top = max(max(after.values(), default=1), max(before.values(), default=1), 1)
    scale = plot_w / np.log10(top + 1)
    cv2.putText(
        img,
        "positives per class (log): before grey, after blue",
        (label_w, 22),
        _FONT,
        0.45,
        (0, 0, 0),
        1,
        cv2.LINE_AA,
    )
    for i, name in enumerate(labels):
        y = 40 + i * row
        cv2.putText(img, name[:28], (4, y + row - 5), _FONT, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
        wa = int(np.log10(after.get(name, 0) + 1) * scale)
        wb = int(np.log10(before.get(name, 0) + 1) * scale)
        cv2.rectangle(img, (label_w, y + 2), (label_w + wa, y + row - 3), (200, 120, 30), -1)
        cv2.rectangle(img, (label_w, y + 6), (label_w + wb, y + row - 7), (150, 150, 150), -1)
        cv2.putText(
            img,
            f"{after.get(name, 0)}",
            (label_w + wa + 4, y + row - 5),
            _FONT,
            0.35,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return img


def write_report(
    original: str | Path | LabelTable,
    augmented: str | Path | LabelTable,
    out: str | Path,
    *,
    prefix: str = "dadam_",
) -> DadamReport:
    """Write the comparison PNGs, ``report.json`` and ``report.md`` into a folder.

    Args:
        original: The base labels CSV (or table).
        augmented: The augmented labels CSV from ``generate`` (or table); when it holds a
            ``synthetic`` column, "before" may also be taken from its non-synthetic rows.
        out: Folder for the files.
        prefix: File name prefix of the PNGs.

    Returns:
        The report with ``files`` filled.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    a = original if isinstance(original, LabelTable) else read_labels_csv(original)
    b = augmented if isinstance(augmented, LabelTable) else read_labels_csv(augmented)
    rep = compare(a, b)
    d = rep.distance
    caption = (
        f"distance: Frobenius {d.frobenius:.3f}, mean |diff| {d.mean_abs:.4f}, "
        f"max {d.max_abs:.3f} ({d.worst[0]} / {d.worst[1]})"
    )
    files = {
        "cooc_png": out / f"{prefix}cooc.png",
        "counts_png": out / f"{prefix}counts.png",
        "json": out / "report.json",
        "markdown": out / "report.md",
    }
    cv2.imwrite(
        str(files["cooc_png"]),
        render_matrices(
            rep.corr_before,
            rep.corr_after,
            titles=(f"original ({rep.n_before} images)", f"augmented ({rep.n_after} images)"),
            caption=caption,
        ),
    )
    cv2.imwrite(str(files["counts_png"]), render_counts(rep.counts_before, rep.counts_after))
    files["json"].write_text(
        json.dumps(
            {
                "n_before": rep.n_before,
                "n_after": rep.n_after,
                "counts_before": dict(rep.counts_before),
                "counts_after": dict(rep.counts_after),
                "distance": dict(d.as_dict()),
                "corr_before": np.round(rep.corr_before, 5).tolist(),
                "corr_after": np.round(rep.corr_after, 5).tolist(),
                "labels": list(LABELS),
            },
            indent=1,
        )
    )
    lines = [
        "# DADAM report",
        "",
        f"Images: {rep.n_before} before, {rep.n_after} after.",
        "",
        f"Co-occurrence (|corr|, zero diagonal) {caption}.",
        "",
        "| class | before | after | added |",
        "|---|---:|---:|---:|",
    ]
    for name in LABELS:
        nb, na = rep.counts_before.get(name, 0), rep.counts_after.get(name, 0)
        lines.append(f"| {name} | {nb} | {na} | {na - nb:+d} |")
    lines += [
        "",
        f"![co-occurrence]({files['cooc_png'].name})",
        f"![counts]({files['counts_png'].name})",
        "",
    ]
    files["markdown"].write_text("\n".join(lines))
    return DadamReport(**{**rep.__dict__, "files": files})

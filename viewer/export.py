"""Exports from the viewer: the findings as JSON or CSV (the current view's PNG is a widget grab).

The JSON is the inference service's own record (``Result.to_json``), so files written by the viewer
and by ``fpsm infer --json`` read the same way; the CSV has one row per finding with each member's
probability and each level's logit as extra columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class ExportError(OSError):
    """A file could not be written; the message names the file and the reason."""


def write_findings_json(result: Any, path: str | Path) -> Path:
    """Write every finding of a result as JSON (``Result.to_json``)."""
    target = Path(path)
    try:
        target.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ExportError(f"Cannot write '{target}': {exc.strerror or exc}.") from None
    return target


def findings_rows(result: Any) -> tuple[list[str], list[list[Any]]]:
    """The CSV table: header and one row per finding, highest probability first."""
    header = ["image", "label", "probability", "threshold", "above_threshold", "member_spread"]
    header += [f"p[{name}]" for name in result.member_names]
    level_cols = [
        (m, i, f"logit[{name}][L{lv}]")
        for m, (name, levels) in enumerate(
            zip(result.member_names, result.member_levels, strict=True)
        )
        for i, lv in enumerate(levels)
    ]
    header += [col for _, _, col in level_cols]
    rows = []
    for f in result.findings:
        row: list[Any] = [
            result.path or "",
            f.label,
            f"{f.probability:.6f}",
            f"{f.threshold:.6f}",
            int(f.above_threshold),
            f"{f.member_spread:.6f}",
        ]
        row += [f"{p:.6f}" for p in f.member_probabilities]
        row += [f"{f.level_logits[m][i]:.6f}" for m, i, _ in level_cols]
        rows.append(row)
    return header, rows


def write_findings_csv(result: Any, path: str | Path) -> Path:
    """Write every finding of a result as CSV (see :func:`findings_rows`)."""
    target = Path(path)
    header, rows = findings_rows(result)
    try:
        with target.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(header)
            writer.writerows(rows)
    except OSError as exc:
        raise ExportError(f"Cannot write '{target}': {exc.strerror or exc}.") from None
    return target

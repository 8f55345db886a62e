"""Validation curves of several training runs side by side, epoch by epoch, as a markdown table.

    python -m train.curves l4=runs/ablate/l4_sum_enc0 l432=runs/demo_fpsm --metric val_mAP

Reads each run folder's ``metrics.csv`` (written by ``fpsm train``); a run still training shows the
epochs it has finished. Values are printed in percent; the best epoch of each run is marked.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import Sequence
from pathlib import Path

from fpsm_core.errors import FpsmError


class CurvesError(FpsmError):
    """A run folder without readable metrics."""


def read_curve(run: Path, metric: str) -> dict[int, float]:
    """Epoch -> value of ``metric`` from ``run/metrics.csv`` (epoch rows only)."""
    path = run / "metrics.csv"
    if not path.is_file():
        raise CurvesError(f"{path} does not exist; name a folder written by `fpsm train`.")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if metric not in (reader.fieldnames or []):
            raise CurvesError(f"{path} has no column {metric!r}.")
        curve = {}
        for row in reader:
            if row.get("type") == "epoch" and row.get(metric):
                curve[int(row["epoch"])] = float(row[metric])
    return curve


def curves_markdown(curves: dict[str, dict[int, float]], metric: str) -> str:
    epochs = sorted({e for c in curves.values() for e in c})
    lines = [
        f"| epoch | {' | '.join(curves)} |",
        "| ---: |" + " ---: |" * len(curves),
    ]
    best = {name: max(c, key=c.__getitem__) for name, c in curves.items() if c}
    for e in epochs:
        cells = []
        for name, c in curves.items():
            if e not in c:
                cells.append("")
                continue
            text = f"{100 * c[e]:.2f}"
            cells.append(f"**{text}**" if best.get(name) == e else text)
        lines.append(f"| {e} | {' | '.join(cells)} |")
    return f"{metric} (%), best epoch in bold\n\n" + "\n".join(lines) + "\n"


def _run_arg(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    return (name, Path(path)) if sep else (Path(text).name, Path(text))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m train.curves", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("runs", nargs="+", type=_run_arg, metavar="[NAME=]RUN_DIR")
    p.add_argument("--metric", default="val_mAP", help="a metrics.csv column (default val_mAP)")
    args = p.parse_args(argv)
    try:
        curves = {name: read_curve(path, args.metric) for name, path in args.runs}
    except (FpsmError, OSError, ValueError) as exc:
        print(f"train.curves: {exc}", file=sys.stderr)
        return 2
    print(curves_markdown(curves, args.metric), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

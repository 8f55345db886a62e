"""``fpsm sim``: write a simulated chest radiograph data set with ground-truth labels and boxes.

Images go to ``OUT/images/``, labels to ``OUT/labels.csv`` (CXR-LT layout), boxes to
``OUT/boxes.csv`` (VinDr layout) and the settings to ``OUT/sim_config.json``. The same seed gives
the same data set; progress and the rendering rate go to stderr.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from fpsm_core.cli.main import CLIError

# What --help prints: plain text (the module docstring is reStructuredText for the API docs).
DESCRIPTION = """\
Write a simulated chest radiograph data set with ground-truth labels and boxes.

Images go to OUT/images/, labels to OUT/labels.csv (CXR-LT layout), boxes to
OUT/boxes.csv (VinDr layout) and the settings to OUT/sim_config.json. The same
seed gives the same data set; progress and the rendering rate go to stderr."""


def register(subparsers: Any) -> None:
    """Add the ``sim`` subcommand."""
    p = subparsers.add_parser(
        "sim",
        help="simulate chest radiographs with ground-truth findings",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--n", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, default=0, help="data set seed (default 0)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--format", choices=("dicom", "png"), default="dicom", help="image format")
    p.add_argument("--size", type=int, default=512, help="image side in pixels (default 512)")
    p.add_argument(
        "--min-prevalence",
        type=float,
        default=0.0,
        help="floor on every finding's prevalence, to thin the long tail (default 0: CXR-LT-like)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="worker processes (default: up to 2); the output does not depend on it",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the data set; user mistakes become :class:`CLIError`."""
    from fpsm_core.sim.config import SimConfig
    from fpsm_core.sim.writer import SimWriteError, write_dataset

    if args.n < 1:
        raise CLIError(f"--n must be at least 1, not {args.n}.")
    if not 64 <= args.size <= 4096:
        raise CLIError(f"--size must be between 64 and 4096 pixels, not {args.size}.")
    if not 0.0 <= args.min_prevalence <= 1.0:
        raise CLIError(f"--min-prevalence must be between 0 and 1, not {args.min_prevalence}.")
    if args.workers < 1:
        raise CLIError(f"--workers must be at least 1, not {args.workers}.")
    config = SimConfig(size=args.size, min_prevalence=args.min_prevalence)
    try:
        labels_csv = write_dataset(
            args.out,
            args.n,
            seed=args.seed,
            format=args.format,
            config=config,
            workers=args.workers,
            progress=not args.quiet,
        )
    except SimWriteError as exc:
        raise CLIError(str(exc)) from None
    print(labels_csv)
    return 0

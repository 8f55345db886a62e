"""``fpsm calibrate``: fit the distribution gate and the calibration of an existing model.

The labelled table is split the way training splits it (by patient, ``--val-fraction`` and
``--split-seed`` as in the training config, defaults 0.2 and 0), so for a model trained on the same
table the held-out part is its own validation split, never trained on. The gate's statistics come
from the training part (at most ``--max-train`` images), the gate threshold (``--quantile`` of the
held-out scores), the per-class Platt scaling and the thresholds from the held-out part. With
``--heldout CSV`` a separate table is the held-out part and all of ``--data`` is training data.

The trust data are written beside the model (``NAME.trust.safetensors`` and a ``trust`` section in
``NAME.json``, and in ``ensemble.json`` for an ensemble), or into a copy made in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from fpsm_core.cli.options import plain_help


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "calibrate",
        help="fit the input gate and the probability calibration of a model",
        description=plain_help(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="CKPT_OR_ENSEMBLE", help="checkpoint .json or ensemble folder")
    p.add_argument("--data", required=True, type=Path, metavar="CSV", help="labelled image table")
    p.add_argument("--images", type=Path, metavar="ROOT", help="folder the table's paths are under")
    p.add_argument("--format", default="auto", help="table format (auto, cxrlt, nih, generic...)")
    p.add_argument("--heldout", type=Path, metavar="CSV", help="a separate held-out table")
    p.add_argument("--val-fraction", type=float, default=0.2, help="held-out share (default 0.2)")
    p.add_argument(
        "--split",
        default="patient",
        choices=("patient", "random"),
        help="hold out whole patients (default) or random images",
    )
    p.add_argument("--split-seed", type=int, default=0, help="split seed (default 0)")
    p.add_argument(
        "--max-train", type=int, default=1200, help="training images for the gate (default 1200)"
    )
    p.add_argument(
        "--quantile",
        type=float,
        default=0.99,
        help="held-out quantile of the gate threshold (default 0.99: ~1%% false alarms)",
    )
    p.add_argument("--rank", type=int, default=64, help="gate covariance rank (default 64)")
    p.add_argument(
        "--batch-size", type=int, default=16, help="images per forward pass (default 16)"
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="copy the model here and write into the copy"
    )
    p.add_argument("--json", action="store_true", help="print the measured figures as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.data.records import DatasetError, read_dataset
    from fpsm_core.data.split import split_records
    from fpsm_core.inference import InferenceError, pick_device
    from fpsm_core.model.checkpoint import CheckpointError
    from fpsm_core.model.ensemble import load_model
    from fpsm_core.trust.fit import fit_trust

    if not 0.5 <= args.quantile < 1.0:
        raise CLIError(f"--quantile must lie in [0.5, 1), not {args.quantile}.")
    if args.max_train < 2:
        raise CLIError(f"--max-train must be at least 2, not {args.max_train}.")
    if args.rank < 1:
        raise CLIError(f"--rank must be at least 1, not {args.rank}.")
    model_path = Path(args.model)
    if args.out is not None:
        model_path = _copy_model(model_path, args.out)
    try:
        device = pick_device(args.device)
        ensemble = load_model(model_path, device=device)
        records = read_dataset(args.format, args.data, args.images)
        if args.heldout is not None:
            train = records
            heldout = read_dataset(args.format, args.heldout, args.images)
        else:
            train, heldout = split_records(records, args.val_fraction, args.split, args.split_seed)
        if heldout.labels != ensemble.labels or train.labels != ensemble.labels:
            raise CLIError(f"{args.data} does not have the model's {len(ensemble.labels)} labels.")
        bar = _Bar()
        try:
            fitted = fit_trust(
                ensemble,
                train,
                heldout,
                quantile=args.quantile,
                rank=args.rank,
                max_train=args.max_train,
                batch_size=args.batch_size,
                device=str(device),
                info={
                    "data": str(args.data),
                    "heldout": str(args.heldout) if args.heldout else None,
                    "split": None
                    if args.heldout
                    else {
                        "by": args.split,
                        "val_fraction": args.val_fraction,
                        "seed": args.split_seed,
                    },
                },
                progress=bar.update,
            )
        finally:
            bar.close()
    except (CheckpointError, DatasetError, InferenceError, ValueError, OSError) as exc:
        raise CLIError(str(exc)) from None
    summary = dict(fitted.summary)
    if args.json:
        print(json.dumps({"model": str(model_path), **summary}))
        return 0
    print(f"calibrated {model_path}")
    print(
        f"  gate: fitted on {summary['n_train']} training images; threshold at the "
        f"{args.quantile:.3g} quantile of {summary['n_heldout']} held-out images "
        f"({fitted.ensemble_threshold:.3f})"
    )
    print(
        f"  calibration (held-out images, ECE over 15 bins): {summary['ece_before']:.3f} -> "
        f"{summary['ece_after']:.3f}; mean probability {summary['mean_probability_before']:.3f} "
        f"-> {summary['mean_probability_after']:.3f} (prevalence {summary['prevalence']:.3f})"
    )
    print(
        f"  findings flagged per image: {summary['flagged_per_image_before']:.2f} -> "
        f"{summary['flagged_per_image_after']:.2f} ({summary['positives_per_image']:.2f} present)"
    )
    print("  (figures on the calibration split itself; measure on other data to judge them)")
    return 0


def _copy_model(src: Path, out: Path) -> Path:
    """Copy a checkpoint (JSON + weights) or an ensemble folder into ``out``; returns the copy."""
    from fpsm_core.cli.main import CLIError

    if not src.exists():
        raise CLIError(f"{src} does not exist.")
    try:
        out.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            target = out / src.name
            shutil.copytree(src, target, dirs_exist_ok=True)
            return target
        json_path = src.with_suffix(".json")
        for path in (json_path, src.with_suffix(".safetensors")):
            if path.is_file():
                shutil.copy2(path, out / path.name)
        return out / json_path.name
    except OSError as exc:
        raise CLIError(f"cannot copy {src} into {out} ({exc.strerror or exc}).") from None


class _Bar:
    def __init__(self) -> None:
        self._bar: Any = None
        self._stage = ""

    def update(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self._stage:
            self.close()
            self._stage = stage
            self._bar = tqdm(
                total=total, unit="img", desc=stage, file=sys.stderr, leave=False, disable=None
            )
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

"""``fpsm train``: train an FPSM from a YAML config (also ``python -m train.fit`` and torchrun).

The config file gives the whole run (see ``train/configs/base.yaml``); ``--set section.key=value``
changes any field and the common ones have their own flags. Under ``torchrun`` every rank runs
this same command. The first Ctrl-C finishes the current step and writes the resume state;
``--resume`` continues exactly where the run stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an FPSM model from a YAML config",
        description="Train an FPSM model (per-level losses, AdamW, AMP, EMA, DDP under torchrun) "
        "from a YAML config. Research software, not for clinical use.",
    )
    add_arguments(p)
    p.set_defaults(func=run)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``fpsm train`` arguments (shared with ``train/fit.py``)."""
    p.add_argument("config", nargs="?", help="YAML config (default: built-in defaults)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=3e-4 (repeatable)",
    )
    p.add_argument("--train-csv", help="data.train_csv")
    p.add_argument("--image-root", help="data.image_root")
    p.add_argument("--val-csv", help="data.val_csv")
    p.add_argument("--epochs", type=int, help="optim.epochs")
    p.add_argument("--batch-size", type=int, help="optim.batch_size")
    p.add_argument("--lr", type=float, help="optim.lr")
    p.add_argument("--input-size", type=int, help="input.input_size")
    p.add_argument("--max-train-images", type=int, help="data.max_train_images")
    p.add_argument("--max-val-images", type=int, help="data.max_val_images")
    p.add_argument("--init-from", help="model.init_from: fine-tune from this checkpoint")
    p.add_argument("--out", help="run.out_dir")
    p.add_argument("--name", help="run.name (checkpoint file name)")
    p.add_argument("--device", help="run.device: auto, cpu, cuda")
    p.add_argument("--workers", type=int, help="data.num_workers")
    p.add_argument("--resume", action="store_true", help="continue the run in --out / run.out_dir")
    p.add_argument("--resume-from", metavar="DIR", help="continue the run saved in DIR")
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config as JSON and exit"
    )
    p.add_argument(
        "--warm-cache",
        type=int,
        metavar="WORKERS",
        help="first decode every image into data.cache_dir with this many processes, then exit "
        "(run it once on all CPU cores before a long or multi-GPU run)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines")


FLAG_FIELDS = {
    "train_csv": "data.train_csv",
    "image_root": "data.image_root",
    "val_csv": "data.val_csv",
    "epochs": "optim.epochs",
    "batch_size": "optim.batch_size",
    "lr": "optim.lr",
    "input_size": "input.input_size",
    "max_train_images": "data.max_train_images",
    "max_val_images": "data.max_val_images",
    "init_from": "model.init_from",
    "out": "run.out_dir",
    "name": "run.name",
    "device": "run.device",
    "workers": "data.num_workers",
}


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.data.records import DatasetError
    from fpsm_core.model.checkpoint import CheckpointError
    from fpsm_core.training.config import ConfigError, load_config
    from fpsm_core.training.state import ResumeError

    overrides: dict[str, Any] = {}
    for text in args.overrides:
        if "=" not in text:
            raise CLIError(f"--set {text!r} is not of the form key=value.")
    for attr, key in FLAG_FIELDS.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides[key] = value
    try:
        config = load_config(args.config, list(args.overrides))
        if overrides:
            config = config.replace(overrides)
    except ConfigError as exc:
        raise CLIError(str(exc)) from None
    if args.quiet:
        config = config.replace({"run.progress": False})
    if args.print_config:
        print(json.dumps(config.to_dict(), indent=2))
        return 0

    if args.warm_cache is not None:
        try:
            return _warm(config, args.warm_cache, quiet=args.quiet)
        except (ConfigError, DatasetError) as exc:
            raise CLIError(str(exc)) from None

    from fpsm_core.training.fit import fit

    resume: bool | str = args.resume_from or bool(args.resume)
    try:
        result = fit(config, resume=resume, log=None if args.quiet else _print)
    except (ConfigError, DatasetError, ResumeError, CheckpointError) as exc:
        raise CLIError(str(exc)) from None
    if result.interrupted:
        return 130
    if result.checkpoint is not None and not args.quiet:
        score = (
            f" (val mAP {100 * result.best_score:.2f} at epoch {result.best_epoch})"
            if result.best_score is not None
            else ""
        )
        _print(f"checkpoint: {result.checkpoint}{score}")
    return 0


def _warm(config: Any, workers: int, quiet: bool) -> int:
    import time

    from fpsm_core.cli.main import CLIError
    from fpsm_core.data.dataset import warm_cache
    from fpsm_core.training.setup import load_run_data

    if not config.data.cache_dir:
        raise CLIError(
            "--warm-cache needs data.cache_dir in the config (or --set data.cache_dir=DIR)."
        )
    data = load_run_data(config)
    for records in (data.train, data.val):
        if records is None:
            continue
        t0 = time.perf_counter()
        done, errors = warm_cache(
            records,
            config.input.input_size,
            config.input.resize,
            config.data.cache_dir,
            num_workers=max(0, workers),
        )
        rate = done / max(time.perf_counter() - t0, 1e-9)
        if not quiet:
            _print(
                f"cached {done} images of {records.source} in {config.data.cache_dir} ({rate:.1f} img/s)"
            )
        if errors:
            _print(f"{len(errors)} images could not be read (first: {errors[0]}).")
    return 0


def _print(message: str) -> None:
    print(message, file=sys.stdout, flush=True)

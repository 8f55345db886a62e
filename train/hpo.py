"""Hyper-parameter search with Optuna: learning rate, weight decay, loss parameters, image size.

    python -m train.hpo train/configs/base.yaml --out runs/hpo --trials 40 --epochs 4 \\
        --storage sqlite:///runs/hpo/study.db --sizes 384 448 512

Each trial trains from the base config with sampled values (TPE sampler) and reports the validation
mAP after every epoch; the median pruner stops trials that trail the median of earlier trials at
the same epoch. With ``--storage`` the study lives in a database, so several machines can work on
it at once and an interrupted search continues where it stopped. Results: ``trials.csv`` (every
trial, its state, value and parameters), ``best.yaml`` (the base config with the best values, ready
for ``fpsm train``) and the best trial's checkpoint under ``OUT/trial_<n>``; the other trials'
weights are deleted as the search goes, to save disk.

Needs ``optuna`` (``pip install optuna``).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fpsm_core.errors import FpsmError
from fpsm_core.training.config import ConfigError, TrainConfig, dump_config, load_config


def suggest(trial: Any, base: TrainConfig, sizes: Sequence[int]) -> dict[str, Any]:
    """Sample one trial's overrides (``section.key -> value``)."""
    params: dict[str, Any] = {
        "optim.lr": trial.suggest_float("lr", 1e-5, 3e-3, log=True),
        "optim.weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-1, log=True),
    }
    if base.loss.type == "asl":
        params["loss.gamma_neg"] = trial.suggest_float("gamma_neg", 0.0, 6.0)
        params["loss.gamma_pos"] = trial.suggest_float("gamma_pos", 0.0, 2.0)
        params["loss.clip"] = trial.suggest_float("clip", 0.0, 0.1)
    if len(sizes) > 1:
        params["input.input_size"] = trial.suggest_categorical("input_size", list(sizes))
    elif sizes:
        params["input.input_size"] = int(sizes[0])
    return params


def make_objective(base: TrainConfig, out: Path, sizes: Sequence[int], log: bool) -> Any:
    import optuna

    from fpsm_core.training.fit import fit

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, base, sizes)
        run_dir = out / f"trial_{trial.number:04d}"
        config = base.replace({**params, "run.out_dir": str(run_dir), "run.name": "model"})

        def report(epoch: int, record: Mapping[str, Any]) -> None:
            value = record.get("val_mAP")
            if value is None or not math.isfinite(float(value)):
                return
            trial.report(float(value), step=epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"val mAP {100 * float(value):.2f} after epoch {epoch + 1}"
                )

        result = fit(config, epoch_callback=report, log=print if log else None)
        if result.best_score is None:
            raise ConfigError("HPO needs a validation set (data.val_csv or data.val_fraction > 0).")
        return float(result.best_score)

    return objective


def prune_weights(study: Any, out: Path) -> None:
    """Delete the weights of every finished trial but the best so far.

    Running trials (perhaps on another machine sharing the storage) are left alone.
    """
    try:
        best: int | None = study.best_trial.number
    except ValueError:  # no completed trial yet
        best = None
    for t in study.trials:
        if not t.state.is_finished() or t.number == best:
            continue
        folder = out / f"trial_{t.number:04d}"
        for f in folder.glob("*.safetensors"):
            f.unlink(missing_ok=True)


def write_results(study: Any, base: TrainConfig, out: Path, sizes: Sequence[int]) -> list[Path]:
    """``trials.csv`` and, when a trial finished, ``best.yaml``."""
    out.mkdir(parents=True, exist_ok=True)
    names = sorted({k for t in study.trials for k in t.params})
    table = out / "trials.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "state", "val_mAP", "epochs_reported", *names])
        for t in study.trials:
            writer.writerow(
                [
                    t.number,
                    t.state.name,
                    "" if t.value is None else f"{t.value:.6f}",
                    len(t.intermediate_values),
                    *(t.params.get(n, "") for n in names),
                ]
            )
    files = [table]
    finished = [t for t in study.trials if t.value is not None and t.state.name == "COMPLETE"]
    if finished:
        best = study.best_trial

        class _Fixed:
            """Replays the best trial's values through :func:`suggest`."""

            def suggest_float(self, name: str, *a: Any, **k: Any) -> Any:
                return best.params[name]

            def suggest_categorical(self, name: str, *a: Any, **k: Any) -> Any:
                return best.params[name]

        config = base.replace(suggest(_Fixed(), base, sizes))
        files.append(dump_config(config, out / "best.yaml"))
    return files


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(
        prog="python -m train.hpo", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("config", help="base YAML config")
    p.add_argument("--out", required=True, help="folder of the trials and results")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--epochs", type=int, help="epochs per trial (default: the config's)")
    p.add_argument(
        "--sizes", type=int, nargs="*", help="image sizes to try (default: the config's)"
    )
    p.add_argument("--storage", help="Optuna storage URL, e.g. sqlite:///runs/hpo/study.db")
    p.add_argument("--study-name", default="fpsm")
    p.add_argument("--seed", type=int, default=0, help="sampler seed")
    p.add_argument("--startup-trials", type=int, default=3, help="trials before pruning starts")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    try:
        import optuna
    except ImportError:
        print("train.hpo: optuna is not installed; pip install optuna.", file=sys.stderr)
        return 2
    out = Path(args.out)
    try:
        base = load_config(args.config, args.overrides)
        if args.epochs:
            base = base.replace({"optim.epochs": args.epochs})
        sizes = args.sizes or [base.input.input_size]
        out.mkdir(parents=True, exist_ok=True)
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=args.study_name,
            storage=args.storage,
            load_if_exists=True,
            direction="maximize",
            sampler=optuna.samplers.TPESampler(seed=args.seed),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=args.startup_trials, n_warmup_steps=0
            ),
        )

        def announce(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            value = "" if trial.value is None else f" val mAP {100 * trial.value:.2f}"
            print(f"trial {trial.number}: {trial.state.name}{value} {trial.params}", flush=True)
            prune_weights(study, out)

        study.optimize(
            make_objective(base, out, sizes, log=not args.quiet),
            n_trials=args.trials,
            timeout=args.timeout,
            callbacks=[announce],
            catch=(),
        )
        files = write_results(study, base, out, sizes)
    except FpsmError as exc:
        print(f"train.hpo: {exc}", file=sys.stderr)
        return 2
    if any(t.value is not None for t in study.trials):
        best = study.best_trial
        print(f"best: trial {best.number}, val mAP {100 * (best.value or 0.0):.2f}, {best.params}")
    print(f"wrote {', '.join(str(f) for f in files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

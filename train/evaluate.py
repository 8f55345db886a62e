"""Evaluate a checkpoint or ensemble: the paper's Table 1 (or Table 3 for binary tasks) and plots.

    python -m train.evaluate --model runs/fpsm/fpsm.json --out runs/fpsm/eval
    python -m train.evaluate --model resources/models/demo --csv cxr-lt/development.csv \\
        --image-root /data/mimic-cxr-jpg --out eval/dev --tune-thresholds

Without ``--csv`` or ``--config`` the model is scored on the validation split of the run that
trained it (its checkpoint records the config). Writes ``report.md`` (macro and per-class mAP, AUC,
F1, recall, precision in percent; classes without positives or negatives named and left out of the
macro), ``metrics.json``, ``predictions.csv`` (CXR-LT submission layout) and, when matplotlib is
installed, ``pr_curves.png`` and ``ap_vs_count.png`` (per-class AP against training positives, as
the paper's Fig. 3). For an ensemble every member is scored too. ``--tune-thresholds`` picks
F1-optimal per-class thresholds on this set and writes them into the checkpoint or ensemble.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.data.records import RecordSet, read_dataset
from fpsm_core.device import pick_device
from fpsm_core.errors import FpsmError
from fpsm_core.metrics import binary_report, f1_optimal_thresholds, multilabel_report
from fpsm_core.model.checkpoint import update_checkpoint_meta
from fpsm_core.model.ensemble import ENSEMBLE_FILE, Ensemble, load_model
from fpsm_core.training.config import config_from_dict, load_config
from fpsm_core.training.predict import Predictions, predict_ensemble
from fpsm_core.training.setup import json_safe, load_run_data

TABLE1 = (
    ("mAP", "mAP"),
    ("AUC", "AUC"),
    ("F1", "F1"),
    ("recall", "Recall"),
    ("precision", "Precision"),
)
TABLE3 = (("kappa", "CK score"), ("accuracy", "Acc"), ("AUPRC", "AUPRC"), ("AUC", "AUC"))


class EvaluationError(FpsmError):
    """An evaluation that cannot run (no data named, labels that do not match the model...)."""


@dataclass(frozen=True)
class EvalOutcome:
    """What an evaluation produced.

    Attributes:
        report: the model's (ensemble's) report, as :func:`multilabel_report` or
            :func:`binary_report` returns it.
        member_reports: each member's report by member name (one entry for a single checkpoint).
        files: the written files (report.md, metrics.json, predictions.csv, plots).
    """

    out_dir: Path
    task: str
    report: dict[str, Any]
    member_reports: dict[str, dict[str, Any]]
    thresholds: tuple[float, ...]
    files: tuple[Path, ...]
    notes: tuple[str, ...]


def records_for(
    ensemble: Ensemble,
    *,
    csv_path: str | None = None,
    fmt: str = "auto",
    image_root: str | None = None,
    config_path: str | None = None,
    split: str = "val",
) -> RecordSet:
    """The records to score: a CSV, a config's split, or the training run's own validation split."""
    if csv_path:
        return read_dataset(fmt, csv_path, image_root)
    if config_path:
        config = load_config(config_path)
    else:
        saved = ensemble.members[0].meta.provenance.get("config")
        if not isinstance(saved, Mapping):
            raise EvaluationError(
                f"{ensemble.path} does not record its training config; name --csv or --config."
            )
        config = config_from_dict(saved, source=f"{ensemble.path} (training config)")
    data = load_run_data(config)
    if split == "train":
        return data.train
    if data.val is None:
        raise EvaluationError("the training config has no validation set; name --csv.")
    return data.val


def evaluate(
    model: str | Path | Ensemble,
    records: RecordSet,
    out_dir: str | Path,
    *,
    task: str = "auto",
    tune_thresholds: bool = False,
    train_counts: Mapping[str, int] | None = None,
    device: str = "auto",
    batch_size: int = 32,
    num_workers: int = 0,
    cache_dir: str | None = None,
    amp: bool = True,
    plots: bool = True,
) -> EvalOutcome:
    """Score a model on ``records`` and write the report files into ``out_dir``."""
    ensemble = model if isinstance(model, Ensemble) else load_model(model)
    if tuple(ensemble.labels) != tuple(records.labels):
        raise EvaluationError(
            f"{records.source} has labels {list(records.labels)[:3]}... but the model predicts "
            f"{list(ensemble.labels)[:3]}...; they must be the same classes."
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    dev = pick_device(device)
    ens_pred, member_preds = predict_ensemble(
        ensemble,
        records,
        device=dev,
        batch_size=batch_size,
        num_workers=num_workers,
        cache_dir=cache_dir,
        amp=amp,
    )
    task = ("binary" if len(records.labels) == 1 else "multilabel") if task == "auto" else task
    notes: list[str] = []
    if ens_pred.errors:
        notes.append(
            f"{len(ens_pred.errors)} images could not be read and are left out "
            f"(first: {ens_pred.errors[0]})."
        )
    ok = ens_pred.valid
    known = records.known
    y = records.targets[ok][:, known]
    names = [lab for lab, k in zip(records.labels, known, strict=True) if k]
    thresholds = np.asarray(ensemble.thresholds, dtype=np.float64)
    if tune_thresholds:
        tuned = f1_optimal_thresholds(y, ens_pred.probabilities[ok][:, known])
        thresholds = thresholds.copy()
        thresholds[known] = tuned
        notes.append(_store_thresholds(ensemble, thresholds, records, int(ok.sum())))
    train_counts = dict(train_counts or _train_counts(ensemble))

    def score(pred: Predictions, th: np.ndarray) -> dict[str, Any]:
        p = pred.probabilities[ok][:, known]
        if task == "binary":
            return binary_report(y[:, 0], p[:, 0], float(th[known][0]))
        return multilabel_report(y, p, th[known], labels=names)

    report = score(ens_pred, thresholds)
    member_reports = {}
    for name, member, pred in zip(
        ensemble.member_names, ensemble.members, member_preds, strict=True
    ):
        th = np.asarray(member.meta.thresholds, dtype=np.float64)
        member_reports[name] = score(pred, th)
    if len(ensemble.members) == 1:
        member_reports = {ensemble.member_names[0]: report}
    files = [
        _write_markdown(
            out / "report.md",
            ensemble,
            records,
            task,
            report,
            member_reports,
            train_counts,
            tune_thresholds,
            int(ok.sum()),
            notes,
        ),
        _write_json(out / "metrics.json", ensemble, records, task, report, member_reports, notes),
        _write_predictions(out / "predictions.csv", records, ens_pred),
    ]
    if plots:
        made, note = _plots(
            out, task, y, ens_pred.probabilities[ok][:, known], names, report, train_counts
        )
        files.extend(made)
        if note:
            notes.append(note)
    files.extend(
        _calibration(out, ensemble, member_preds, ok, known, y, names, plots=plots, notes=notes)
    )
    return EvalOutcome(
        out_dir=out,
        task=task,
        report=report,
        member_reports=member_reports,
        thresholds=tuple(float(t) for t in thresholds),
        files=tuple(files),
        notes=tuple(notes),
    )


def _calibration(
    out: Path,
    ensemble: Ensemble,
    member_preds: Sequence[Predictions],
    ok: np.ndarray,
    known: np.ndarray,
    y: np.ndarray,
    names: Sequence[str],
    *,
    plots: bool,
    notes: list[str],
) -> list[Path]:
    """Expected calibration error and reliability, before and after the model's calibration.

    "Before" is the mean of the members' sigmoid outputs (what the metrics above score); "after"
    the mean of each member's Platt-calibrated probability, as ``fpsm infer`` reports them.
    Writes ``calibration.json``, a section of ``report.md`` and ``reliability.png``.
    """
    from fpsm_core.trust.calibration import calibration_report, logit
    from fpsm_core.trust.runtime import load_ensemble_trust

    trust = load_ensemble_trust(ensemble)
    raw = np.mean([pred.probabilities for pred in member_preds], axis=0)[ok][:, known]
    reports = {"before": calibration_report(raw, y, names)}
    if trust.calibrated:
        calibrated = np.mean(
            [
                trust.member_probabilities(i, logit(pred.probabilities))
                for i, pred in enumerate(member_preds)
            ],
            axis=0,
        )[ok][:, known]
        reports["after"] = calibration_report(calibrated, y, names)
    else:
        notes.append(f"the model is not calibrated ({trust.note or 'no calibration'}).")
    files = [out / "calibration.json"]
    files[0].write_text(
        json.dumps({k: r.to_json() for k, r in reports.items()}, indent=1), encoding="utf-8"
    )
    lines = [
        "",
        "## Calibration",
        "",
        "| | ECE | mean probability | prevalence |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, r in reports.items():
        lines.append(
            f"| {key} | {r.overall.ece:.3f} | {r.mean_probability:.3f} | {r.prevalence:.3f} |"
        )
    lines += ["", "| class | " + " | ".join(f"ECE {k}" for k in reports) + " |"]
    lines.append("| --- |" + " ---: |" * len(reports))
    for j, name in enumerate(names):
        lines.append(
            f"| {name} | "
            + " | ".join(f"{r.per_class[j].ece:.3f}" for r in reports.values())
            + " |"
        )
    with (out / "report.md").open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    if plots:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return files
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
        for key, r in reports.items():
            rel = r.overall
            keep = rel.counts > 0
            ax.plot(
                rel.mean_probability[keep],
                rel.fraction_positive[keep],
                marker="o",
                label=f"{key} (ECE {rel.ece:.3f})",
            )
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("fraction positive")
        ax.set_title("Reliability, all classes")
        ax.legend(fontsize=8)
        fig.tight_layout()
        files.append(out / "reliability.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
        ncol = min(6, len(names))
        nrow = int(np.ceil(len(names) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(2.4 * ncol, 2.3 * nrow), squeeze=False)
        for ax in axes.ravel():
            ax.set_visible(False)
        for j, (ax, name) in enumerate(zip(axes.ravel(), names, strict=False)):
            ax.set_visible(True)
            ax.plot([0, 1], [0, 1], color="grey", lw=0.6, ls="--")
            for r in reports.values():
                rel = r.per_class[j]
                keep = rel.counts > 0
                ax.plot(rel.mean_probability[keep], rel.fraction_positive[keep], marker=".", lw=1)
            eces = " / ".join(f"{r.per_class[j].ece:.2f}" for r in reports.values())
            ax.set_title(f"{name[:22]} (ECE {eces})", fontsize=7)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.tick_params(labelsize=5)
        fig.suptitle(f"Reliability per class ({' / '.join(reports)})", fontsize=9)
        fig.tight_layout()
        files.append(out / "reliability_per_class.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    return files


def _train_counts(ensemble: Ensemble) -> dict[str, int]:
    return dict(ensemble.describe().train_positives or {})


def _store_thresholds(
    ensemble: Ensemble, thresholds: np.ndarray, records: RecordSet, n: int
) -> str:
    where = f"F1-optimal on {records.source} ({n} images)"
    if len(ensemble.members) == 1 and ensemble.path.suffix == ".json":
        update_checkpoint_meta(
            ensemble.path, thresholds=thresholds.tolist(), provenance={"thresholds": where}
        )
        return f"wrote thresholds ({where}) into {ensemble.path}."
    path = ensemble.path / ENSEMBLE_FILE
    data = json.loads(path.read_text(encoding="utf-8"))
    data["thresholds"] = [float(t) for t in thresholds]
    data["thresholds_from"] = where
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return f"wrote thresholds ({where}) into {path}."


# -- report files ------------------------------------------------------------------------------


def pct(value: Any) -> str:
    """A fraction as the paper prints it (percent, two decimals); n/a when undefined."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if not np.isfinite(f) else f"{100 * f:.2f}"


def macro_table(rows: Sequence[tuple[str, Mapping[str, Any]]], task: str = "multilabel") -> str:
    """A markdown table of macro metrics, one row per (name, report)."""
    columns = TABLE3 if task == "binary" else TABLE1
    head = "| Model | " + " | ".join(title for _, title in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    body = []
    for name, report in rows:
        cells = [
            (
                f"{float(report[key]):.3f}"
                if key == "kappa" and np.isfinite(report[key])
                else pct(report[key])
            )
            for key, _ in columns
        ]
        body.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


def per_class_table(report: Mapping[str, Any], train_counts: Mapping[str, int]) -> str:
    lines = [
        "| Class | Train positives | Positives | AP | AUC | F1 | Recall | Precision | Threshold |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    excluded = set(report.get("excluded", ()))
    for name, m in report["per_class"].items():
        if name in excluded:  # no positives (or no negatives): no AP, AUC, recall to speak of
            lines.append(
                f"| {name} | {train_counts.get(name, '')} | {m['positives']} | n/a | n/a | n/a | "
                f"n/a | n/a | {m['threshold']:.3f} |"
            )
            continue
        lines.append(
            f"| {name} | {train_counts.get(name, '')} | {m['positives']} | {pct(m['AP'])} | "
            f"{pct(m['AUC'])} | {pct(m['F1'])} | {pct(m['recall'])} | {pct(m['precision'])} | "
            f"{m['threshold']:.3f} |"
        )
    return "\n".join(lines)


def _write_markdown(
    path: Path,
    ensemble: Ensemble,
    records: RecordSet,
    task: str,
    report: Mapping[str, Any],
    member_reports: Mapping[str, Mapping[str, Any]],
    train_counts: Mapping[str, int],
    tuned: bool,
    n: int,
    notes: Sequence[str],
) -> Path:
    rows: list[tuple[str, Mapping[str, Any]]] = []
    if len(ensemble.members) > 1:
        rows.append((f"{ensemble.name} (mean ensemble)", report))
    rows.extend(member_reports.items())
    lines = [
        f"# Evaluation of {ensemble.name}",
        "",
        f"Data: `{records.source}`, {n} images. Thresholds: "
        + ("F1-optimal on this set (optimistic on it)." if tuned else "from the model."),
        "",
    ]
    if ensemble.untrained:
        lines += ["**The model is UNTRAINED: these numbers mean nothing.**", ""]
    lines += [macro_table(rows, task), ""]
    if task == "multilabel":
        lines += [
            "Macro averages over classes with both positives and negatives in this set.",
            "",
            f"## Per class ({ensemble.name})",
            "",
            per_class_table(report, train_counts),
            "",
        ]
        if report["excluded"]:
            lines += [
                "Left out of the macro averages (no positives or no negatives here): "
                + ", ".join(report["excluded"])
                + ".",
                "",
            ]
        unknown = [lab for lab, k in zip(records.labels, records.known, strict=True) if not k]
        if unknown:
            lines += [f"Not annotated by this data set (not scored): {', '.join(unknown)}.", ""]
    lines += [f"- {note}" for note in notes]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    return path


def _write_json(
    path: Path,
    ensemble: Ensemble,
    records: RecordSet,
    task: str,
    report: Mapping[str, Any],
    member_reports: Mapping[str, Mapping[str, Any]],
    notes: Sequence[str],
) -> Path:
    data = {
        "model": ensemble.identity(),
        "data": {"source": records.source, "images": len(records)},
        "task": task,
        "report": report,
        "members": member_reports,
        "notes": list(notes),
    }
    path.write_text(json.dumps(json_safe(data), indent=2) + "\n", encoding="utf-8")
    return path


def _write_predictions(path: Path, records: RecordSet, pred: Predictions) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["dicom_id", *records.labels])
        for i, image_id in enumerate(records.image_ids):
            if pred.valid[i]:
                writer.writerow([image_id, *(f"{p:.6f}" for p in pred.probabilities[i])])
    return path


# -- plots -------------------------------------------------------------------------------------


def _plots(
    out: Path,
    task: str,
    y: np.ndarray,
    p: np.ndarray,
    names: Sequence[str],
    report: Mapping[str, Any],
    train_counts: Mapping[str, int],
) -> tuple[list[Path], str | None]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "matplotlib is not installed, so no plots were drawn."
    from fpsm_core.metrics import precision_recall_curve

    files = []
    cols = [i for i in range(y.shape[1]) if 0 < y[:, i].sum() < y.shape[0]]
    if cols:
        ncol = min(5, len(cols))
        nrow = int(np.ceil(len(cols) / ncol))
        fig, axes = plt.subplots(nrow, ncol, figsize=(3 * ncol, 2.6 * nrow), squeeze=False)
        for ax in axes.ravel():
            ax.set_visible(False)
        for ax, i in zip(axes.ravel(), cols, strict=False):
            precision, recall, _ = precision_recall_curve(y[:, i], p[:, i])
            ax.set_visible(True)
            ax.step(recall, precision, where="post", lw=1.2)
            ax.axhline(y[:, i].mean(), color="grey", lw=0.6, ls="--")
            ap = report["per_class"][names[i]]["AP"] if task == "multilabel" else report["AUPRC"]
            ax.set_title(f"{names[i]} (AP {pct(ap)})", fontsize=8)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1.02)
            ax.tick_params(labelsize=6)
        fig.supxlabel("recall")
        fig.supylabel("precision")
        fig.tight_layout()
        files.append(out / "pr_curves.png")
        fig.savefig(files[-1], dpi=110)
        plt.close(fig)
    if task == "multilabel" and train_counts:
        pts = [
            (train_counts[n], report["per_class"][n]["AP"], report["per_class"][n]["AUC"], n)
            for n in names
            if n in train_counts
            and np.isfinite(report["per_class"][n]["AP"])
            and train_counts[n] > 0
        ]
        if pts:
            fig, ax = plt.subplots(figsize=(8, 5))
            counts = [q[0] for q in pts]
            ax.scatter(counts, [100 * q[1] for q in pts], label="AP", color="tab:blue")
            ax.scatter(
                counts, [100 * q[2] for q in pts], label="AUC", color="tab:orange", marker="s"
            )
            for count, ap, _, name in pts:
                ax.annotate(
                    name, (count, 100 * ap), fontsize=6, xytext=(3, 3), textcoords="offset points"
                )
            ax.set_xscale("log")
            ax.set_xlabel("training positives")
            ax.set_ylabel("%")
            ax.set_title("Per-class AP and AUC against training count")
            ax.legend()
            fig.tight_layout()
            files.append(out / "ap_vs_count.png")
            fig.savefig(files[-1], dpi=110)
            plt.close(fig)
    return files, None


# -- command line ------------------------------------------------------------------------------


def add_data_options(
    p: argparse.ArgumentParser, *, csv_help: str, config_help: str | None = None
) -> None:
    """--csv, --format, --image-root (and --config when ``config_help``): the records to score."""
    p.add_argument("--csv", required=config_help is None, help=csv_help)
    p.add_argument("--format", default="auto", help="auto, cxrlt, dadam, nih, mura, generic")
    p.add_argument("--image-root", help="folder the CSV's paths are relative to")
    if config_help is not None:
        p.add_argument("--config", help=config_help)


def add_device_options(p: argparse.ArgumentParser, *, workers: bool = True) -> None:
    """--device, --batch-size (and --workers): where and how predictions run."""
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--batch-size", type=int, default=32)
    if workers:
        p.add_argument("--workers", type=int, default=2, help="image-loading processes")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m train.evaluate", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--model", required=True, help="checkpoint (.json) or ensemble directory")
    p.add_argument("--out", required=True, help="folder for report.md, metrics.json, plots")
    add_data_options(
        p,
        csv_help="label table to score on (default: the run's validation split)",
        config_help="score on this training config's validation split",
    )
    p.add_argument("--split", default="val", choices=("val", "train"), help="with --config")
    p.add_argument("--task", default="auto", choices=("auto", "multilabel", "binary"))
    p.add_argument(
        "--tune-thresholds",
        action="store_true",
        help="choose F1-optimal thresholds here and save them into the model",
    )
    add_device_options(p)
    p.add_argument("--cache-dir", help="cached resized copies")
    p.add_argument("--no-plots", action="store_true")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    try:
        ensemble = load_model(args.model)
        records = records_for(
            ensemble,
            csv_path=args.csv,
            fmt=args.format,
            image_root=args.image_root,
            config_path=args.config,
            split=args.split,
        )
        outcome = evaluate(
            ensemble,
            records,
            args.out,
            task=args.task,
            tune_thresholds=args.tune_thresholds,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.workers,
            cache_dir=args.cache_dir,
            plots=not args.no_plots,
        )
    except FpsmError as exc:
        print(f"train.evaluate: {exc}", file=sys.stderr)
        return 2
    print(outcome.files[0].read_text(encoding="utf-8"))
    print(f"wrote {', '.join(str(f) for f in outcome.files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

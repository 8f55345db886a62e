"""Compare models side by side on one held-out set, with paired bootstrap confidence intervals.

    python -m train.compare --csv data/sim_test/labels.csv --boxes data/sim_test/boxes.csv \\
        --model l432_sum=runs/demo_fpsm/fpsm.json --model l4_sum=runs/ablate/l4_sum_enc0/l4_sum_enc0.json \\
        --ref l432_sum --out runs/compare

Every model (a checkpoint ``.json`` or an ensemble folder) predicts the same images once; its
probabilities are kept in ``OUT/predictions/<name>.npz`` and reused while the weights and the image
list are unchanged. The report (``compare.md``, ``compare.json``) gives, per model, macro mAP and AUC
with 95 % bootstrap intervals, the difference from the reference model with a *paired* interval
(the same resampled images for both, so the spread of the test set itself cancels out) and the share
of resamples in which the model was ahead; then the same for groups of classes — by lesion size
(the median longer box side of the class in ``--boxes``, in the buckets of ``train.cam_pointing``;
classes without boxes are "diffuse") and by training frequency (head / medium / tail thirds of the
reference model's recorded training positives); then per-class AP and AUC.

Resampling the test images says how much the ranking could move on another test set of the same
size, not how much another training seed would move it. For that, train each
variant more than once and repeat its name: ``--model l4_sum=seed0.json --model l4_sum=seed1.json``
makes ``l4_sum`` the mean of its runs' metrics. Each resample then also draws the runs with
replacement (a two-level bootstrap over seeds and images; Δ stays paired on the images), so the
intervals of such a model include the seed-to-seed spread, and the report lists each run's own macro
mAP and AUC beside the mean (``--keep-runs`` holds the runs fixed, leaving test noise only). With
few runs this still understates the seed spread (a bootstrap over K runs sees (K - 1) / K of their
variance): three runs are a floor, not a luxury.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.data.records import RecordSet, read_dataset
from fpsm_core.device import pick_device
from fpsm_core.errors import FpsmError
from fpsm_core.metrics import average_precision, roc_auc
from fpsm_core.model.checkpoint import CheckpointError
from fpsm_core.model.ensemble import Ensemble, load_model
from fpsm_core.training.predict import predict_ensemble
from train.cam_pointing import BUCKETS
from train.evaluate import add_data_options, add_device_options

CI = (2.5, 97.5)


class CompareError(FpsmError):
    """A comparison that cannot run (a bad --model, labels that differ, an unknown --ref...)."""


@dataclass(frozen=True)
class Scored:
    """One model's probabilities on the shared images."""

    name: str
    source: str
    probabilities: np.ndarray  # (N, C) over the known classes
    train_positives: Mapping[str, int]


def _fingerprint(ensemble: Ensemble, records: RecordSet) -> str:
    h = hashlib.sha256()
    for member in ensemble.members:
        h.update(member.meta.weights_sha256.encode())
        h.update(
            json.dumps(asdict(member.meta.preprocessing), sort_keys=True, default=str).encode()
        )
    h.update("\n".join(records.paths).encode())
    return h.hexdigest()


def predict_cached(
    name: str,
    model: str,
    records: RecordSet,
    cache: Path,
    *,
    device: str = "auto",
    batch_size: int = 32,
    cache_dir: str | None = None,
    run: int = 1,
) -> tuple[np.ndarray, np.ndarray, Mapping[str, int]]:
    """(probabilities (N, C), valid (N,), training positives) of ``model``, from ``cache`` if fresh.

    ``run`` numbers the checkpoints given under one ``name`` (seeds); each keeps its own file.
    """
    try:
        ensemble = load_model(model)
    except (CheckpointError, OSError, ValueError) as exc:
        raise CompareError(f"--model {name}={model}: {exc}") from exc
    if tuple(ensemble.labels) != tuple(records.labels):
        raise CompareError(
            f"--model {name}={model} predicts other classes than {records.source} annotates."
        )
    positives = dict(ensemble.describe().train_positives or {})
    key = _fingerprint(ensemble, records)
    file = cache / (f"{name}.npz" if run == 1 else f"{name}.run{run}.npz")
    if file.is_file():
        with np.load(file, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) == key:
                return saved["probabilities"], saved["valid"], positives
    pred, _ = predict_ensemble(
        ensemble, records, device=pick_device(device), batch_size=batch_size, cache_dir=cache_dir
    )
    cache.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp.npz")
    np.savez(tmp, probabilities=pred.probabilities, valid=pred.valid, fingerprint=np.array(key))
    os.replace(tmp, file)
    for error in pred.errors[:3]:
        print(f"{name}: {error}", file=sys.stderr)
    return pred.probabilities, pred.valid, positives


def size_groups(boxes_csv: Path, records: RecordSet, names: Sequence[str]) -> dict[str, str]:
    """Class -> lesion-size bucket from the median longer box side (fraction of the image)."""
    shapes: dict[str, tuple[int, int]] = {}
    by_id = dict(zip(records.image_ids, records.paths, strict=True))
    fractions: dict[str, list[float]] = defaultdict(list)
    with boxes_csv.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if not row.get("x_min") or row["image_id"] not in by_id:
                continue
            path = by_id[row["image_id"]]
            if path not in shapes:
                shapes[path] = _image_shape(path)
            h, w = shapes[path]
            x0, y0, x1, y1 = (float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
            fractions[row["class_name"]].append(max((x1 - x0) / w, (y1 - y0) / h))
    groups = {}
    for name in names:
        if not fractions.get(name):
            groups[name] = "diffuse"
            continue
        median = float(np.median(fractions[name]))
        groups[name] = next(b for b, lo, hi in BUCKETS if lo <= median < hi)
    return groups


def _image_shape(path: str) -> tuple[int, int]:
    from fpsm_core.io import load_image

    image = load_image(path)
    return int(image.pixels.shape[0]), int(image.pixels.shape[1])


def frequency_groups(positives: Mapping[str, int], names: Sequence[str]) -> dict[str, str]:
    """Class -> head / medium / tail, thirds of the classes ranked by training positives."""
    known = [n for n in names if n in positives]
    if not known:
        return {}
    order = sorted(known, key=lambda n: -positives[n])
    third = len(order) / 3
    return {n: ("head", "medium", "tail")[min(2, int(i / third))] for i, n in enumerate(order)}


def _dense_ranks(scores: np.ndarray) -> np.ndarray:
    """Per column, 0, 1, 2... in score order, equal scores sharing a rank."""
    ranks = np.empty(scores.shape, dtype=np.float64)
    for i in range(scores.shape[1]):
        ranks[:, i] = np.unique(scores[:, i], return_inverse=True)[1]
    return ranks


def _class_metrics(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and AUC, NaN where a class lacks positives or negatives."""
    c = y.shape[1]
    ap = np.full(c, np.nan)
    auc = np.full(c, np.nan)
    for i in range(c):
        positives = y[:, i].sum()
        if 0 < positives < len(y):
            ap[i] = average_precision(y[:, i], p[:, i])
            auc[i] = roc_auc(y[:, i], p[:, i])
    return ap, auc


def _mean_of_drawn_runs(
    values: np.ndarray, rng: np.random.Generator, *, resample: bool = True
) -> np.ndarray:
    """(B, K, ...) metrics of K runs on B resamples -> (B, ...) mean of K runs drawn per resample.

    With ``resample=False`` the K runs are averaged as they are (test-set noise only).
    """
    b, k = values.shape[:2]
    if k == 1 or not resample:
        return values.mean(axis=1)
    drawn = values[np.arange(b)[:, None], rng.integers(0, k, (b, k))]
    return drawn.mean(axis=1)


def compare(
    scored: Sequence[Scored],
    y: np.ndarray,
    names: Sequence[str],
    ref: str,
    groups: Mapping[str, Mapping[str, str]],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    resample_runs: bool = True,
) -> dict[str, Any]:
    """Point estimates, bootstrap intervals and paired differences from ``ref``.

    Args:
        scored: the models, all on the same (N, C) images and classes as ``y``.
        groups: grouping name -> (class -> group), e.g. ``{"size": {...}, "frequency": {...}}``.
        resample_runs: draw the runs of a model trained several times with replacement on every
            resample (default); ``False`` keeps them fixed, so the intervals hold test noise only.

    Returns:
        ``{"models", "ref", "n_images", "n_boot", "subsets": {subset: {model: stats}},
        "per_class": {model: {class: {"AP", "AUC"}}}, "positives": {class: n}}`` where a subset is
        ``"all"`` or ``"<grouping>:<group>"`` and stats hold ``mAP, AUC`` with ``*_ci`` and, for
        models other than ``ref``, ``d_mAP, d_AUC`` with ``*_ci`` and ``*_ahead`` (share of resamples
        with a higher value than ``ref``). Entries of ``scored`` that share a name are runs of one
        model (seeds): it is scored by the mean of their metrics, its runs are resampled along with
        the images (so its intervals include seed-to-seed spread), and its stats add ``runs`` and
        ``mAP_runs, AUC_runs`` (each run's own value).
    """
    runs: dict[str, list[int]] = defaultdict(list)
    for i, m in enumerate(scored):
        runs[m.name].append(i)
    if ref not in runs:
        raise CompareError(f"--ref {ref!r} is not one of the models ({', '.join(runs)}).")
    subsets: dict[str, np.ndarray] = {"all": np.ones(len(names), dtype=bool)}
    for grouping, mapping in groups.items():
        for group in sorted(set(mapping.values())):
            subsets[f"{grouping}:{group}"] = np.array([mapping.get(n) == group for n in names])
    point = [_class_metrics(y, m.probabilities) for m in scored]
    # AP and AUC depend on the order of the scores only. A resample repeats images, and the copies
    # of one image would tie with each other, which lifts AP; ranks with a random tie-break below
    # one rank step make the copies behave like distinct images of equal score.
    ranked = [_dense_ranks(m.probabilities) for m in scored]
    rng = np.random.default_rng(seed)
    n = len(y)
    boot = np.full((n_boot, len(scored), 2, len(names)), np.nan)
    for b in range(n_boot):
        rows = rng.integers(0, n, n)
        yb = y[rows]
        jitter = rng.random((n, len(names))) * 0.5
        for j in range(len(scored)):
            boot[b, j, 0], boot[b, j, 1] = _class_metrics(yb, ranked[j][rows] + jitter)

    # A variant trained several times is the mean of its runs' per-class metrics (the macro of a
    # mean of per-class values is the mean of the runs' macros: every run sees the same classes).
    # On each resample its runs are drawn with replacement as well (a two-level bootstrap), so its
    # intervals hold the spread between training seeds and not only that of the test images.
    variants = list(runs)
    run_point = point
    point = [
        tuple(np.mean([run_point[i][k] for i in runs[v]], axis=0) for k in (0, 1)) for v in variants
    ]
    boot = np.stack(
        [_mean_of_drawn_runs(boot[:, runs[v]], rng, resample=resample_runs) for v in variants],
        axis=1,
    )

    def macro(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
        picked = values[..., mask]
        with np.errstate(all="ignore"):
            return (
                np.nanmean(picked, axis=-1)
                if picked.shape[-1]
                else np.full(picked.shape[:-1], np.nan)
            )

    out: dict[str, Any] = {}
    r = variants.index(ref)
    for subset, mask in subsets.items():
        rows_out: dict[str, Any] = {}
        for j, variant in enumerate(variants):
            stats: dict[str, Any] = {"classes": int(mask.sum()), "runs": len(runs[variant])}
            for k, metric in enumerate(("mAP", "AUC")):
                est = float(macro(point[j][k], mask))
                dist = macro(boot[:, j, k], mask)
                stats[metric] = est
                stats[f"{metric}_ci"] = [float(v) for v in np.nanpercentile(dist, CI)]
                if len(runs[variant]) > 1:
                    stats[f"{metric}_runs"] = [
                        float(macro(run_point[i][k], mask)) for i in runs[variant]
                    ]
                if j != r:
                    diff = dist - macro(boot[:, r, k], mask)
                    stats[f"d_{metric}"] = est - float(macro(point[r][k], mask))
                    stats[f"d_{metric}_ci"] = [float(v) for v in np.nanpercentile(diff, CI)]
                    stats[f"d_{metric}_ahead"] = float(np.mean(diff[np.isfinite(diff)] > 0))
            rows_out[variant] = stats
        out[subset] = rows_out
    per_class = {
        variant: {
            name: {"AP": float(point[j][0][i]), "AUC": float(point[j][1][i])}
            for i, name in enumerate(names)
        }
        for j, variant in enumerate(variants)
    }
    return {
        "models": {v: ", ".join(scored[i].source for i in runs[v]) for v in variants},
        "runs": {v: [scored[i].source for i in runs[v]] for v in variants},
        "ref": ref,
        "n_images": int(n),
        "n_boot": int(n_boot),
        "runs_resampled": bool(resample_runs),
        "subsets": out,
        "groups": {g: dict(v) for g, v in groups.items()},
        "per_class": per_class,
        "positives": {name: int(y[:, i].sum()) for i, name in enumerate(names)},
        "train_positives": dict(scored[runs[ref][0]].train_positives),
    }


def _p(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:.2f}"


def _ci(v: Sequence[float]) -> str:
    return f"[{_p(v[0])}, {_p(v[1])}]"


def _d(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{100 * v:+.2f}"


def markdown(report: Mapping[str, Any], title: str = "Model comparison") -> str:
    ref = report["ref"]
    lines = [
        f"# {title}",
        "",
        f"{report['n_images']} test images; intervals are 95 % percentile intervals over "
        f"{report['n_boot']} bootstrap resamples of the images; Δ is the difference from `{ref}` on "
        "the same resample, *ahead* the share of resamples in which the model beat it. Values in %. "
        "Macro AP over resamples runs a little above the point estimate (AP is biased on small "
        "resamples of rare classes), so compare models by their paired Δ intervals.",
    ]
    sources = report.get("runs") or {n: [src] for n, src in report["models"].items()}
    several = any(len(v) > 1 for v in sources.values())
    if several:
        how = (
            ", and every resample also draws its runs with replacement, so its intervals hold the "
            "spread between training seeds as well as that of the test images (with K runs, "
            "(K - 1) / K of it)."
            if report.get("runs_resampled", True)
            else ". Its runs were kept fixed (`--keep-runs`): the intervals hold the spread of the "
            "test images only, not that between training seeds."
        )
        lines += [
            "",
            "A model trained more than once (one row per run below) is scored by the mean of its "
            f"runs' metrics{how} *runs* gives each run's own value, in the order listed.",
        ]
    lines += ["", "| model | source |", "| --- | --- |"]
    lines += [f"| {name} | `{src}` |" for name, srcs in sources.items() for src in srcs]
    for subset, rows in report["subsets"].items():
        first = next(iter(rows.values()))
        head = "All classes" if subset == "all" else subset.replace(":", ": ")
        extra = " runs mAP | runs AUC |" if several else ""
        lines += [
            "",
            f"## {head} ({first['classes']} classes)",
            "",
            "| model | mAP | 95 % CI | Δ mAP | Δ 95 % CI | ahead | AUC | 95 % CI | Δ AUC | Δ 95 % CI | ahead |"
            + extra,
            "| --- | ---: | --- | ---: | --- | ---: | ---: | --- | ---: | --- | ---: |"
            + " --- | --- |" * several,
        ]
        for name, s in rows.items():
            if name == ref:
                cells = [
                    f"**{name}** (ref)",
                    _p(s["mAP"]),
                    _ci(s["mAP_ci"]),
                    "",
                    "",
                    "",
                    _p(s["AUC"]),
                    _ci(s["AUC_ci"]),
                    "",
                    "",
                    "",
                ]
            else:
                cells = [
                    name,
                    _p(s["mAP"]),
                    _ci(s["mAP_ci"]),
                    _d(s["d_mAP"]),
                    _ci(s["d_mAP_ci"]),
                    f"{100 * s['d_mAP_ahead']:.0f} %",
                    _p(s["AUC"]),
                    _ci(s["AUC_ci"]),
                    _d(s["d_AUC"]),
                    _ci(s["d_AUC_ci"]),
                    f"{100 * s['d_AUC_ahead']:.0f} %",
                ]
            if several:
                cells += [
                    " / ".join(_p(v) for v in s.get(f"{m}_runs", [s[m]])) for m in ("mAP", "AUC")
                ]
            lines.append("| " + " | ".join(cells) + " |")
    models = list(report["models"])
    groups = report.get("groups", {})
    for metric in ("AP", "AUC"):
        lines += [
            "",
            f"## Per-class {metric}",
            "",
            "| class | "
            + " | ".join(["group"] * bool(groups) + ["train +", "test +", *models])
            + " |",
            "| --- | " + " | ".join(["---"] * bool(groups) + ["---:"] * (2 + len(models))) + " |",
        ]
        for cls, npos in report["positives"].items():
            tags = "/".join(g[cls] for g in groups.values() if cls in g)
            values = [report["per_class"][m][cls][metric] for m in models]
            finite = [v for v in values if np.isfinite(v)]
            best = max(finite) if finite else None
            cells = [
                (f"**{_p(v)}**" if best is not None and v == best and len(models) > 1 else _p(v))
                for v in values
            ]
            train = report["train_positives"].get(cls, "")
            lines.append(
                "| "
                + " | ".join([cls, *([tags] if groups else []), str(train), str(npos), *cells])
                + " |"
            )
    return "\n".join(lines) + "\n"


def _model_arg(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"--model wants NAME=PATH, not {text!r}")
    return name, path


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(
        prog="python -m train.compare", description=__doc__.splitlines()[0] if __doc__ else None
    )
    add_data_options(p, csv_help="the held-out labels CSV")
    p.add_argument(
        "--boxes", type=Path, help="VinDr-layout boxes CSV: group classes by lesion size"
    )
    p.add_argument(
        "--model",
        type=_model_arg,
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a checkpoint .json or ensemble folder; repeat a NAME for several runs (seeds) of it",
    )
    p.add_argument("--ref", help="the model the others are compared with (default: the first)")
    p.add_argument(
        "--out", type=Path, required=True, help="folder for compare.md/json and predictions"
    )
    p.add_argument("--title", default="Model comparison")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--keep-runs",
        action="store_true",
        help="do not resample the runs of a model given several times (test-set noise only)",
    )
    add_device_options(p, workers=False)
    p.add_argument("--cache-dir", help="resized-image cache of the training runs")
    p.add_argument(
        "--predictions",
        type=Path,
        help="folder of the kept probabilities (default OUT/predictions); share it across reports",
    )
    args = p.parse_args(argv)
    seen: set[str] = set()
    for _, path in args.model:
        if path in seen:
            print(f"train.compare: {path} is given twice to --model.", file=sys.stderr)
            return 2
        seen.add(path)
    run_of: dict[str, int] = defaultdict(int)
    try:
        records = read_dataset(args.format, args.csv, args.image_root)
        scored = []
        valid = np.ones(len(records.paths), dtype=bool)
        raw = []
        for name, path in args.model:
            run_of[name] += 1
            prob, ok, positives = predict_cached(
                name,
                path,
                records,
                args.predictions or args.out / "predictions",
                device=args.device,
                batch_size=args.batch_size,
                cache_dir=args.cache_dir,
                run=run_of[name],
            )
            valid &= ok
            raw.append((name, path, prob, positives))
        known = records.known
        names = [lab for lab, k in zip(records.labels, known, strict=True) if k]
        y = records.targets[valid][:, known] >= 0.5
        for name, path, prob, positives in raw:
            scored.append(Scored(name, path, prob[valid][:, known], positives))
        ref = args.ref or scored[0].name
        groups: dict[str, dict[str, str]] = {}
        if args.boxes:
            groups["size"] = size_groups(args.boxes, records, names)
        ref_positives = next((s.train_positives for s in scored if s.name == ref), {})
        if ref_positives:
            groups["frequency"] = frequency_groups(ref_positives, names)
        report = compare(
            scored,
            y.astype(np.int64),
            names,
            ref,
            groups,
            n_boot=args.bootstrap,
            seed=args.seed,
            resample_runs=not args.keep_runs,
        )
    except FpsmError as exc:
        print(f"train.compare: {exc}", file=sys.stderr)
        return 2
    if not valid.all():
        print(f"train.compare: {int((~valid).sum())} images unreadable by some model, left out.")
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(report, args.title)
    (args.out / "compare.md").write_text(md, encoding="utf-8")
    (args.out / "compare.json").write_text(
        json.dumps(report, indent=1, allow_nan=True) + "\n", encoding="utf-8"
    )
    print(md)
    print(f"wrote {args.out / 'compare.md'} and {args.out / 'compare.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The paper's 16-run ablation from one base config, and its comparison table (Table 1).

    python -m train.ablate train/configs/base.yaml --out runs/ablation
    python -m train.ablate train/configs/base.yaml --out runs/ablation \\
        --launcher "torchrun --nproc_per_node 8"          # each run on all GPUs
    python -m train.ablate train/configs/base.yaml --out runs/ablation --table-only

The grid crosses the pyramid level sets 4 / 4+2 / 4+3+2 / 4+3+2+1 with sum or concat aggregation and
the synthetic-image encoding off or on; everything else comes from the base config (overridable
with ``--set``). Runs go to ``OUT/<name>`` (e.g. ``l432_sum_enc0``); a finished run is skipped and an
interrupted one resumed, so the command can simply be started again. ``ablation.md`` prints four
sub-tables as the paper does ((a) sum without encoding, (b) sum with, (c) concat with, (d) concat
without), with F1, mAP, recall, precision and AUC in percent; ``ablation.csv`` has all rows.
The synthetic encoding only matters when the training data has synthetic images (format
``dadam``); on real images alone it learns a constant offset.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpsm_core.errors import FpsmError
from fpsm_core.model.checkpoint import read_checkpoint_meta
from fpsm_core.training.config import ConfigError, TrainConfig, dump_config, load_config
from fpsm_core.training.state import STATE_JSON

LEVEL_SETS: tuple[tuple[int, ...], ...] = ((4,), (4, 2), (4, 3, 2), (4, 3, 2, 1))
AGGREGATIONS = ("sum", "concat")
ENCODINGS = (False, True)
# the paper's sub-table order and captions
PANELS = (
    ("sum", False, "(a) use_binary_enc=0, use_concatenate=0"),
    ("sum", True, "(b) use_binary_enc=1, use_concatenate=0"),
    ("concat", True, "(c) use_binary_enc=1, use_concatenate=1"),
    ("concat", False, "(d) use_binary_enc=0, use_concatenate=1"),
)
METRICS = (
    ("F1", "F1"),
    ("mAP", "mAP"),
    ("recall", "Recall"),
    ("precision", "Precision"),
    ("AUC", "AUC"),
)


@dataclass(frozen=True)
class Variant:
    """One cell of the grid."""

    levels: tuple[int, ...]
    aggregation: str
    synthetic: bool

    @property
    def name(self) -> str:
        return f"l{''.join(map(str, self.levels))}_{self.aggregation}_enc{int(self.synthetic)}"

    @property
    def pyramid(self) -> str:
        ordinal = {1: "1st", 2: "2nd", 3: "3rd", 4: "4th"}
        return " + ".join(ordinal[level] for level in self.levels)


@dataclass(frozen=True)
class AblationRow:
    variant: Variant
    metrics: Mapping[str, float] | None
    checkpoint: Path | None


def grid() -> list[Variant]:
    """The 16 variants, in the paper's order (panel by panel, level sets within)."""
    return [Variant(ls, agg, enc) for agg, enc, _ in PANELS for ls in LEVEL_SETS]


def variant_config(base: TrainConfig, variant: Variant, out: Path) -> TrainConfig:
    return base.replace(
        {
            "model.levels": list(variant.levels),
            "model.aggregation": variant.aggregation,
            "model.synthetic_embedding": variant.synthetic,
            "run.out_dir": str(out / variant.name),
            "run.name": variant.name,
        }
    )


def run_state(config: TrainConfig) -> str:
    """``done``, ``partial`` (a resume state exists) or ``new``."""
    folder = Path(config.run.out_dir)
    state = folder / STATE_JSON
    if not state.is_file():
        return "new"
    epoch = json.loads(state.read_text(encoding="utf-8")).get("epoch", 0)
    return "done" if epoch >= config.optim.epochs else "partial"


def run_variant(config: TrainConfig, launcher: str | None) -> None:
    """Train one variant in this process, or through ``launcher`` (e.g. torchrun)."""
    resume = run_state(config) == "partial"
    if launcher is None:
        from fpsm_core.training.fit import fit

        fit(config, resume=resume)
        return
    path = dump_config(config, Path(config.run.out_dir) / "ablation_config.yaml")
    cmd = [*shlex.split(launcher), "-m", "train.fit", str(path), *(["--resume"] if resume else [])]
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def collect(base: TrainConfig, out: Path, variants: Sequence[Variant]) -> list[AblationRow]:
    """Each variant's best validation metrics, read from its checkpoint."""
    rows = []
    for variant in variants:
        config = variant_config(base, variant, out)
        ckpt = Path(config.run.out_dir) / f"{config.run.name}.json"
        metrics = None
        if ckpt.is_file():
            prov = read_checkpoint_meta(ckpt).provenance
            val = prov.get("val_metrics")
            metrics = dict(val) if isinstance(val, Mapping) else None
        rows.append(AblationRow(variant, metrics, ckpt if ckpt.is_file() else None))
    return rows


def _pct(value: Any) -> str:
    try:
        return f"{100 * float(value):.2f}"
    except (TypeError, ValueError):
        return "-"


def ablation_markdown(rows: Sequence[AblationRow]) -> str:
    """Four sub-tables as in the paper's Table 1; the best mAP overall in bold."""
    scored = [r for r in rows if r.metrics and r.metrics.get("mAP") is not None]
    best = max(scored, key=lambda r: float(r.metrics["mAP"])) if scored else None  # type: ignore[index]
    lines = ["# FPSM ablation (validation)", ""]
    for agg, enc, caption in PANELS:
        panel = [r for r in rows if r.variant.aggregation == agg and r.variant.synthetic == enc]
        if not panel:
            continue
        lines += [
            f"## {caption}",
            "",
            "| Used feature pyramid | " + " | ".join(t for _, t in METRICS) + " |",
        ]
        lines.append("|---|" + "---|" * len(METRICS))
        for r in panel:
            cells = [_pct(r.metrics.get(k)) if r.metrics else "-" for k, _ in METRICS]
            if r is best:
                cells = [f"**{c}**" for c in cells]
            lines.append(f"| {r.variant.pyramid} | " + " | ".join(cells) + " |")
        lines.append("")
    if best is not None:
        lines.append(f"Best mAP: {best.variant.name} ({_pct(best.metrics['mAP'])}).")  # type: ignore[index]
    missing = [r.variant.name for r in rows if not r.metrics]
    if missing:
        lines.append(f"Not trained yet: {', '.join(missing)}.")
    return "\n".join(lines).rstrip() + "\n"


def write_tables(rows: Sequence[AblationRow], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md = out / "ablation.md"
    md.write_text(ablation_markdown(rows), encoding="utf-8")
    table = out / "ablation.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "name",
                "levels",
                "aggregation",
                "synthetic_encoding",
                *(k for k, _ in METRICS),
                "checkpoint",
            ]
        )
        for r in rows:
            writer.writerow(
                [
                    r.variant.name,
                    "+".join(map(str, r.variant.levels)),
                    r.variant.aggregation,
                    int(r.variant.synthetic),
                    *(
                        (
                            f"{float(r.metrics[k]):.6f}"
                            if r.metrics and r.metrics.get(k) is not None
                            else ""
                        )
                        for k, _ in METRICS
                    ),
                    str(r.checkpoint or ""),
                ]
            )
    return md, table


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(
        prog="python -m train.ablate", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("config", help="base YAML config")
    p.add_argument("--out", required=True, help="folder of the 16 runs and the tables")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="train only these variants (e.g. l432_sum_enc0); repeatable",
    )
    p.add_argument(
        "--launcher",
        help='run each variant through this command, e.g. "torchrun --nproc_per_node 8"',
    )
    p.add_argument("--dry-run", action="store_true", help="list the variants and their state")
    p.add_argument("--table-only", action="store_true", help="only rebuild the tables")
    args = p.parse_args(argv)
    out = Path(args.out)
    try:
        base = load_config(args.config, args.overrides)
        variants = grid()
        names = {v.name for v in variants}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            raise ConfigError(
                f"--only {unknown[0]!r} is not a variant; names look like l432_sum_enc0."
            )
        chosen = [v for v in variants if not args.only or v.name in args.only]
        if args.dry_run:
            for v in chosen:
                print(f"{v.name:18s} {run_state(variant_config(base, v, out))}")
            return 0
        if not args.table_only:
            for i, v in enumerate(chosen, 1):
                config = variant_config(base, v, out)
                state = run_state(config)
                if state == "done":
                    print(f"[{i}/{len(chosen)}] {v.name}: done, skipped", flush=True)
                    continue
                print(
                    f"[{i}/{len(chosen)}] {v.name}: {'resuming' if state == 'partial' else 'training'}",
                    flush=True,
                )
                run_variant(config, args.launcher)
        md, table = write_tables(collect(base, out, variants), out)
    except FpsmError as exc:
        print(f"train.ablate: {exc}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as exc:
        print(
            f"train.ablate: a run failed with status {exc.returncode}; fix it and start again.",
            file=sys.stderr,
        )
        return 1
    print(md.read_text(encoding="utf-8"))
    print(f"wrote {md} and {table}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Build a mean ensemble directory from checkpoints and score it against its members.

    python -m train.ensemble --out resources/models/demo --name "FPSM demo ensemble" \\
        --member runs/fpsm/fpsm.json:FPSM \\
        --member runs/fpsm_syn/fpsm_syn.json:"FPSM + synthetic encoding" \\
        --member runs/fpsm_dadam/fpsm_dadam.json:"FPSM + DADAM fine-tuning" \\
        --csv data/val.csv --tune-thresholds

The member checkpoints (JSON + safetensors) are copied into the directory, so it can be moved or
bundled as one unit, and ``ensemble.json`` names them; the ensemble's output is the mean of the
members' probabilities (the paper's challenge entry). With evaluation data, ``ensemble.md`` compares
the ensemble with every member (macro Table 1 columns, and AP per class side by side).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpsm_core.errors import FpsmError
from fpsm_core.model.checkpoint import read_checkpoint_meta
from fpsm_core.model.ensemble import load_model, write_ensemble
from train.evaluate import (
    EvalOutcome,
    add_data_options,
    add_device_options,
    evaluate,
    macro_table,
    pct,
    records_for,
)


@dataclass(frozen=True)
class EnsembleOutcome:
    directory: Path
    members: tuple[Path, ...]
    evaluation: EvalOutcome | None
    comparison: Path | None


def make_ensemble(
    out_dir: str | Path,
    members: Sequence[str | Path],
    *,
    name: str,
    member_names: Sequence[str] | None = None,
    description: str = "",
) -> Path:
    """Copy member checkpoints into ``out_dir`` and write ``ensemble.json``; returns the folder."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = list(member_names) if member_names else []
    copied: list[str] = []
    for i, member in enumerate(members):
        meta = read_checkpoint_meta(member)
        src_json = (
            Path(member).with_suffix(".json") if Path(member).suffix != ".json" else Path(member)
        )
        src_weights = src_json.parent / meta.weights_file
        label = names[i] if i < len(names) else meta.name
        stem = _slug(label) or f"member{i}"
        while f"{stem}.json" in copied:
            stem += "_"
        if src_json.resolve() != (out / f"{stem}.json").resolve():
            shutil.copyfile(src_weights, out / f"{stem}.safetensors")
            data = json.loads(src_json.read_text(encoding="utf-8"))
            data["weights_file"] = f"{stem}.safetensors"  # the hash covers the weights only
            (out / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        copied.append(f"{stem}.json")
        if i >= len(names):
            names.append(label)
    write_ensemble(out, copied, name=name, member_names=names, description=description)
    load_model(out)  # prove it loads (hashes, labels) before anyone bundles it
    return out


def comparison_markdown(outcome: EvalOutcome, name: str) -> str:
    """Ensemble vs members: macro metrics, then AP per class side by side."""
    rows = [(f"{name} (mean ensemble)", outcome.report), *outcome.member_reports.items()]
    lines = [f"# {name}: ensemble against its members", "", macro_table(rows, outcome.task), ""]
    if outcome.task == "multilabel":
        members = list(outcome.member_reports)
        lines += [
            "## AP per class",
            "",
            "| Class | Ensemble | " + " | ".join(members) + " |",
            "|---|---|" + "---|" * len(members),
        ]
        for cls, m in outcome.report["per_class"].items():
            cells = [pct(outcome.member_reports[n]["per_class"][cls]["AP"]) for n in members]
            lines.append(f"| {cls} | {pct(m['AP'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def _member_arg(text: str) -> tuple[str, str | None]:
    # "path.json:Name" (a Windows drive letter "C:\\..." is not a name separator)
    match = re.match(r"^(.*?\.(?:json|safetensors)):(.+)$", text)
    return (match.group(1), match.group(2)) if match else (text, None)


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    p = argparse.ArgumentParser(
        prog="python -m train.ensemble", description=__doc__.splitlines()[0] if __doc__ else None
    )
    p.add_argument("--out", required=True, help="ensemble directory to create")
    p.add_argument(
        "--member",
        action="append",
        required=True,
        metavar="CKPT[:NAME]",
        help="member checkpoint, optionally with a display name (repeatable)",
    )
    p.add_argument("--name", default="FPSM ensemble")
    p.add_argument("--description", default="")
    add_data_options(
        p,
        csv_help="evaluate on this label table",
        config_help="evaluate on this training config's validation split",
    )
    p.add_argument(
        "--tune-thresholds",
        action="store_true",
        help="F1-optimal ensemble thresholds on the evaluation data, saved in ensemble.json",
    )
    add_device_options(p)
    p.add_argument("--eval-out", help="evaluation folder (default OUT/evaluation)")
    p.add_argument("--no-eval", action="store_true", help="only build the directory")
    args = p.parse_args(argv)
    paths, names = zip(*(_member_arg(m) for m in args.member), strict=True)
    try:
        directory = make_ensemble(
            args.out,
            paths,
            name=args.name,
            member_names=[
                n or read_checkpoint_meta(pth).name for pth, n in zip(paths, names, strict=True)
            ],
            description=args.description,
        )
        print(f"wrote {directory / 'ensemble.json'}")
        if args.no_eval:
            return 0
        ensemble = load_model(directory)
        records = records_for(
            ensemble,
            csv_path=args.csv,
            fmt=args.format,
            image_root=args.image_root,
            config_path=args.config,
        )
        eval_dir = Path(args.eval_out) if args.eval_out else directory / "evaluation"
        outcome = evaluate(
            ensemble,
            records,
            eval_dir,
            tune_thresholds=args.tune_thresholds,
            device=args.device,
            batch_size=args.batch_size,
            num_workers=args.workers,
        )
    except FpsmError as exc:
        print(f"train.ensemble: {exc}", file=sys.stderr)
        return 2
    text = comparison_markdown(outcome, args.name)
    (eval_dir / "ensemble.md").write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

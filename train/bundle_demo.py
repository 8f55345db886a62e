"""Bundle a trained ensemble as the viewer's demo model: fp16 weights, demo marking, logs.

Copies each member of an ensemble directory into ``--out`` as a float16 checkpoint (the tensors are
re-saved, so their SHA-256 is new; everything else in the JSON is kept), marks every member and the
ensemble "demo: trained on simulated radiographs, not for clinical use", and copies each member's
run config and metrics log plus the ensemble's evaluation next to the weights.

    python -m train.bundle_demo --ensemble runs/demo_ensemble --out resources/models/demo
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from fpsm_core.model import load_model, save_checkpoint, write_ensemble

DISCLAIMER = "Demo: trained on simulated radiographs, not for clinical use."


def bundle(ensemble_dir: Path, out: Path) -> Path:
    ens = load_model(ensemble_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(exist_ok=True)
    names = []
    for member in ens.members:
        meta = member.meta
        stem = member.json_path.stem
        provenance = dict(meta.provenance)
        provenance["demo"] = True
        provenance["source_checkpoint_sha256"] = meta.weights_sha256
        save_checkpoint(
            member.model,
            out / stem,
            name=meta.name,
            preprocessing=meta.preprocessing,
            labels=meta.labels,
            thresholds=meta.thresholds,
            untrained=False,
            provenance=provenance,
            dtype="float16",
            disclaimer=DISCLAIMER,
        )
        names.append(f"{stem}.json")
        run_dir = member.json_path.parent
        for log in ("config.yaml", "metrics.jsonl", "train.log"):
            if (run_dir / log).is_file():
                shutil.copy2(run_dir / log, out / "logs" / f"{stem}_{log}")
    data = json.loads((ensemble_dir / "ensemble.json").read_text(encoding="utf-8"))
    thresholds = data.get("thresholds")
    write_ensemble(
        out,
        names,
        name=ens.name,
        member_names=list(ens.member_names),
        description=ens.description or DISCLAIMER,
        thresholds=thresholds,
        extra={"demo": True, "disclaimer": DISCLAIMER},
    )
    evaluation = ensemble_dir / "evaluation"
    if evaluation.is_dir():
        for f in evaluation.iterdir():
            if f.is_file() and f.suffix in (".md", ".json", ".png", ".csv"):
                shutil.copy2(f, out / "logs" / f"evaluation_{f.name}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ensemble", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("resources/models/demo"))
    args = parser.parse_args(argv)
    out = bundle(args.ensemble, args.out)
    size = sum(f.stat().st_size for f in out.rglob("*.safetensors"))
    print(f"bundled {args.ensemble} -> {out} ({size / 1e6:.1f} MB of weights)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

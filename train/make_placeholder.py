"""Write the bundled *untrained* placeholder ensemble (random weights, clearly marked).

It exists so that ``fpsm infer`` and the viewer run end to end before a trained demo ensemble is
bundled; every output made with it says "untrained". Deterministic for a seed.

    python -m train.make_placeholder --out resources/models/untrained
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from fpsm_core.model import Preprocessing, create_fpsm, save_checkpoint, write_ensemble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("resources/models/untrained"))
    parser.add_argument("--backbone", default="mobilenetv3_large_100")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    model = create_fpsm(args.backbone, levels=(4, 3, 2), aggregation="sum")
    args.out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        model,
        args.out / "fpsm_untrained",
        name="FPSM untrained placeholder",
        preprocessing=Preprocessing(input_size=args.size),
        untrained=True,
        dtype="float16",
        provenance={"data": "none (random initialisation)", "epochs": 0, "seed": args.seed},
        disclaimer="UNTRAINED placeholder with random weights: its outputs mean nothing.",
    )
    write_ensemble(
        args.out,
        ["fpsm_untrained.json"],
        name="untrained placeholder",
        member_names=["FPSM (untrained)"],
        description="Random weights so the tools run end to end before a trained model is bundled.",
        extra={"untrained": True},
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

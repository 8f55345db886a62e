"""Train an FPSM model from a YAML config: the script form of ``fpsm train``.

    python -m train.fit train/configs/base.yaml --set data.train_csv=/data/cxr-lt/train.csv
    torchrun --nproc_per_node 8 -m train.fit train/configs/base.yaml --out runs/fpsm432
    python -m train.fit train/configs/base.yaml --out runs/fpsm432 --resume

All logic lives in :mod:`fpsm_core.training`; this file only parses arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from fpsm_core.cli.train import add_arguments, run
from fpsm_core.errors import FpsmError


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    parser = argparse.ArgumentParser(
        prog="python -m train.fit", description=__doc__.splitlines()[0] if __doc__ else None
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except FpsmError as exc:
        print(f"train.fit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("train.fit: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

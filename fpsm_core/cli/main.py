"""Entry point of the ``fpsm`` command.

Each subcommand lives in ``fpsm_core.cli.<name>`` and exposes ``register(subparsers)`` (adds its
parser and sets ``func``) and is imported lazily, so ``fpsm info`` never pays for importing torch.
A user's mistake ends as one line on stderr and a non-zero status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from fpsm_core import __version__

# name -> (module, one-line help). Modules are imported only when their command runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "infer": ("fpsm_core.cli.infer", "rank the 26 CXR-LT findings for images or folders"),
    "info": ("fpsm_core.cli.info", "show what the image loader sees in a file"),
    "sim": ("fpsm_core.cli.sim", "simulate chest radiographs with ground-truth findings"),
    "train": ("fpsm_core.cli.train", "train an FPSM model from a YAML config"),
    "dadam": ("fpsm_core.cli.dadam", "DADAM patch library and augmented data sets"),
    "pacs": ("fpsm_core.cli.pacs", "query and send to a PACS (DIMSE)"),
}


class CLIError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _build_parser(selected: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fpsm", description="Chest radiograph FPSM toolkit (not for clinical use)."
    )
    parser.add_argument("--version", action="version", version=f"fpsm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == selected:
            module = importlib.import_module(module_name)
            module.register(sub)
        else:
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never let timm reach for a hub
    args_list = list(sys.argv[1:] if argv is None else argv)
    selected = next((a for a in args_list if a in SUBCOMMANDS), None)
    try:
        parser = _build_parser(selected)
    except ModuleNotFoundError as exc:
        print(
            f"fpsm: the '{selected}' command is not available in this build ({exc}).",
            file=sys.stderr,
        )
        return 2
    args = parser.parse_args(args_list)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except CLIError as exc:
        print(f"fpsm {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpsm: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

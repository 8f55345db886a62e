"""Entry point of the ``fpsm`` command.

Each subcommand lives in ``fpsm_core.cli.<name>`` and exposes ``register(subparsers)`` (adds its
parser and sets ``func``) and is imported lazily, so ``fpsm info`` never pays for importing torch.
A user's mistake ends as one line on stderr and a non-zero status, never a traceback: one guard
(:func:`_guarded`) around every subcommand catches :class:`~fpsm_core.errors.FpsmError`, the base
of every user error, and renders what the machine refuses (``OSError``, ``sqlite3.Error``,
``RecursionError``, ``MemoryError``) the same way; only a programming error shows a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sqlite3
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from fpsm_core import __version__
from fpsm_core.errors import FpsmError, one_sentence

# name -> (module, one-line help). Modules are imported only when their command runs.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "infer": ("fpsm_core.cli.infer", "rank the 26 CXR-LT findings for images or folders"),
    "info": ("fpsm_core.cli.info", "show what the image loader sees in a file"),
    "sim": ("fpsm_core.cli.sim", "simulate chest radiographs with ground-truth findings"),
    "train": ("fpsm_core.cli.train", "train an FPSM model from a YAML config"),
    "dadam": ("fpsm_core.cli.dadam", "DADAM patch library and augmented data sets"),
    "calibrate": ("fpsm_core.cli.calibrate", "fit a model's input gate and calibration"),
    "pacs": ("fpsm_core.cli.pacs", "query, retrieve from and send to a PACS (DIMSE, DICOMweb)"),
    "listen": ("fpsm_core.cli.listen", "auto-triage gateway: C-STORE in, DICOM results out"),
}


class CLIError(FpsmError):
    """A user-facing error of a subcommand's options: printed as one line, exit status 2."""


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
    return _guarded(args)


def _guarded(args: argparse.Namespace) -> int:
    """Run the subcommand behind the one guard of the ``fpsm`` command.

    A user's mistake (any :class:`FpsmError`) and what the machine refuses (a file that cannot be
    written, a malformed database, input too large or too deeply nested) end as one line and status
    2; a closed pipe (``fpsm infer ... | head``) ends quietly with the status a shell gives a
    process that SIGPIPE stopped; anything else is a bug and keeps its traceback, with a line
    asking for a report.
    """
    prefix = f"fpsm {args.command}"
    try:
        status = int(args.func(args) or 0)
        sys.stdout.flush()  # a pipe closed early fails here, inside the guard
        return status
    except FpsmError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("fpsm: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 128 + 13  # SIGPIPE, as a shell reports a process the signal stopped
    except (OSError, sqlite3.Error, RecursionError, MemoryError) as exc:
        print(f"{prefix}: {environment_sentence(exc, _named_inputs(args))}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(
            f"{prefix}: this is a bug in fpsm {__version__}, not a problem with your input; "
            "please report it with the traceback above.",
            file=sys.stderr,
        )
        return 1


_ERRNO_WORDS = {
    errno.ENOENT: "does not exist",
    errno.EACCES: "cannot be accessed (permission denied)",
    errno.EPERM: "cannot be accessed (operation not permitted)",
    errno.EEXIST: "already exists and is in the way",
    errno.ENOTDIR: "has a part that is a file, not a folder",
    errno.EISDIR: "is a folder, not a file",
    errno.ENOSPC: "cannot be written: no space left on the device",
    errno.EROFS: "cannot be written: the file system is read-only",
    errno.ENAMETOOLONG: "has a name that is too long",
}


def environment_sentence(exc: BaseException, inputs: Sequence[str] = ()) -> str:
    """One sentence for an error the machine raised (file system, SQLite, memory, nesting).

    Args:
        exc: The error.
        inputs: The files the user named, for errors that do not say which file they met.
    """
    if isinstance(exc, OSError) and exc.filename is not None:
        words = _ERRNO_WORDS.get(exc.errno or -1) or one_sentence(exc.strerror or exc)
        other = f" (and '{exc.filename2}')" if exc.filename2 is not None else ""
        return f"'{exc.filename}'{other} {words}."
    during = f" while working on {', '.join(inputs)}" if inputs else ""
    if isinstance(exc, MemoryError):
        return f"out of memory{during}: the input is too large to hold."
    if isinstance(exc, RecursionError):
        return f"an input is nested too deeply to read{during}."
    if isinstance(exc, sqlite3.Error):
        return f"a database cannot be used{during} ({one_sentence(exc)})."
    return f"{one_sentence(exc).rstrip('.')}{during}."


def _named_inputs(args: argparse.Namespace, limit: int = 3) -> list[str]:
    """The existing files and folders among the options, quoted (first ``limit``)."""
    found: list[str] = []
    for value in vars(args).values():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (str, Path)) and str(item) and os.path.exists(item):
                found.append(f"'{item}'")
    return found[:limit] + (["..."] if len(found) > limit else [])


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's last flush meets no closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a descriptor (captured in tests)
        pass


if __name__ == "__main__":
    sys.exit(main())

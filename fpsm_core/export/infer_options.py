"""``fpsm infer --dicom-out DIR``: the options and the per-result call that ``cli/infer.py`` uses.

Kept here so the inference command gains DICOM outputs through two lines: ``add_options(parser)``
and ``DicomWriter.from_args(args)`` with one ``write(result)`` per result. Each problem is one
line on stderr naming the file; the batch goes on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from fpsm_core.export.errors import ExportError
from fpsm_core.export.outputs import KINDS, parse_kinds, write_outputs


def add_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--dicom-out``, ``--dicom`` and ``--deidentify`` to a parser."""
    parser.add_argument(
        "--dicom-out",
        type=Path,
        metavar="DIR",
        help="write DICOM outputs for each image (Secondary Capture, SR, presentation state)",
    )
    parser.add_argument(
        "--dicom",
        default="sc,sr,gsps",
        metavar="KINDS",
        help=f"which DICOM outputs, comma-separated among {','.join(KINDS)} (default sc,sr,gsps)",
    )
    parser.add_argument(
        "--deidentify",
        action="store_true",
        help="de-identify the patient/study details and UIDs copied into the DICOM outputs",
    )


class DicomWriter:
    """Writes the DICOM outputs of each result into one folder."""

    def __init__(
        self, out_dir: Path, kinds: tuple[str, ...], deidentify: bool, err: TextIO = sys.stderr
    ) -> None:
        self.out_dir = out_dir
        self.kinds = kinds
        self.deidentify = deidentify
        self.err = err
        self._stems: dict[str, int] = {}

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> DicomWriter | None:
        """None without ``--dicom-out``; raises ExportError for a bad ``--dicom``."""
        if getattr(args, "dicom_out", None) is None:
            return None
        return cls(args.dicom_out, parse_kinds(args.dicom), bool(args.deidentify))

    def _stem(self, path: str) -> str:
        # DICOMs are often all named IM0001 in different folders: number repeats.
        stem = Path(path).stem or "image"
        n = self._stems.get(stem, 0)
        self._stems[stem] = n + 1
        return stem if n == 0 else f"{stem}_{n + 1}"

    def write(self, result: Any) -> bool:
        """Write one result's outputs; False (after one line on stderr) when they failed."""
        from fpsm_core.io import ImageLoadError, load_image

        if result.path is None:
            print("dicom: a result without a source file cannot be exported.", file=self.err)
            return False
        try:
            image = load_image(result.path)
            written = write_outputs(
                result,
                image,
                self.out_dir,
                self.kinds,
                deidentify=self.deidentify,
                stem=self._stem(result.path),
            )
        except (ExportError, ImageLoadError) as exc:
            print(f"dicom: {exc}", file=self.err)
            return False
        for warning in written.warnings:
            print(f"dicom: warning: {warning}", file=self.err)
        return True

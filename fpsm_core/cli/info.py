"""``fpsm info PATH``: what the image loader sees in a file, or what the indexer sees in a folder.

For a file: the stored header (photometric, bits, rescale, VOI, transfer syntax, spacing) next to
what ``load_image`` made of it (size, display sense, window, decoder, warnings); a file that cannot
be loaded prints what could be read, then the error, and exits 2. For a folder: patients,
studies, series and images, and one line per broken file (exit 1 when there are any).

Without ``--show-phi`` nothing that PS3.15's Basic Profile would remove or remap is printed: no
patient ID or name, study or series UID, study date or description, and no path of a file the
folder walk found (folder names are often patient names or record numbers); files are numbered
instead, and a broken file's message names it by that number.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``info`` subcommand."""
    p = subparsers.add_parser(
        "info",
        help="show what the image loader sees in a file",
        description="Show what the image loader sees in a DICOM/PNG/JPEG/TIFF file (header, "
        "window, spacing, decoder, warnings), or summarise a folder of studies.",
    )
    p.add_argument("path", type=Path, help="an image file, a folder or a DICOMDIR")
    p.add_argument("--frame", type=int, default=0, help="frame of a multi-frame file (from 0)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument(
        "--show-phi",
        action="store_true",
        help="include identifiers: patient ID and name, UIDs, dates, descriptions, file paths "
        "(hidden by default)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="folders: do not use or update the study index cache",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Describe one file or one folder; return the exit status."""
    from fpsm_core.cli.main import CLIError

    path: Path = args.path
    if not path.exists():
        raise CLIError(f"'{path}' does not exist.")
    if path.is_dir() or path.name.upper() == "DICOMDIR":
        return _folder(args)
    from fpsm_core.io.info import describe

    report = describe(path, frame=args.frame)
    if args.json:
        print(json.dumps(report.as_dict(show_phi=args.show_phi), indent=2))
        return 2 if report.error else 0
    lines = report.lines(show_phi=args.show_phi)
    if report.error:
        print("\n".join(line for line in lines if not line.startswith("Error:")))
        raise CLIError(report.error)
    print("\n".join(lines))
    return 0


def _folder(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.io import ImageLoadError, index_folder

    try:
        index = index_folder(args.path, cache=False if args.no_cache else None)
    except ImageLoadError as exc:
        raise CLIError(str(exc)) from None
    if args.json:
        print(json.dumps(_index_dict(index, args.show_phi), indent=2))
        return 1 if index.errors else 0
    n_series = sum(len(s.series) for s in index.studies)
    # A broken file whose header placed it in a series is listed there too: count it once, broken.
    n_images = sum(1 for img in index.images if not img.error)
    print(f"Folder: {index.root if args.show_phi else args.path}")
    print(
        f"  {len(index.patients)} patient(s), {len(index.studies)} study(ies), {n_series} "
        f"series, {n_images} image(s), {len(index.non_images)} non-image DICOM "
        f"object(s), {len(index.errors)} broken file(s)"
    )
    cache = index.cache_path or "off"
    print(f"  headers: {index.n_read} read, {index.n_cached} from cache ({cache})")
    for p_i, patient in enumerate(index.patients, 1):
        who = (
            f"{patient.patient_id or '-'} {patient.patient_name or ''}".strip()
            if args.show_phi
            else f"patient {p_i}"
        )
        for s_i, study in enumerate(patient.studies, 1):
            views = sorted({img.view_position or "?" for img in study.images})
            what = (
                f"study {study.study_date or 'undated'} {study.description or ''}"
                if args.show_phi
                else f"study {s_i}"
            )
            good = sum(1 for img in study.images if not img.error)
            broken = len(study.images) - good
            print(
                f"  {who}: {what} - {len(study.series)} series, "
                f"{good} image(s){f' and {broken} broken' if broken else ''}, "
                f"views {', '.join(views)}"
            )
    for note in index.warnings:
        print(f"  warning: {note if args.show_phi else _scrub(note, index)}")
    for e_i, entry in enumerate(index.errors, 1):
        text = entry.error if args.show_phi else _scrub(entry.error or "", index, entry.path, e_i)
        print(f"  broken: {text}")
    return 1 if index.errors else 0


def _scrub(text: str, index: Any, path: Any = None, number: int = 0) -> str:
    """A message with the found file's path replaced by its number, and the root by '<folder>'."""
    if path is not None:
        for form in (str(path), str(Path(path).name)):
            text = text.replace(form, f"broken file {number}")
    return text.replace(str(index.root), "<folder>")


def _index_dict(index: Any, show_phi: bool) -> dict[str, Any]:
    def phi(value: Any) -> Any:
        return value if show_phi else None

    def study(s: Any) -> dict[str, Any]:
        return {
            "study_uid": phi(s.study_uid),
            "study_date": phi(s.study_date),
            "description": phi(s.description),
            "series": [
                {
                    "series_uid": phi(se.series_uid),
                    "series_number": se.series_number,
                    "modality": se.modality,
                    "images": [
                        {
                            "path": phi(str(i.path)),
                            "view_position": i.view_position,
                            "rows": i.rows,
                            "columns": i.columns,
                            "error": i.error if show_phi or not i.error else "broken",
                        }
                        for i in se.images
                    ],
                }
                for se in s.series
            ],
        }

    return {
        "root": str(index.root) if show_phi else None,
        "patients": [
            {
                "patient_id": p.patient_id if show_phi else None,
                "patient_name": p.patient_name if show_phi else None,
                "studies": [study(s) for s in p.studies],
            }
            for p in index.patients
        ],
        "errors": [
            {
                "path": phi(str(e.path)),
                "error": e.error if show_phi else _scrub(e.error or "", index, e.path, n),
            }
            for n, e in enumerate(index.errors, 1)
        ],
        "non_images": [str(p) for p in index.non_images] if show_phi else len(index.non_images),
        "n_read": index.n_read,
        "n_cached": index.n_cached,
    }

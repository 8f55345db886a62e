"""One call for all the DICOM outputs of a result: build them, write them, say what was written.

Files are written as ``<kind>_<source stem>.dcm`` in the destination (``sc_``, ``sr_``, ``gsps_``,
``seg_``), each through a temporary name renamed when complete, so a failure leaves no
half-written file. The SEG needs CAMs; without them it is skipped with a warning, and the SC and
GSPS carry no heatmap or regions.
"""

from __future__ import annotations

import os
import warnings as warnings_module
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from fpsm_core.export.errors import ExportError
from fpsm_core.export.evidence import evidence, finding_regions
from fpsm_core.export.source import export_source

KINDS = ("sc", "sr", "gsps", "seg")
DEFAULT_KINDS = ("sc", "sr", "gsps")


@dataclass(frozen=True)
class WrittenOutputs:
    """What :func:`write_outputs` wrote: kind -> path, and warnings (one sentence each)."""

    files: dict[str, Path]
    warnings: tuple[str, ...]


def parse_kinds(text: str) -> tuple[str, ...]:
    """``sc,sr`` -> ("sc", "sr"); one sentence naming the option for an unknown kind."""
    kinds = tuple(k.strip().lower() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ExportError(
            f"--dicom {text!r}: unknown output kind {', '.join(unknown) or '(none)'}; "
            f"choose among {','.join(KINDS)}."
        )
    return kinds


def build_outputs(
    result: Any,
    image: Any,
    kinds: Iterable[str] = DEFAULT_KINDS,
    *,
    deidentify: bool = False,
    salt: str | bytes | None = None,
) -> tuple[dict[str, Dataset], list[str]]:
    """The output data sets of one result (kind -> data set) and the warnings."""
    with warnings_module.catch_warnings():
        # highdicom warns about one-component person names; a pseudonym is one on purpose.
        warnings_module.filterwarnings("ignore", message=".*intended person name")
        return _build(result, image, kinds, deidentify, salt)


def _build(
    result: Any,
    image: Any,
    kinds: Iterable[str],
    deidentify: bool,
    salt: str | bytes | None,
) -> tuple[dict[str, Dataset], list[str]]:
    from fpsm_core.export.gsps import presentation_state
    from fpsm_core.export.sc import secondary_capture
    from fpsm_core.export.seg import segmentation
    from fpsm_core.export.sr import structured_report

    source = export_source(image, deidentify=deidentify, salt=salt)
    warnings = list(source.warnings)
    ev = evidence(result, (source.rows, source.columns))
    regions = finding_regions(result, ev)
    wanted = list(dict.fromkeys(kinds))
    if ev is None and ("seg" in wanted or "sc" in wanted):
        warnings.append(
            f"{image.path}: the result has no CAMs, so the DICOM outputs carry no heatmap, "
            "regions or segmentation."
        )
    out: dict[str, Dataset] = {}
    for kind in wanted:
        if kind == "sc":
            out[kind] = secondary_capture(result, source, ev, regions)
        elif kind == "sr":
            out[kind] = structured_report(result, source, ev, regions)
        elif kind == "gsps":
            out[kind] = presentation_state(result, source, regions)
        elif kind == "seg" and ev is not None:
            out[kind] = segmentation(result, source, ev)
    return out, warnings


def write_outputs(
    result: Any,
    image: Any,
    out_dir: str | Path,
    kinds: Iterable[str] = DEFAULT_KINDS,
    *,
    deidentify: bool = False,
    salt: str | bytes | None = None,
    stem: str | None = None,
) -> WrittenOutputs:
    """Build and write the DICOM outputs of one result into ``out_dir``.

    Args:
        result: a :class:`fpsm_core.inference.Result` (with CAMs for heatmaps and regions).
        image: its source :class:`fpsm_core.io.XRayImage`.
        out_dir: destination folder (created).
        kinds: among ``sc``, ``sr``, ``gsps``, ``seg``.
        deidentify: de-identify the copied patient/study modules and UIDs.
        salt: de-identification secret (default: the project's).
        stem: file name stem; default the source file's.

    Raises:
        ExportError: the destination cannot be written, or the source cannot be exported.
    """
    datasets, warnings = build_outputs(result, image, kinds, deidentify=deidentify, salt=salt)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the DICOM output folder {out}: {exc.strerror}.") from None
    stem = stem or Path(str(image.path)).stem
    files: dict[str, Path] = {}
    for kind, ds in datasets.items():
        path = out / f"{kind}_{stem}.dcm"
        tmp = path.with_name(f".{path.name}.part")
        try:
            ds.save_as(tmp, enforce_file_format=True)
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise ExportError(f"cannot write {path}: {exc.strerror}.") from None
        files[kind] = path
    return WrittenOutputs(files=files, warnings=tuple(warnings))

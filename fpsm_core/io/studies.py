"""Study indexing: a folder tree (or a DICOMDIR) as patients -> studies -> series -> images.

Only headers are read, each file once: a SQLite cache (``index_cache``) keyed by path, mtime and
size makes reopening a big folder a walk plus one query, and notices edited, added and deleted
files. MIMIC-CXR-JPG trees (``files/pXX/pSUBJECT/sSTUDY/DICOMID.jpg``) become one study per
``sSTUDY`` folder; other PNG/JPEG/TIFF files become one study per folder. A file that cannot be
read is listed with its error and never stops the index.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Literal

import pydicom

from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.headers import HeaderRecord, read_header
from fpsm_core.io.index_cache import HeaderCache, default_cache_path
from fpsm_core.io.loader import is_image_path

ProgressCallback = Callable[[int, int], None]
_BATCH = 500
_MIMIC_METADATA = ("mimic-cxr-2.0.0-metadata.csv", "mimic-cxr-2.0.0-metadata.csv.gz")


@dataclass(frozen=True)
class ImageEntry:
    """One image file of a series.

    Attributes:
        path: The file.
        source_format: "dicom", "png", "jpeg" or "tiff".
        instance_uid: SOPInstanceUID (MIMIC-CXR-JPG: dicom_id).
        instance_number: InstanceNumber, None when absent.
        view_position: ViewPosition ("PA", "AP", "LL"...; MIMIC-CXR-JPG: from the metadata CSV).
        laterality: ImageLaterality, else Laterality.
        rows: Rows (raster: height).
        columns: Columns (raster: width).
        frames: NumberOfFrames (1 when absent).
        photometric: PhotometricInterpretation ("MONOCHROME2" for grey rasters).
        modality: Modality.
        transfer_syntax: TransferSyntaxUID of DICOM files.
        error: One sentence when the file is broken (then it is also in ``StudyIndex.errors``).
    """

    path: Path
    source_format: str | None
    instance_uid: str | None
    instance_number: int | None
    view_position: str | None
    laterality: str | None
    rows: int | None
    columns: int | None
    frames: int = 1
    photometric: str | None = None
    modality: str | None = None
    transfer_syntax: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class SeriesEntry:
    """Images sorted by InstanceNumber, then file name (natural order)."""

    series_uid: str | None
    series_number: int | None
    modality: str | None
    description: str | None
    images: tuple[ImageEntry, ...]


@dataclass(frozen=True)
class StudyEntry:
    """Series sorted by SeriesNumber, then description.

    ``study_uid`` is StudyInstanceUID (MIMIC-CXR-JPG: the study id; other rasters: None, one
    study per folder, ``description`` = the folder). Dates are DICOM DA/TM strings.
    """

    study_uid: str | None
    study_date: str | None
    study_time: str | None
    description: str | None
    accession_number: str | None
    series: tuple[SeriesEntry, ...]

    @property
    def images(self) -> tuple[ImageEntry, ...]:
        """All images of the study, series by series."""
        return tuple(img for s in self.series for img in s.images)


@dataclass(frozen=True)
class PatientEntry:
    """Studies sorted newest first (undated last)."""

    patient_id: str | None
    patient_name: str | None
    studies: tuple[StudyEntry, ...]


@dataclass(frozen=True)
class StudyIndex:
    """The result of ``index_folder``.

    Attributes:
        root: The folder indexed (the DICOMDIR's folder for a DICOMDIR).
        patients: Sorted by name, then id; a None patient holds files without PatientID.
        errors: Every broken file, sorted by path: unreadable ones (only here) and ones whose
            header placed them in a series (there too, with ``error`` set).
        non_images: DICOM objects without pixel data (SR, presentation states, DICOMDIR...).
        cache_path: The SQLite cache used, None when caching was off or failed.
        n_cached: Files whose header came from the cache.
        n_read: Files whose header was read now.
        warnings: Index-level notes (e.g. the cache could not be opened).
    """

    root: Path
    patients: tuple[PatientEntry, ...]
    errors: tuple[ImageEntry, ...]
    non_images: tuple[Path, ...]
    cache_path: Path | None
    n_cached: int
    n_read: int
    warnings: tuple[str, ...] = ()

    @property
    def studies(self) -> tuple[StudyEntry, ...]:
        """All studies, patient by patient."""
        return tuple(s for p in self.patients for s in p.studies)

    @property
    def images(self) -> tuple[ImageEntry, ...]:
        """All images in display order (broken-but-placed ones included)."""
        return tuple(img for s in self.studies for img in s.images)

    def find(self, path: str | PathLike[str]) -> ImageEntry | None:
        """The entry of one file, from the series or the error list."""
        target = Path(path).absolute()
        for img in self.images + self.errors:
            if img.path == target:
                return img
        return None


def index_folder(
    path: str | PathLike[str],
    cache: str | PathLike[str] | None | Literal[False] = None,
    *,
    progress: ProgressCallback | None = None,
) -> StudyIndex:
    """Index a folder tree (or a DICOMDIR file) into patients, studies, series and images.

    Args:
        path: A folder (walked recursively, hidden folders skipped, symlinked folders not
            followed) or a DICOMDIR file (its referenced files are indexed).
        cache: SQLite cache file; None = the per-user default (``default_cache_path()``);
            False = no cache.
        progress: Called as ``progress(done, total)`` while headers are read; an exception it
            raises stops the index (headers read so far stay cached).

    Returns:
        The `StudyIndex`.

    Raises:
        ImageLoadError: ``path`` does not exist or is neither a folder nor a DICOMDIR.
    """
    target = Path(path).absolute()
    if not target.exists():
        raise ImageLoadError(target, "no such file or folder")
    notes: list[str] = []
    if target.is_dir():
        root = target
        listed = list(walk_image_files(root))
        missing: list[str] = []
    else:
        root = target.parent
        listed, missing = _dicomdir_files(target)
    cache_path = (
        None if cache is False else Path(cache) if cache is not None else (default_cache_path())
    )
    store: HeaderCache | None = None
    if cache_path is not None:
        try:
            store = HeaderCache(cache_path)
        except (OSError, sqlite3.Error) as exc:
            notes.append(
                f"The index cache {cache_path} cannot be used ({exc}); indexing without it."
            )
            cache_path = None
    try:
        records, n_cached, n_read = _records(root, target.is_dir(), listed, store, progress)
    finally:
        if store is not None:
            store.close()
    if store is not None and store.problem:  # junk pages found while reading: said once
        notes.append(store.problem)
    for p in missing:
        records.append(
            HeaderRecord(
                path=p,
                mtime_ns=0,
                size=0,
                status="error",
                error=str(ImageLoadError(p, "it is listed in the DICOMDIR but missing")),
            )
        )
    _fill_mimic_views(root, records)
    return _build(root, records, cache_path, n_cached, n_read, notes)


def image_files(root: str | PathLike[str]) -> list[Path]:
    """Every file under ``root`` worth trying as an image, sorted: what the viewer's worklist
    indexes and ``fpsm infer FOLDER`` runs on.

    The one notion of "image file": :func:`~fpsm_core.io.loader.is_image_path` on the name
    (a DICOM or raster suffix, no suffix, or a numeric one as in UID-named DICOM files; not a
    DICOMDIR), hidden files and folders skipped, symlinked folders not followed, walked
    iteratively so a tree thousands of levels deep does not exhaust the stack.
    """
    return sorted(Path(p) for p, _, _ in walk_image_files(Path(root)))


def walk_image_files(root: Path) -> Iterator[tuple[str, int, int]]:
    """(path, mtime_ns, size) of every candidate image file under ``root`` (see
    :func:`image_files`), in no particular order; unreadable folders are skipped."""
    stack = [str(root)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file() and is_image_path(entry.name):
                    st = entry.stat()
                    yield entry.path, st.st_mtime_ns, st.st_size
            except OSError:
                continue


def _dicomdir_files(dicomdir: Path) -> tuple[list[tuple[str, int, int]], list[str]]:
    """Files referenced by a DICOMDIR, and those it lists that are missing."""
    try:
        ds = pydicom.dcmread(dicomdir, stop_before_pixels=True)
        records = list(ds.DirectoryRecordSequence)
    except Exception:
        raise ImageLoadError(dicomdir, "it is neither a folder nor a readable DICOMDIR") from None
    found: list[tuple[str, int, int]] = []
    missing: list[str] = []
    seen: set[str] = set()
    for rec in records:
        ref = rec.get("ReferencedFileID")
        if not ref:
            continue
        parts = [ref] if isinstance(ref, str) else list(ref)
        file_path = str(dicomdir.parent.joinpath(*[str(p) for p in parts]))
        if file_path in seen:
            continue
        seen.add(file_path)
        try:
            st = os.stat(file_path)
            found.append((file_path, st.st_mtime_ns, st.st_size))
        except OSError:
            missing.append(file_path)
    return found, missing


def _records(
    root: Path,
    is_folder: bool,
    listed: list[tuple[str, int, int]],
    store: HeaderCache | None,
    progress: ProgressCallback | None,
) -> tuple[list[HeaderRecord], int, int]:
    cached: dict[str, HeaderRecord] = {}
    if store is not None:
        cached = (
            store.load_under(str(root)) if is_folder else store.load_paths(p for p, _, _ in listed)
        )
    records: list[HeaderRecord] = []
    todo: list[tuple[str, int, int]] = []
    for item in listed:
        hit = cached.get(item[0])
        if hit is not None and hit.mtime_ns == item[1] and hit.size == item[2]:
            records.append(hit)
        else:
            todo.append(item)
    n_cached = len(records)
    fresh: list[HeaderRecord] = []
    for done, (p, mtime, size) in enumerate(todo, 1):
        fresh.append(read_header(p, mtime, size))
        if store is not None and len(fresh) >= _BATCH:
            store.store(fresh)
            records.extend(fresh)
            fresh = []
        if progress is not None:
            progress(done, len(todo))
    if store is not None:
        store.store(fresh)
        if is_folder:
            seen = {p for p, _, _ in listed}
            store.delete(p for p in cached if p not in seen)
    records.extend(fresh)
    return records, n_cached, len(todo)


def _fill_mimic_views(root: Path, records: list[HeaderRecord]) -> None:
    """ViewPosition and StudyDate of MIMIC-CXR-JPG files from the metadata CSV, when present."""
    wanted = {
        r.instance_uid: i
        for i, r in enumerate(records)
        if r.source_format in ("jpeg", "png") and r.instance_uid and r.study_uid
    }
    if not wanted:
        return
    csv_path = next(
        (
            folder / name
            for folder in (root, *list(root.parents)[:3])
            for name in _MIMIC_METADATA
            if (folder / name).is_file()
        ),
        None,
    )
    if csv_path is None:
        return
    opener = gzip.open if csv_path.suffix == ".gz" else open
    try:
        with opener(csv_path, "rt", newline="") as fh:  # type: ignore[operator]
            for row in csv.DictReader(fh):
                i = wanted.get(row.get("dicom_id", ""))
                if i is not None:
                    r = records[i]
                    records[i] = r._replace(
                        view_position=row.get("ViewPosition") or r.view_position,
                        study_date=row.get("StudyDate") or r.study_date,
                        study_time=(row.get("StudyTime") or "").split(".")[0] or r.study_time,
                    )
    except (OSError, csv.Error, UnicodeDecodeError):
        return


def _natural(text: str) -> tuple[object, ...]:
    return tuple(int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text))


def _image_order(r: HeaderRecord) -> tuple[object, ...]:
    """InstanceNumber first; file names (natural order) only for images without one."""
    if r.instance_number is not None:
        return (False, r.instance_number, ())
    return (True, 0, _natural(os.path.basename(r.path)))


def _entry(r: HeaderRecord) -> ImageEntry:
    return ImageEntry(
        path=Path(r.path),
        source_format=r.source_format,
        instance_uid=r.instance_uid,
        instance_number=r.instance_number,
        view_position=r.view_position,
        laterality=r.laterality,
        rows=r.rows,
        columns=r.columns,
        frames=r.frames or 1,
        photometric=r.photometric,
        modality=r.modality,
        transfer_syntax=r.transfer_syntax,
        error=r.error,
    )


def _build(
    root: Path,
    records: list[HeaderRecord],
    cache_path: Path | None,
    n_cached: int,
    n_read: int,
    notes: list[str],
) -> StudyIndex:
    tree: dict[tuple[str | None, str | None], dict[str, dict[str, list[HeaderRecord]]]] = {}
    errors: list[ImageEntry] = []
    non_images: list[Path] = []
    for r in records:
        if r.status == "skip":
            continue
        if r.status == "other":
            non_images.append(Path(r.path))
            continue
        if r.status == "error":
            errors.append(_entry(r))
            if r.source_format is None:  # nothing readable to place it by
                continue
        folder = os.path.dirname(r.path)
        study_key = r.study_uid or f"folder:{folder}"
        series_key = r.series_uid or f"{study_key}|{r.modality or ''}|{folder}"
        patient = (r.patient_id, r.patient_name if r.patient_id is None else None)
        tree.setdefault(patient, {}).setdefault(study_key, {}).setdefault(series_key, []).append(r)
    patients = []
    for (pid, _), studies in tree.items():
        study_entries = []
        names = [
            r.patient_name
            for s in studies.values()
            for ser in s.values()
            for r in ser
            if r.patient_name
        ]
        for series in studies.values():
            first = next(iter(series.values()))[0]
            series_entries = []
            for ser in series.values():
                ser.sort(key=_image_order)
                head = ser[0]
                series_entries.append(
                    SeriesEntry(
                        series_uid=head.series_uid,
                        series_number=head.series_number,
                        modality=head.modality,
                        description=head.series_description,
                        images=tuple(_entry(r) for r in ser),
                    )
                )
            series_entries.sort(
                key=lambda s: (
                    s.series_number is None,
                    s.series_number or 0,
                    s.description or "",
                    s.series_uid or "",
                )
            )
            description = first.study_description or (
                None if first.study_uid else os.path.relpath(os.path.dirname(first.path), root)
            )
            study_entries.append(
                StudyEntry(
                    study_uid=first.study_uid,
                    study_date=first.study_date,
                    study_time=first.study_time,
                    description=description,
                    accession_number=first.accession_number,
                    series=tuple(series_entries),
                )
            )
        study_entries.sort(key=lambda s: (s.study_date or "", s.study_time or ""), reverse=True)
        study_entries.sort(key=lambda s: s.study_date is None)  # stable: undated last
        patients.append(
            PatientEntry(
                patient_id=pid,
                patient_name=names[0] if names else None,
                studies=tuple(study_entries),
            )
        )
    patients.sort(
        key=lambda p: (
            p.patient_id is None and p.patient_name is None,
            (p.patient_name or "").lower(),
            p.patient_id or "",
        )
    )
    errors.sort(key=lambda e: _natural(str(e.path)))
    non_images.sort()
    return StudyIndex(
        root=root,
        patients=tuple(patients),
        errors=tuple(errors),
        non_images=tuple(non_images),
        cache_path=cache_path,
        n_cached=n_cached,
        n_read=n_read,
        warnings=tuple(notes),
    )


# -- reading-room look-ups: the study of a file, its priors, the other views of one study ------------
LATERAL_VIEWS = frozenset({"LL", "RL", "LLD", "RLD", "LAT", "LATERAL"})
FRONTAL_VIEWS = frozenset({"PA", "AP"})


@dataclass(frozen=True)
class StudyLocation:
    """Where a file sits in an index: its patient, its study and its own entry."""

    patient: PatientEntry
    study: StudyEntry
    image: ImageEntry


def locate(index: StudyIndex, path: str | PathLike[str]) -> StudyLocation | None:
    """The patient, study and entry of one file of the index (None: not in it)."""
    target = Path(path).absolute()
    for patient in index.patients:
        for study in patient.studies:
            for image in study.images:
                if image.path == target:
                    return StudyLocation(patient, study, image)
    return None


def prior_studies(index: StudyIndex, path: str | PathLike[str]) -> tuple[StudyEntry, ...]:
    """The same patient's studies dated before the study of ``path``, newest first.

    The patient is matched by PatientID across the whole index (two folders of one patient are
    one patient); files without a PatientID, or whose study has no date, have no priors, since a
    guess there could hang another person's film beside this one.
    """
    here = locate(index, path)
    if here is None or here.patient.patient_id is None or not here.study.study_date:
        return ()
    current = (here.study.study_date, here.study.study_time or "")
    found = [
        study
        for patient in index.patients
        if patient.patient_id == here.patient.patient_id
        for study in patient.studies
        if study is not here.study
        and study.study_uid != here.study.study_uid
        and study.study_date
        and (study.study_date, study.study_time or "") < current
    ]
    found.sort(key=lambda s: (s.study_date or "", s.study_time or ""), reverse=True)
    return tuple(found)


def view_kind(view_position: str | None) -> str:
    """ "frontal", "lateral" or "other" for a ViewPosition."""
    view = (view_position or "").upper()
    if view in FRONTAL_VIEWS:
        return "frontal"
    if view in LATERAL_VIEWS:
        return "lateral"
    return "other"


def hanging_order(
    images: tuple[ImageEntry, ...] | list[ImageEntry], preference: tuple[str, ...] | list[str]
) -> list[ImageEntry]:
    """Images sorted by a hanging preference of view positions (unlisted views last, stable).

    Args:
        preference: view positions in the order they are hung, e.g. ("PA", "AP", "LL").
    """
    rank = {view.upper(): i for i, view in enumerate(preference)}
    return sorted(
        (img for img in images if img.error is None),
        key=lambda img: rank.get((img.view_position or "").upper(), len(rank)),
    )


def best_match(study: StudyEntry, view_position: str | None) -> ImageEntry | None:
    """The image of a study to compare with a film of ``view_position``: same view, else kind."""
    images = [img for img in study.images if img.error is None]
    if not images:
        return None
    view = (view_position or "").upper()
    same = [img for img in images if (img.view_position or "").upper() == view]
    if same:
        return same[0]
    kind = view_kind(view_position)
    alike = [img for img in images if view_kind(img.view_position) == kind]
    return (alike or images)[0]

"""Generating the augmented data set from a plan: parallel, resumable, de-identified.

Output folder layout::

    images/<id>.png   the synthetic images (8-bit grey, no metadata; JPEG (.jpg) when the
                      destinations are JPEGs, as in MIMIC-CXR-JPG, so compression tells nothing)
    manifest.jsonl    header (plan settings, generation settings), then one record per image as it
                      is finished: destination, seed, every patch with its pasted box, labels
    labels.csv        CXR-LT layout + ``synthetic`` column: the original rows (paths made relative
                      to this folder) then the synthetic rows, in plan order
    boxes.csv         VinDr layout with CXR-LT names: pasted boxes (rad_id "dadam") and, when the
                      base data set's boxes are given, the originals' boxes (also kept on the
                      synthetic images made from them)

Each image is written under a temporary name and renamed; its record is appended to the manifest
(and flushed) only after that. A killed run leaves complete records for finished images only; the
next run reads them, redoes the rest, and each image appears once. Every item has its own seed, so
the images do not depend on the number of workers or the order they finish in.

De-identification goes through ``fpsm_core.io.deid``: a destination or patch source whose header
says BurnedInAnnotation YES is refused (``check_exportable``), images carry pixels only, and the row
rows carry only the CXR-LT columns. Their ``subject_id`` / ``study_id`` (research ids in CXR-LT) are
kept, so patient-wise splits keep a synthetic image with its destination's patient, unless
``pseudonymize`` replaces them by ``deidentify_metadata``'s pseudonyms (the same ones
``fpsm_core.io.deid`` gives that patient in DICOM exports). The manifest names the source images
(it is the reproducibility record): keep it with the originals, not with a shared data set.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.composition import ComposeCache, Composition, PatchSpec, compose
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.importer import load_display
from fpsm_core.dadam.library import PatchLibrary, read_patch_png
from fpsm_core.dadam.paths import (
    confined,
    id_problem,
    plain_relative,
    remove_stale_temps,
    temp_name,
)
from fpsm_core.dadam.planner import Plan, PlanItem, PlannedPatch, read_plan
from fpsm_core.dadam.table import META_COLUMNS, LabelTable, read_labels_csv, write_labels_csv
from fpsm_core.labels import LABEL_INDEX, LABELS

MANIFEST = "manifest.jsonl"
LABELS_CSV = "labels.csv"
BOXES_CSV = "boxes.csv"
IMAGES_DIR = "images"
BOX_COLUMNS = ("image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max")
DADAM_READER = "dadam"


@dataclass(frozen=True)
class GenerateReport:
    """What a generation run did.

    Attributes:
        out: Output folder.
        generated: Images made in this run.
        resumed: Images found finished from an earlier run.
        failed: One sentence per item that could not be made (retried by the next run).
        labels_csv: The labels CSV written.
        boxes_csv: The boxes CSV written.
        manifest: The manifest.
        seconds: Wall time of this run.
    """

    out: Path
    generated: int
    resumed: int
    failed: tuple[str, ...]
    labels_csv: Path
    boxes_csv: Path
    manifest: Path
    seconds: float


# -- worker side ---------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(settings: Mapping[str, Any], patches: Mapping[int, Mapping[str, Any]]) -> None:
    cv2.setNumThreads(1)
    _W.clear()
    _W.update(settings)
    _W["patches"] = patches
    _patch_pixels.cache_clear()


@lru_cache(maxsize=4096)
def _patch_pixels(file: str) -> np.ndarray:
    return read_patch_png(Path(file))


def _load_dest(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    return load_display(path, allow_burned_in=bool(_W.get("allow_burned_in")))


def _lung_mask_for(item: PlanItem, dest_path: Path) -> np.ndarray | None:
    return lung_mask_in(_W.get("lung_dir"), item, dest_path)


def lung_mask_in(folder: str | Path | None, item: PlanItem, dest_path: Path) -> np.ndarray | None:
    """The item's lung mask from a mask folder (``<dicom_id>.png`` or the image's own name)."""
    if not folder:
        return None
    for candidate in (
        Path(folder) / f"{item.dest.get('dicom_id', '')}.png",
        Path(folder) / Path(item.dest.get("path", "")).with_suffix(".png"),
        Path(folder) / f"{dest_path.stem}.png",
    ):
        if candidate.is_file():
            mask = cv2.imread(str(candidate), cv2.IMREAD_GRAYSCALE)
            if mask is not None:
                return mask
    return None


def make_item(item: PlanItem) -> dict[str, Any]:
    """Compose, write and describe one planned image (runs in a worker process)."""
    from fpsm_core.io import ImageLoadError
    from fpsm_core.io.deid import DeidentificationError

    out = Path(_W["out"])
    dest_path = confined(_W["images_root"], item.dest["path"])
    if dest_path is None:  # a symlink out of --images (the plan's text was checked when read)
        return {"kind": "failed", "id": item.id, "error": "its destination is outside --images"}
    try:
        dest, spacing = _load_dest(dest_path)
        specs = [
            planned_spec(
                p, _patch_pixels(_W["patches"][p.patch_id]["file"]), _W["patches"][p.patch_id]
            )
            for p in item.patches
        ]
        mask = _lung_mask_for(item, dest_path)
        result = compose_item(item, dest, spacing, specs, mask, _W["lung"] == "estimate")
    except (ImageLoadError, DeidentificationError, DadamError, OSError) as exc:
        return {"kind": "failed", "id": item.id, "error": str(exc)}
    fmt = _W["image_format"]
    if fmt == "auto":
        fmt = "jpg" if dest_path.suffix.lower() in (".jpg", ".jpeg") else "png"
    rel = f"{IMAGES_DIR}/{item.id}.{fmt}"
    _write_image(out / rel, result.image, fmt, int(_W["png_compression"]), int(_W["jpeg_quality"]))
    return {
        "kind": "record",
        "id": item.id,
        "index": item.index,
        "seed": item.seed,
        "mode": item.mode,
        "target": item.target,
        "dest_row": item.dest_row,
        "dest": dict(item.dest),
        "image": rel,
        "size": [int(dest.shape[1]), int(dest.shape[0])],
        "dest_spacing_mm": list(spacing) if spacing else None,
        "dest_labels": list(item.dest_labels),
        "labels": list(item.labels),
        "patches": [
            {
                "patch_id": pl.patch_id,
                "label": pl.label,
                "region": list(pl.region),
                "box": list(pl.box),
                "alpha": pl.alpha,
                "scale": round(pl.scale, 5),
                "offset": round(pl.offset, 3),
                "placed_in": pl.placed_in,
                **_planned_fields(planned),
            }
            for pl, planned in zip(result.placements, item.patches, strict=True)
        ],
    }


def _planned_fields(p: PlannedPatch) -> dict[str, Any]:
    """What the plan asked of a patch, kept in its record so the recipe can be read back alone."""
    planned = p.to_json()
    return {"center": planned["center"], "planned_scale": p.scale} | {
        k: planned[k] for k in ("feather", "match") if k in planned
    }


def planned_spec(p: PlannedPatch, pixels: np.ndarray, meta: Mapping[str, Any]) -> PatchSpec:
    """The ``PatchSpec`` of a planned patch, from its pixels and library record (``_patch_table``)."""
    return PatchSpec(
        pixels=pixels,
        box=tuple(meta["box"]),  # type: ignore[arg-type]
        label=p.label,
        center=p.center,
        alpha=p.alpha,
        scale=p.scale,
        spacing_mm=tuple(meta["spacing_mm"]) if meta["spacing_mm"] else None,  # type: ignore[arg-type]
        image_size=tuple(meta["image_size"]),  # type: ignore[arg-type]
        patch_id=p.patch_id,
        feather=p.feather,
        match=p.match,
    )


def compose_item(
    item: PlanItem,
    dest: np.ndarray,
    spacing: tuple[float, float] | None,
    specs: Sequence[PatchSpec],
    mask: np.ndarray | None,
    estimate_lungs: bool,
    cache: ComposeCache | None = None,
) -> Composition:
    """Compose one plan item exactly as ``generate`` does (its seed drives any re-placement).

    ``cache`` keeps the placement-independent work between calls (the studio's drag); the image
    is the same with or without it.
    """
    if mask is not None and mask.shape != dest.shape:
        mask = cv2.resize(mask, (dest.shape[1], dest.shape[0]), interpolation=cv2.INTER_NEAREST)
    return compose(
        dest,
        specs,
        dest_spacing=spacing,
        lung_mask=mask,
        estimate_lungs=estimate_lungs,
        rng=np.random.default_rng(item.seed),
        cache=cache,
    )


def _write_image(path: Path, image: np.ndarray, fmt: str, compression: int, quality: int) -> None:
    if fmt == "jpg":
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    else:
        ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise DadamError(path, f"could not be encoded as {fmt.upper()}")
    tmp = temp_name(path)  # unique: two runs into one folder never share a temporary file
    with tmp.open("wb") as fh:
        fh.write(buf.tobytes())
    os.replace(tmp, path)


# -- main side -----------------------------------------------------------------------------------
def _plan_digest(plan_path: Path) -> str:
    h = hashlib.sha256()
    with plan_path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _read_manifest(path: Path) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """Header and finished records; a torn last line (a killed run) is cut off the file."""
    if not path.is_file():
        return None, {}
    data = path.read_bytes()
    good = data.rfind(b"\n") + 1
    if good < len(data):
        with path.open("r+b") as fh:
            fh.truncate(good)
    try:
        lines = data[:good].decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DadamError(path, "is not a DADAM manifest (not UTF-8 text)") from None
    if not lines:
        return None, {}
    records: dict[str, dict[str, Any]] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() and number > 1:
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            rec = None
        ok = isinstance(rec, dict) and (
            rec.get("kind") == "dadam-manifest"
            if number == 1
            else rec.get("kind") != "record" or isinstance(rec.get("id"), str)
        )
        if not ok:
            raise DadamError(
                path,
                f"line {number} is not a manifest record; nothing was changed (move the folder "
                "away to start over, or remove that line to resume)",
            )
        if number > 1 and rec.get("kind") == "record":  # type: ignore[union-attr]
            records[rec["id"]] = rec  # type: ignore[index]
    return json.loads(lines[0]), records


def _read_checked_plan(path: Path) -> Plan:
    """``read_plan``, then the checks that keep ``generate`` inside its folders.

    A random file is one sentence (not a UnicodeDecodeError); a plan whose header counts more items
    than it holds (a truncated copy) is refused; every item id must be a plain file name (it names
    ``images/<id>.png`` under ``--out``) and every destination path must stay inside ``--images``.
    """
    try:
        plan = read_plan(path)
    except (UnicodeDecodeError, RecursionError):
        raise DadamError(path, "is not a DADAM plan (not a JSON-lines text file)") from None
    except AttributeError:  # an item whose nested fields are not objects (planner's from_json)
        raise DadamError(path, "holds a line that is not a valid plan item") from None
    expected = plan.header.get("n_items")
    if isinstance(expected, int) and expected != len(plan.items):
        raise DadamError(
            path,
            f"is truncated or edited: its header says {expected} items but it holds "
            f"{len(plan.items)}",
        )
    seen: set[str] = set()
    for item in plan.items:
        why = id_problem(item.id)
        if why:
            raise DadamError(path, f"item {item.index}: {why}")
        if item.id in seen:
            raise DadamError(path, f"names item {item.id} twice")
        seen.add(item.id)
        dest = item.dest.get("path", "")
        if not plain_relative(dest):
            raise DadamError(
                path, f"item {item.id}: destination {str(dest)[:80]!r} is not inside --images"
            )
    return plan


def _patch_table(library: PatchLibrary, items: Sequence[PlanItem]) -> dict[int, dict[str, Any]]:
    table: dict[int, dict[str, Any]] = {}
    for item in items:
        for p in item.patches:
            if p.patch_id in table:
                continue
            try:
                patch = library.get(p.patch_id)
            except KeyError:
                raise DadamError(
                    library.root, f"has no patch {p.patch_id}, which the plan uses (item {item.id})"
                ) from None
            table[p.patch_id] = {
                "file": str(patch.file),
                "box": list(patch.box),
                "spacing_mm": list(patch.spacing_mm) if patch.spacing_mm else None,
                "image_size": list(patch.image_size),
                "label": patch.label,
            }
    return table


def generate(
    plan: str | Path,
    library: str | Path | PatchLibrary,
    images_root: str | Path,
    out: str | Path,
    *,
    workers: int = 2,
    lung: str | Path = "estimate",
    base_boxes: str | Path | None = None,
    labels_csv: str | Path | None = None,
    include_original: bool = True,
    pseudonymize: bool = False,
    allow_burned_in: bool = False,
    image_format: str = "auto",
    png_compression: int = 1,
    jpeg_quality: int = 95,
    salt: str | bytes | None = None,
    progress: Callable[[int, int], None] | None = None,
    limit: int | None = None,
) -> GenerateReport:
    """Make (or finish making) the augmented data set a plan describes.

    Args:
        plan: The plan file (JSON lines from ``write_plan``).
        library: The patch library the plan was made from.
        images_root: Folder the labels CSV's ``path`` column is relative to.
        out: Output folder (created; a folder of another plan is refused).
        workers: Processes (1 = in this process).
        lung: "estimate" (lung field from each image; default), "template" (a fixed template),
            or a folder of lung masks named ``<dicom_id>.png`` (nonzero = lung).
        base_boxes: The base data set's boxes (VinDr layout, CXR-LT names), copied to the
            output for the original rows and onto synthetic images made from them.
        labels_csv: The base labels CSV (default: the one recorded in the plan).
        include_original: Put the original rows in ``labels.csv`` too (the augmented set); off:
            synthetic rows only.
        pseudonymize: Replace ``subject_id`` / ``study_id`` of synthetic rows by the io
            pseudonyms (implies synthetic rows only).
        allow_burned_in: Use images whose header says BurnedInAnnotation YES.
        image_format: "auto" (JPEG for JPEG destinations such as MIMIC-CXR-JPG, else PNG: a
            synthetic image should not be told apart by its compression), "png" or "jpg".
        png_compression: zlib level 0-9 of the output PNGs (1: fast, about 10 % larger than 9).
        jpeg_quality: Quality of the output JPEGs (95, as MIMIC-CXR-JPG).
        salt: De-identification salt (default: the user's, see ``fpsm_core.io.deid``).
        progress: Called with (images finished, images planned).
        limit: Make at most this many new images in this run (the rest wait for the next run).

    Returns:
        What was made.

    Raises:
        DadamError: missing inputs, or an output folder that belongs to another plan.
    """
    t0 = time.perf_counter()
    plan_path = Path(plan)
    the_plan: Plan = _read_checked_plan(plan_path)
    out = Path(out)
    images_root = Path(images_root)
    if not images_root.is_dir():
        raise DadamError(images_root, "images folder not found")
    lung_mode, lung_dir = (
        (str(lung), None) if str(lung) in ("estimate", "template") else ("mask", str(lung))
    )
    if image_format not in ("auto", "png", "jpg"):
        raise DadamError(None, f"unknown image format {image_format!r}; expected auto, png or jpg")
    if lung_dir is not None and not Path(lung_dir).is_dir():
        raise DadamError(lung_dir, "lung mask folder not found")
    digest = _plan_digest(plan_path)
    (out / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST
    header, done = _read_manifest(manifest)
    if header is not None and header.get("plan_sha256") != digest:
        raise DadamError(
            out, "holds the output of another plan (its manifest names a different plan)"
        )
    for folder in (out, out / IMAGES_DIR):  # a killed run's temporaries; a live run's stay
        remove_stale_temps(folder)
    if header is None:
        header = {
            "kind": "dadam-manifest",
            "version": 1,
            "plan": str(plan_path),
            "plan_sha256": digest,
            "plan_header": dict(the_plan.header),
            "images_root": str(images_root),
            "lung": lung_mode if lung_dir is None else f"mask:{lung_dir}",
            "deidentification": "pixels only; BurnedInAnnotation refused; "
            + ("ids pseudonymized" if pseudonymize else "research ids kept"),
        }
        with manifest.open("w", encoding="utf-8") as fh:
            fh.write(json.dumps(header, sort_keys=True) + "\n")
    lib = library if isinstance(library, PatchLibrary) else PatchLibrary(library, create=False)
    try:
        todo = [it for it in the_plan.items if it.id not in done]
        if limit is not None:
            todo = todo[: max(int(limit), 0)]
        patches = _patch_table(lib, todo)
    finally:
        if lib is not library:
            lib.close()
    settings = {
        "out": str(out),
        "images_root": str(images_root),
        "lung": lung_mode,
        "lung_dir": lung_dir,
        "image_format": image_format,
        "png_compression": int(png_compression),
        "jpeg_quality": int(jpeg_quality),
        "allow_burned_in": allow_burned_in,
    }
    resumed = len(done)
    total = len(the_plan.items)
    failed: list[str] = []
    generated = 0
    with manifest.open("a", encoding="utf-8") as fh:
        for rec in _run(todo, settings, patches, workers):
            if rec["kind"] == "failed":
                failed.append(f"{rec['id']}: {rec['error']}")
            else:
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                done[rec["id"]] = rec
                generated += 1
            if progress is not None:
                progress(len(done), total)
    table = read_labels_csv(labels_csv or the_plan.header.get("sources", {}).get("labels_csv", ""))
    labels_path, boxes_path = _write_tables(
        out, the_plan, done, table, images_root, base_boxes, include_original and not pseudonymize,
        pseudonymize, salt,
    )  # fmt: skip
    return GenerateReport(
        out, generated, resumed, tuple(failed), labels_path, boxes_path, manifest,
        time.perf_counter() - t0,
    )  # fmt: skip


def _run(
    todo: Sequence[PlanItem],
    settings: Mapping[str, Any],
    patches: Mapping[int, Mapping[str, Any]],
    workers: int,
) -> Iterator[dict[str, Any]]:
    if not todo:
        return
    if workers <= 1:
        _init_worker(settings, patches)
        for item in todo:
            yield make_item(item)
        return
    ctx = mp.get_context("spawn")  # no fork: callers may hold threads (Qt, torch)
    chunk = max(1, min(16, len(todo) // (workers * 8) or 1))
    with ctx.Pool(
        workers, initializer=_init_worker, initargs=(dict(settings), dict(patches))
    ) as pool:
        yield from pool.imap_unordered(make_item, todo, chunksize=chunk)


def _write_tables(
    out: Path,
    plan: Plan,
    done: Mapping[str, Mapping[str, Any]],
    table: LabelTable,
    images_root: Path,
    base_boxes: str | Path | None,
    include_original: bool,
    pseudonymize: bool,
    salt: str | bytes | None,
) -> tuple[Path, Path]:
    from fpsm_core.io.deid import deidentify_metadata

    originals: dict[str, list[tuple[str, str, float, float, float, float]]] = {}
    if base_boxes is not None:
        for b in read_boxes(base_boxes, "fpsm", readers="keep").boxes:
            originals.setdefault(b.image_id, []).append(
                (b.reader or "", b.label, b.x0, b.y0, b.x1, b.y1)
            )

    def rows() -> Iterator[tuple[Mapping[str, str], Sequence[float], int]]:
        if include_original:
            for meta, y, syn in zip(table.meta, table.values, table.synthetic, strict=True):
                row = dict(meta)
                row["path"] = os.path.relpath(images_root / meta["path"], out)
                yield row, y.tolist(), int(syn)  # label values as read: soft labels stay soft
        for item in plan.items:
            rec = done.get(item.id)
            if rec is None:
                continue
            row = {c: str(rec["dest"].get(c, "")) for c in META_COLUMNS}
            row["dicom_id"] = item.id
            row["path"] = rec["image"]
            if pseudonymize:
                pseudo = deidentify_metadata(
                    {"PatientID": row["subject_id"], "StudyInstanceUID": row["study_id"]}, salt=salt
                )
                row["subject_id"], row["study_id"] = pseudo["PatientID"], pseudo["StudyInstanceUID"]
            y = [0] * len(LABELS)
            for name in rec["labels"]:
                y[LABEL_INDEX[name]] = 1
            yield row, y, 1

    labels_path = out / LABELS_CSV
    write_labels_csv(labels_path, rows())
    boxes_path = out / BOXES_CSV
    tmp = temp_name(boxes_path)
    import csv

    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(BOX_COLUMNS)
        if include_original:
            for meta in table.meta:
                for reader, label, x0, y0, x1, y1 in originals.get(meta["dicom_id"], ()):
                    writer.writerow([meta["dicom_id"], reader, label, x0, y0, x1, y1])
        for item in plan.items:
            rec = done.get(item.id)
            if rec is None:
                continue
            for reader, label, x0, y0, x1, y1 in originals.get(item.dest.get("dicom_id", ""), ()):
                writer.writerow([item.id, reader, label, x0, y0, x1, y1])
            for p in rec["patches"]:
                writer.writerow([item.id, DADAM_READER, p["label"], *p["box"]])
    os.replace(tmp, boxes_path)
    return labels_path, boxes_path

"""Box editing for the patch editor's source view: move, resize, re-class, draw, list boxes.

A box edit re-cuts the patch from the displayed image with the importer's own cut
(``importer.crop_box`` on ``importer.display_pixels``), so an edited patch is exactly what a fresh
import of the new box would give. The new PNG is written atomically under its content hash; the old
one stays on disk, so undo only has to point the row back at it. Each edit is one recorded change
set (field ``geometry``, and ``label`` when the class changes) plus a row in ``edits``: who, when,
old box and class -> new ones, the provenance of a hand-made box. The box a reader drew stays in
``provenance``, so a re-import never overwrites an edit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fpsm_core.dadam.curation import ChangeSet, Update, apply_updates
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.importer import DEFAULT_MARGIN, crop_box, display_pixels, load_display

if TYPE_CHECKING:
    import sqlite3

    from fpsm_core.dadam.library import Patch, PatchLibrary
    from fpsm_core.io import XRayImage


@dataclass(frozen=True)
class SourceBox:
    """One box to draw on a source image.

    Attributes:
        patch_id: The patch the box belongs to.
        kind: "patch" (the patch's current box: the one to edit) or "reader" (a box as a reader
            drew it, from provenance).
        label: The patch's CXR-LT class.
        box: (x0, y0, x1, y1) in source image pixels.
        reader: The reader ("" for a patch box or an unknown reader).
        source_label: The class as the source named it ("" for a patch box).
        state: The patch's curation state.
        edited: Whether the patch's box was edited by hand.
        provenance_id: The provenance row (None for a patch box).
        dataset: The data set of the box (the reader's, or the patch's).
        image_id: The image id of the box.
    """

    patch_id: int
    kind: str
    label: str
    box: tuple[float, float, float, float]
    reader: str
    source_label: str
    state: str
    edited: bool
    provenance_id: int | None = None
    dataset: str = ""
    image_id: str = ""


@dataclass(frozen=True)
class Edit:
    """One hand edit of a patch's box or class."""

    id: int
    patch_id: int
    batch: int
    user: str
    time: float
    old_box: tuple[float, float, float, float]
    new_box: tuple[float, float, float, float]
    old_label: str
    new_label: str


def check_label(label: str) -> str:
    """The CXR-LT spelling of a label (case forgiven); DadamError for anything else."""
    from fpsm_core.labels import UnknownLabelError, to_cxrlt

    try:
        name = to_cxrlt(str(label), "cxrlt")
    except UnknownLabelError:
        name = None
    if name is None:
        raise DadamError(None, f"{label!r} is not one of the 26 CXR-LT labels")
    return name


def _pixels(
    image: XRayImage | np.ndarray | None, path: str | Path, what: str
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Displayed (H, W) uint8 pixels and their spacing (None when unknown or not given)."""
    if isinstance(image, np.ndarray):
        pix = image if image.ndim == 2 else image[..., :3].mean(axis=2)
        return np.ascontiguousarray(pix, dtype=np.uint8), None
    if image is not None:
        return display_pixels(image), image.spacing_mm
    from fpsm_core.io import ImageLoadError
    from fpsm_core.io.deid import DeidentificationError

    p = Path(path) if str(path) else None
    if p is None or not p.is_file():
        raise DadamError(
            p, f"the source image of {what} is not found (moved?); open it and pass it"
        )
    try:
        return load_display(p, allow_burned_in=True)  # curating, not exporting
    except (ImageLoadError, DeidentificationError, OSError) as exc:
        raise DadamError(p, f"the source image of {what} cannot be loaded ({exc})") from None


def _cut(
    lib: PatchLibrary,
    pixels: np.ndarray,
    box: Sequence[float],
    label: str,
    spacing: tuple[float, float] | None,
    margin: float | None,
    what: str,
) -> dict[str, Any]:
    """Cut a box, store its PNG, and return the geometry columns."""
    from fpsm_core.dadam.patch_files import content_hash, patch_geometry, write_png_atomic

    h, w = pixels.shape
    bx = tuple(float(v) for v in box)
    if len(bx) != 4:
        raise ValueError(f"a box is (x0, y0, x1, y1), got {box!r}")
    x0, y0, x1, y1 = min(bx[0], bx[2]), min(bx[1], bx[3]), max(bx[0], bx[2]), max(bx[1], bx[3])
    cut = crop_box(pixels, (x0, y0, x1, y1), DEFAULT_MARGIN if margin is None else margin)
    if cut is None:
        raise DadamError(
            None,
            f"{what}: the box ({x0:.0f}, {y0:.0f}, {x1:.0f}, {y1:.0f}) lies mostly outside the "
            f"{w}x{h} image",
        )
    crop, inner, rect = cut
    sha = content_hash(crop, inner, label)
    rel = Path("patches") / sha[:2] / f"{sha}.png"
    if not (lib.root / rel).is_file():
        write_png_atomic(lib.root / rel, crop)
    cx = (rect[0] + 0.5 * (inner[0] + inner[2])) / w
    cy = (rect[1] + 0.5 * (inner[1] + inner[3])) / h
    return patch_geometry(
        crop, inner, rel.as_posix(), sha, spacing, (x0, y0, x1, y1), (w, h), (cx, cy)
    )


def _same_crop(lib: PatchLibrary, sha: str, patch_id: int | None) -> int | None:
    row = lib.connection.execute(
        "SELECT id FROM patches WHERE sha256=? AND id IS NOT ?", (sha, patch_id)
    ).fetchone()
    return None if row is None else int(row[0])


def update_box(
    lib: PatchLibrary,
    patch_id: int,
    box: Sequence[float],
    new_label: str | None,
    *,
    image: XRayImage | np.ndarray | None,
    margin: float | None,
) -> ChangeSet:
    """See :meth:`PatchLibrary.update_box`."""
    try:
        patch = lib.get(patch_id)
    except KeyError:
        raise DadamError(lib.db_path, f"has no patch {patch_id}") from None
    label = patch.label if new_label is None else check_label(new_label)
    what = f"patch {patch.id}"
    pixels, spacing = _pixels(image, patch.image_path, what)
    if (pixels.shape[1], pixels.shape[0]) != patch.image_size:
        raise DadamError(
            None,
            f"{what}: the image given is {pixels.shape[1]}x{pixels.shape[0]} pixels but the "
            f"patch was cut from a {patch.image_size[0]}x{patch.image_size[1]} image",
        )
    geometry = _cut(lib, pixels, box, label, spacing or patch.spacing_mm, margin, what)
    other = _same_crop(lib, geometry["sha256"], patch.id)
    if other is not None:
        raise DadamError(None, f"{what}: the edited box gives the same crop as patch {other}")
    geometry["edited"] = 1
    new_box = (geometry["src_x0"], geometry["src_y0"], geometry["src_x1"], geometry["src_y1"])
    updates: list[Update] = [(patch.id, "geometry", lambda _old: geometry)]
    if label != patch.label:
        updates.append((patch.id, "label", lambda _old: label))

    def record(db: sqlite3.Connection, batch: int) -> None:
        db.execute(
            "INSERT INTO edits(patch_id, batch, user, ts, old_box, new_box, old_label, new_label)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (patch.id, batch, lib.user, time.time(), json.dumps(list(patch.source_box)),
             json.dumps(list(new_box)), patch.label, label),
        )  # fmt: skip

    return apply_updates(lib, "update_box", updates, extra=record)


def add_box(
    lib: PatchLibrary,
    image_path: str | Path,
    dataset: str,
    box: Sequence[float],
    label: str,
    *,
    reader: str,
    image: XRayImage | np.ndarray | None,
    image_id: str | None,
    spacing_mm: tuple[float, float] | None,
    margin: float | None,
) -> ChangeSet:
    """See :meth:`PatchLibrary.add_box`; an identical crop already stored is returned unchanged."""
    name = check_label(label)
    path = Path(image_path)
    pixels, spacing = _pixels(image, path, f"the new {name} box")
    spacing = spacing_mm or spacing
    geometry = _cut(lib, pixels, box, name, spacing, margin, f"the new {name} box")
    existing = _same_crop(lib, geometry["sha256"], None)
    if existing is not None:
        return ChangeSet(None, "add_box", (existing,))
    now = time.time()
    src = (geometry["src_x0"], geometry["src_y0"], geometry["src_x1"], geometry["src_y1"])
    image_key = image_id or path.stem
    with lib.transaction() as db:
        cols = {
            **geometry,
            "label": name,
            "created": now,
            "updated": now,
            "dataset": dataset,
            "image_id": image_key,
            "image_path": str(path),
            "deleted": 1,  # born deleted, then revealed by the recorded change: undo hides it
            "edited": 1,
        }
        cur = db.execute(
            f"INSERT INTO patches({', '.join(cols)}) VALUES ({','.join('?' * len(cols))})",
            list(cols.values()),
        )
        pid = int(cur.lastrowid or 0)
        db.execute(
            "INSERT OR IGNORE INTO provenance(patch_id, dataset, image_id, image_path, reader, "
            "source_label, x0, y0, x1, y1) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (pid, dataset, image_key, str(path), reader, name, *src),
        )
        cs = apply_updates(lib, "add_box", [(pid, "deleted", lambda _old: False)])
    return cs


def source_boxes(
    lib: PatchLibrary,
    dataset: str | None,
    image_id: str | None,
    *,
    image_path: str | Path | None,
) -> list[SourceBox]:
    """See :meth:`PatchLibrary.source_boxes`: patch boxes first, then every reader's box."""
    db = lib.connection
    if image_path is not None:
        rows = db.execute(
            "SELECT patch_id FROM provenance WHERE image_path=? UNION "
            "SELECT id FROM patches WHERE image_path=?",
            (str(image_path), str(image_path)),
        )
    elif image_id is not None:
        rows = db.execute(
            "SELECT patch_id FROM provenance WHERE image_id=? AND (? IS NULL OR dataset=?) "
            "UNION SELECT id FROM patches WHERE image_id=? AND (? IS NULL OR dataset=?)",
            (image_id, dataset, dataset) * 2,
        )
    else:
        raise ValueError("source_boxes needs an image_id or an image_path")
    patches: list[Patch] = [
        p for p in lib.get_many(sorted(int(r[0]) for r in rows)) if not p.deleted
    ]
    out = [
        SourceBox(
            p.id,
            "patch",
            p.label,
            p.source_box,
            "",
            "",
            p.state,
            p.edited,
            None,
            p.dataset,
            p.image_id,
        )  # fmt: skip
        for p in patches
    ]
    for p in patches:
        for prov in lib.provenance(p.id):
            out.append(
                SourceBox(
                    p.id,
                    "reader",
                    p.label,
                    prov.box,
                    prov.reader,
                    prov.source_label,
                    p.state,
                    p.edited,
                    prov.id,
                    prov.dataset,
                    prov.image_id,
                )  # fmt: skip
            )
    return out


def edits(lib: PatchLibrary, patch_id: int) -> list[Edit]:
    """See :meth:`PatchLibrary.edits`."""
    return [
        Edit(
            int(r[0]),
            int(r[1]),
            int(r[2]),
            str(r[3]),
            float(r[4]),
            tuple(json.loads(r[5])),
            tuple(json.loads(r[6])),
            str(r[7]),
            str(r[8]),
        )  # fmt: skip
        for r in lib.connection.execute(
            "SELECT id, patch_id, batch, user, ts, old_box, new_box, old_label, new_label "
            "FROM edits WHERE patch_id=? ORDER BY id",
            (int(patch_id),),
        )
    ]

"""A composition recipe: one synthetic image as the studio makes it and ``generate`` reproduces it.

A :class:`Recipe` names a target image (relative to the images folder, as a labels CSV's ``path``),
its labels, the patches to paste (centre as fractions of the image, size factor, alpha, feather,
intensity matching) and a seed. It *is* a plan item: :meth:`Recipe.to_plan_item` writes the JSONL
line ``fpsm dadam plan`` writes, :meth:`Recipe.from_plan_item` reads one back, and
:func:`append_to_plan` adds it to a plan file. :func:`render` composes it through the very functions
``generate`` uses (``planned_spec`` and ``compose_item`` of :mod:`fpsm_core.dadam.generator`), so
its pixels equal those of the generated PNG bit for bit. :func:`label_vector` is the label row
``generate`` writes for it (what training sees); :func:`recipe_for_generated` reads back the recipe
of any image of a DADAM output folder from its manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fpsm_core.dadam.composition import ComposeCache, Composition, PatchSpec
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.generator import (
    IMAGES_DIR,
    MANIFEST,
    compose_item,
    lung_mask_in,
    planned_spec,
)
from fpsm_core.dadam.library import PatchLibrary, read_patch_png
from fpsm_core.dadam.paths import confined, id_problem, plain_relative
from fpsm_core.dadam.planner import (
    PLAN_KIND,
    PLAN_VERSION,
    Plan,
    PlanItem,
    PlannedPatch,
    read_plan,
    write_plan,
)
from fpsm_core.dadam.table import META_COLUMNS
from fpsm_core.labels import LABEL_INDEX, LABELS

MODES = ("cutmix", "mixup")
NO_FINDING = "No Finding"


@dataclass(frozen=True)
class RecipePatch:
    """One pasted patch.

    Attributes:
        patch_id: Library id.
        label: Its CXR-LT class.
        center: Lesion centre as fractions of the target (x, y). For lung-field classes the
            composer keeps it when the lesion fits the lung field there, else draws one with the
            recipe's seed (as ``generate`` does).
        scale: Extra size factor on top of the mm-consistent scaling (1 = same size in mm).
        alpha: Blend weight (1 = CutMix; the paper's MixUp uses 0.6).
        feather: Fraction of the margin the feathered edge spans (1 = all; 0 = hard edge).
        match: Shift the patch's grey level to the target around it.
    """

    patch_id: int
    label: str
    center: tuple[float, float]
    scale: float = 1.0
    alpha: float = 1.0
    feather: float = 1.0
    match: bool = True

    def planned(self) -> PlannedPatch:
        return PlannedPatch(
            int(self.patch_id), self.label, (float(self.center[0]), float(self.center[1])),
            float(self.scale), float(self.alpha), float(self.feather), bool(self.match),
        )  # fmt: skip


@dataclass(frozen=True)
class Recipe:
    """One synthetic image: target, patches, seed and mode.

    Attributes:
        target_path: The target image, relative to the images folder (a labels CSV's ``path``).
        target_labels: The target's findings (empty, or "No Finding", for a normal image).
        patches: What to paste, in order (later patches over earlier ones).
        seed: Seed of any re-placement inside the lung field.
        mode: "cutmix" (normal target, alpha 1) or "mixup" (diseased target, blended).
        id: The new image's id (its file name in the output); default: a hash of the recipe.
        target_meta: The target's other CXR-LT metadata columns (``dicom_id``, ``subject_id``...).
        target_row: Row of the target in its labels CSV (-1: not from a CSV).
        grows: The class the image was made to grow (default: the first patch's).
        index: Position in its plan.
    """

    target_path: str
    target_labels: tuple[str, ...]
    patches: tuple[RecipePatch, ...]
    seed: int = 0
    mode: str = "cutmix"
    id: str = ""
    target_meta: Mapping[str, str] = field(default_factory=dict)
    target_row: int = -1
    grows: str = ""
    index: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise DadamError(None, f"recipe mode {self.mode!r} is not one of {list(MODES)}")
        for p in self.patches:
            if p.label not in LABEL_INDEX or p.label == NO_FINDING:
                raise DadamError(None, f"patch {p.patch_id}'s class {p.label!r} is not a finding")
            if not 0.0 < p.alpha <= 1.0:
                raise DadamError(None, f"patch {p.patch_id}: alpha must lie in (0, 1]")
            if p.scale <= 0.0:
                raise DadamError(None, f"patch {p.patch_id}: scale must be positive")
            if not 0.0 <= p.feather <= 1.0:
                raise DadamError(None, f"patch {p.patch_id}: feather must lie in [0, 1]")
        for name in self.target_labels:
            if name not in LABEL_INDEX:
                raise DadamError(None, f"target label {name!r} is not a CXR-LT class")

    @property
    def labels(self) -> tuple[str, ...]:
        """The new image's labels: target's and pasted classes, "No Finding" dropped, CXR-LT order."""
        names = (set(self.target_labels) | {p.label for p in self.patches}) - {NO_FINDING}
        return tuple(n for n in LABELS if n in names)

    def item_id(self) -> str:
        """``id``, or a stable hash of everything that decides the pixels and labels."""
        if self.id:
            return self.id
        body = json.dumps(
            [self.target_path, list(self.labels), [p.planned().to_json() for p in self.patches],
             self.seed, self.mode],
            sort_keys=True,
        )  # fmt: skip
        return "studio-" + hashlib.sha256(body.encode()).hexdigest()[:16]

    def to_plan_item(self, index: int | None = None) -> PlanItem:
        """The plan item (the ``fpsm dadam plan`` JSONL line) that makes this image."""
        dest = {c: str(self.target_meta.get(c, "")) for c in META_COLUMNS}
        dest["path"] = self.target_path
        if not dest.get("dicom_id"):
            dest["dicom_id"] = Path(self.target_path).stem
        grows = self.grows or (self.patches[0].label if self.patches else "")
        return PlanItem(
            id=self.item_id(),
            index=self.index if index is None else int(index),
            seed=int(self.seed),
            mode=self.mode,
            target=grows,
            dest_row=int(self.target_row),
            dest=dest,
            dest_labels=tuple(n for n in LABELS if n in set(self.target_labels)),
            patches=tuple(p.planned() for p in self.patches),
            labels=self.labels,
        )

    @staticmethod
    def from_plan_item(item: PlanItem) -> Recipe:
        """The recipe of a plan item (``to_plan_item`` of it gives the item back)."""
        meta = {k: v for k, v in item.dest.items() if k != "path"}
        return Recipe(
            target_path=str(item.dest.get("path", "")),
            target_labels=tuple(item.dest_labels),
            patches=tuple(
                RecipePatch(p.patch_id, p.label, p.center, p.scale, p.alpha, p.feather, p.match)
                for p in item.patches
            ),
            seed=int(item.seed),
            mode=item.mode,
            id=item.id,
            target_meta=meta,
            target_row=int(item.dest_row),
            grows=item.target,
            index=int(item.index),
        )

    def moved(self, patch: int, center: tuple[float, float]) -> Recipe:
        """This recipe with patch number ``patch`` (position in ``patches``) moved to ``center``."""
        ps = list(self.patches)
        ps[patch] = replace(ps[patch], center=(float(center[0]), float(center[1])))
        return replace(self, patches=tuple(ps), id="")


def label_vector(recipe: Recipe, labels: Sequence[str] = LABELS) -> np.ndarray:
    """The (C,) float32 label row training sees for this image (the row ``generate`` writes).

    The union of the target's findings and the pasted classes is 1, everything else 0, "No Finding"
    included (a pasted image is not normal). A soft label of the target becomes 1, as ``generate``
    writes it: the pasted image shows the finding, whatever the report's certainty was.
    """
    wanted = set(recipe.labels)
    return np.array([1.0 if n in wanted else 0.0 for n in labels], dtype=np.float32)


# -- plan files ----------------------------------------------------------------------------------
def append_to_plan(
    path: str | Path,
    recipe: Recipe,
    *,
    labels_csv: str | Path | None = None,
    library: str | Path | None = None,
) -> PlanItem:
    """Append a recipe to a plan file (created, with a studio header, when missing).

    The header's ``n_items`` is updated and the file rewritten atomically. An output folder
    generated from the plan before the append belongs to the old plan: generate into a new folder.

    Args:
        path: The plan (JSON lines).
        recipe: What to append; its id must not be in the plan yet.
        labels_csv: The base labels CSV (recorded in a new plan's header; ``generate`` reads it).
        library: The patch library (recorded in a new plan's header).

    Returns:
        The item appended (its ``index`` is its position in the plan).

    Raises:
        DadamError: the file is not a plan, or already holds an item with this id.
    """
    path = Path(path)
    if not plain_relative(recipe.target_path):
        raise DadamError(
            None, f"target {recipe.target_path!r} is not a path inside the images folder"
        )
    if path.exists():
        plan = read_plan(path)
        header = dict(plan.header)
        items = list(plan.items)
    else:
        header = {
            "kind": PLAN_KIND,
            "version": PLAN_VERSION,
            "seed": int(recipe.seed),
            "strategy": "studio",
            "sources": {},
        }
        items = []
    item = recipe.to_plan_item(index=len(items))
    why = id_problem(item.id)
    if why:
        raise DadamError(path, f"cannot take the recipe: its {why}")
    if any(it.id == item.id for it in items):
        raise DadamError(path, f"already holds an item {item.id}")
    sources = dict(header.get("sources") or {})
    if labels_csv is not None:
        sources.setdefault("labels_csv", str(labels_csv))
    if library is not None:
        sources.setdefault("library", str(library))
    header["sources"] = sources
    items.append(item)
    header["n_items"] = len(items)
    modes = dict(header.get("modes") or {})
    modes[item.mode] = int(modes.get(item.mode, 0)) + 1
    header["modes"] = modes
    write_plan(Plan(header, tuple(items)), path)
    return item


# -- rendering -----------------------------------------------------------------------------------
def load_target(
    recipe: Recipe, images_root: str | Path, *, allow_burned_in: bool = False
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """The target's display pixels and spacing, read as ``generate`` reads them.

    Raises:
        DadamError: the path leaves the images folder.
        fpsm_core.io.ImageLoadError: the image cannot be read.
    """
    from fpsm_core.dadam.importer import load_display

    dest = confined(images_root, recipe.target_path) if plain_relative(recipe.target_path) else None
    if dest is None:
        raise DadamError(recipe.target_path, f"is not inside the images folder {images_root}")
    return load_display(dest, allow_burned_in=allow_burned_in)


@lru_cache(maxsize=512)
def _pixels(file: str, mtime_ns: int) -> np.ndarray:
    pixels = read_patch_png(Path(file))
    pixels.setflags(write=False)
    return pixels


def patch_specs(recipe: Recipe, library: PatchLibrary) -> list[PatchSpec]:
    """The recipe's patches as ``generate`` builds them (pixels cached per file)."""
    specs = []
    for p in recipe.patches:
        try:
            patch = library.get(p.patch_id)
        except KeyError:
            raise DadamError(library.root, f"has no patch {p.patch_id}") from None
        meta = {
            "box": list(patch.box),
            "spacing_mm": list(patch.spacing_mm) if patch.spacing_mm else None,
            "image_size": list(patch.image_size),
        }
        try:
            stamp = os.stat(patch.file).st_mtime_ns
        except OSError:
            raise DadamError(patch.file, f"patch {p.patch_id}'s file is missing") from None
        specs.append(planned_spec(p.planned(), _pixels(str(patch.file), stamp), meta))
    return specs


def render(
    recipe: Recipe,
    library: PatchLibrary,
    images_root: str | Path | None = None,
    *,
    target: tuple[np.ndarray, tuple[float, float] | None] | None = None,
    lung: str | Path = "estimate",
    lung_mask: np.ndarray | None = None,
    cache: ComposeCache | None = None,
) -> Composition:
    """Compose the recipe exactly as ``fpsm dadam generate`` composes its plan item.

    Args:
        recipe: What to make.
        library: The patch library.
        images_root: The images folder (needed unless ``target`` is given).
        target: The target's (pixels, spacing) from :func:`load_target`, kept by a caller that
            renders many times (a drag in the studio).
        lung: As ``generate``'s ``lung``: "estimate", "template" or a lung mask folder.
        lung_mask: A lung mask to use as is (overrides a folder's).
        cache: Keeps what does not depend on placement between renders (a drag in the studio:
            the resized patch, its weights, the target's lung estimate); same pixels without it.

    Returns:
        The composite (uint8) and where each patch went.
    """
    if target is None:
        if images_root is None:
            raise DadamError(None, "render needs the images folder or the loaded target")
        target = load_target(recipe, images_root)
    dest, spacing = target
    item = recipe.to_plan_item()
    mode = str(lung)
    mask = lung_mask
    if mask is None and mode not in ("estimate", "template") and images_root is not None:
        mask = lung_mask_in(mode, item, Path(images_root) / recipe.target_path)
    specs = patch_specs(recipe, library)
    return compose_item(item, dest, spacing, specs, mask, mode == "estimate", cache)


# -- generated images ----------------------------------------------------------------------------
def _manifest_lines(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DadamError(path.parent, f"is not a DADAM output folder (no {MANIFEST})")
    out: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise DadamError(path, "is not a DADAM manifest (not UTF-8 text)") from None
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a torn last line of a killed run
        if isinstance(rec, dict):
            out.append(rec)
    if not out or out[0].get("kind") != "dadam-manifest":
        raise DadamError(path, "is not a DADAM manifest (its first line is not the header)")
    return out


def recipe_for_generated(output_dir: str | Path, image_name: str) -> Recipe:
    """The recipe of one generated image of a DADAM output folder (read-only).

    Args:
        output_dir: The ``generate`` output folder.
        image_name: The image's id, file name or path (``dadam-5-0000003``, ``...png``).

    Raises:
        DadamError: not an output folder, or no such image in it.
    """
    out = Path(output_dir)
    lines = _manifest_lines(out / MANIFEST)
    name = Path(str(image_name)).name
    stem = Path(name).stem
    record = None
    for rec in lines[1:]:
        if rec.get("kind") != "record":
            continue
        image = Path(str(rec.get("image", ""))).name
        if name in (rec.get("id"), image) or stem == rec.get("id"):
            record = rec
    if record is None:
        raise DadamError(out, f"has no generated image {name!r} in its manifest")
    patches = record.get("patches") or []
    if patches and all("center" in p for p in patches):
        item = PlanItem.from_json(
            record | {"patches": [p | {"scale": p["planned_scale"]} for p in patches]}
        )
        return Recipe.from_plan_item(item)
    return _from_plan_file(lines[0], record, out)


def _from_plan_file(header: Mapping[str, Any], record: Mapping[str, Any], out: Path) -> Recipe:
    """An older manifest (records without the planned fields): the item of the recorded plan."""
    plan_path = Path(str(header.get("plan", "")))
    if not plan_path.is_file():
        raise DadamError(
            out, f"is an older output: its recipe is in the plan {plan_path}, which is not there"
        )
    for item in read_plan(plan_path).items:
        if item.id == record.get("id"):
            return Recipe.from_plan_item(item)
    raise DadamError(plan_path, f"has no item {record.get('id')!r}")


def generated_image_path(output_dir: str | Path, recipe: Recipe) -> Path:
    """Where ``generate`` writes (wrote) this recipe's image in an output folder (PNG)."""
    return Path(output_dir) / IMAGES_DIR / f"{recipe.item_id()}.png"


__all__ = [
    "MODES",
    "Recipe",
    "RecipePatch",
    "append_to_plan",
    "generated_image_path",
    "label_vector",
    "load_target",
    "patch_specs",
    "recipe_for_generated",
    "render",
]

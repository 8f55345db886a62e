"""The composition studio's Qt-free logic: a target film, the patches on it, and their composite.

A composition is a :class:`fpsm_core.dadam.recipe.Recipe` (a plan item), and every pixel the
studio shows comes from ``recipe.render``, which composes through the generator's own functions
(same patch pixels and metadata from the library, the destination's spacing, the lung field
policy, the item's seed): what is seen here is what a generation run writes, bit for bit. The
studio adds only what a person needs to steer it:

- **Placement limited by the lung field.** A lung-field finding dragged outside the field would
  be re-placed at random by ``compose``; the drag is instead snapped to the nearest point where
  the lesion box fits inside the field (``compose`` keeps a centre that fits), so the patch stays
  where the hand left it and the composite is still exactly ``compose``'s.
- **Scale.** By default the patch keeps its size in mm (``compose``'s spacing rule, else the same
  fraction of the film width); the scale factor multiplies that. With mm-consistency off the
  factor is the patch's size in destination pixels over its own, and is turned into the plan's
  ``scale`` so ``generate`` reproduces it.
- **Alpha** per patch (1 for CutMix, the paper's 0.6 for MixUp), **feathering** (the fraction of
  the margin the soft edge spans) and **intensity matching** (the margin's grey-level match).

Targets come from a folder of images or from a labels CSV (CXR-LT layout, its labels shown); a
file that does not load is one :class:`StudioError` sentence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from fpsm_core.dadam.composition import (
    LUNG_FIELD_CLASSES,
    MASK_SIZE,
    ComposeCache,
    Composition,
    PatchSpec,
    estimate_lung_mask,
    patch_scale,
    prior_lung_mask,
    resize_mask,
)
from fpsm_core.dadam.recipe import Recipe, RecipePatch, render
from fpsm_core.errors import FpsmError
from fpsm_core.labels import LABEL_INDEX, LABELS

if TYPE_CHECKING:
    from fpsm_core.dadam.library import Patch, PatchLibrary

CUTMIX, MIXUP = "cutmix", "mixup"
MODES = (CUTMIX, MIXUP)
DEFAULT_ALPHA = {CUTMIX: 1.0, MIXUP: 0.6}
LUNG_POLICIES = ("estimate", "template")
META_KEYS = ("dicom_id", "subject_id", "study_id", "ViewPosition", "ViewCodeSequence_CodeMeaning")
NO_FINDING = LABEL_INDEX["No Finding"]


class StudioError(FpsmError):
    """A studio input a user can fix (a target that does not load, a bad table, a bad plan)."""


# -- targets ---------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class TargetRef:
    """A target image the user can pick: its file and, from a labels CSV, its row and labels.

    Attributes:
        path: The image file.
        name: What the list shows (the ``dicom_id``, else the file name).
        values: (26,) label values in ``LABELS`` order (zeros when no table gives them).
        labelled: Whether a labels CSV gave the values.
        meta: The row's metadata columns (``dicom_id`` ... ``path``; from a folder: made up).
        row: The row in the labels CSV (-1 from a folder).
        labels_csv: The labels CSV it came from, or None.
        images_root: The folder the ``path`` column is relative to.
    """

    path: Path
    name: str
    values: np.ndarray
    labelled: bool
    meta: Mapping[str, str]
    row: int = -1
    labels_csv: Path | None = None
    images_root: Path = Path(".")

    @property
    def positives(self) -> tuple[str, ...]:
        """The classes present (value >= 0.5, the threshold training counts positives with)."""
        return tuple(LABELS[i] for i in np.flatnonzero(self.values >= 0.5))

    def label_text(self) -> str:
        if not self.labelled:
            return "labels unknown (not from a labels CSV)"
        pos = [p for p in self.positives if p != "No Finding"]
        return ", ".join(pos) if pos else "No Finding"


@dataclass(frozen=True, eq=False)
class Target:
    """A loaded target: the reference plus its display pixels, spacing and lung field.

    Attributes:
        ref: What was picked.
        pixels: (H, W) uint8 display image, as ``generate`` loads it.
        spacing: (row, column) spacing in mm, None when unknown.
        lung_estimate: The lung field estimated from the image (MASK_SIZE grid), or None when the
            estimate is not lung-like (``compose`` then uses the template).
    """

    ref: TargetRef
    pixels: np.ndarray
    spacing: tuple[float, float] | None
    lung_estimate: np.ndarray | None


def targets_from_folder(folder: str | Path) -> list[TargetRef]:
    """Every image file under a folder, as targets without labels.

    Raises:
        StudioError: the folder does not exist or holds no image.
    """
    from fpsm_core.io.studies import image_files

    root = Path(folder)
    if not root.is_dir():
        raise StudioError("folder not found", path=root)
    files = image_files(root)
    if not files:
        raise StudioError("holds no image file", path=root)
    out = []
    for f in files:
        rel = f.relative_to(root).as_posix()
        meta = {k: "" for k in META_KEYS} | {"dicom_id": f.stem, "path": rel}
        out.append(
            TargetRef(f, f.name, np.zeros(len(LABELS), np.float32), False, meta, -1, None, root)
        )
    return out


def targets_from_csv(csv: str | Path, image_roots: Sequence[str | Path] = ()) -> list[TargetRef]:
    """The rows of a CXR-LT labels CSV as targets (paths relative to the CSV's folder, else to
    one of ``image_roots``; the first folder that holds the first row's file wins).

    Raises:
        StudioError: the table cannot be read, or no folder holds its images.
    """
    from fpsm_core.dadam.errors import DadamError
    from fpsm_core.dadam.table import read_labels_csv

    path = Path(csv)
    try:
        table = read_labels_csv(path)
    except DadamError as exc:
        raise StudioError(str(exc)) from None
    if len(table) == 0:
        raise StudioError("holds no rows", path=path)
    roots = [path.parent, *(Path(r) for r in image_roots)]
    first = table.meta[0].get("path", "")
    root = next((r for r in roots if (r / first).is_file()), None)
    if root is None:
        raise StudioError(
            f"names images that are in none of {', '.join(str(r) for r in roots)} "
            f"(first: {first!r})",
            path=path,
        )
    out = []
    for i, meta in enumerate(table.meta):
        name = meta.get("dicom_id") or Path(meta.get("path", "")).name
        out.append(
            TargetRef(
                root / meta.get("path", ""),
                name,
                np.asarray(table.values[i], np.float32),
                True,
                dict(meta),
                i,
                path,
                root,
            )
        )
    return out


def load_target(ref: TargetRef) -> Target:
    """Load a target as ``generate`` does (``load_display``), with its lung-field estimate.

    Raises:
        StudioError: the image cannot be read (one sentence naming it).
    """
    from fpsm_core.dadam.errors import DadamError
    from fpsm_core.dadam.importer import load_display
    from fpsm_core.io import ImageLoadError
    from fpsm_core.io.deid import DeidentificationError

    if not ref.path.is_file():
        raise StudioError("image file not found", path=ref.path)
    try:
        pixels, spacing = load_display(ref.path)
    except (ImageLoadError, DeidentificationError, DadamError) as exc:
        raise StudioError(str(exc)) from None
    except (OSError, ValueError, MemoryError) as exc:
        raise StudioError(f"cannot be loaded ({exc})", path=ref.path) from None
    pixels.setflags(write=False)  # never changed: a ComposeCache may keep its lung estimate
    return Target(ref, pixels, spacing, estimate_lung_mask(pixels))


# -- patches --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StudioPatch:
    """One patch placed on the target (what its :class:`RecipePatch` says, plus its geometry).

    Attributes:
        patch_id: Library id.
        label: CXR-LT class.
        box: Lesion box in the crop (x0, y0, x1, y1).
        crop: Crop (width, height).
        spacing_mm: Source spacing, None when unknown.
        image_size: Source image (width, height).
        center: Lesion centre on the target, as fractions (x, y).
        factor: The user's size factor (of the mm-consistent size, or of the raw pixels).
        alpha: Blend weight.
        feather: Fraction of the margin the feathered edge spans (1 = all, 0 = hard edge).
        match: Intensity matching (the patch margin's grey level shifted to the target's).
    """

    patch_id: int
    label: str
    box: tuple[int, int, int, int]
    crop: tuple[int, int]
    spacing_mm: tuple[float, float] | None
    image_size: tuple[int, int]
    center: tuple[float, float]
    factor: float = 1.0
    alpha: float = 1.0
    feather: float = 1.0
    match: bool = True

    @property
    def in_lung(self) -> bool:
        return self.label in LUNG_FIELD_CLASSES

    def with_(self, **changes: object) -> StudioPatch:
        return replace(self, **changes)  # type: ignore[arg-type]


def studio_patch(
    patch: Patch, alpha: float, center: tuple[float, float] | None = None
) -> StudioPatch:
    """A library patch ready to place (at its source position unless ``center`` is given)."""
    c = center if center is not None else (float(patch.rel_center[0]), float(patch.rel_center[1]))
    return StudioPatch(
        int(patch.id),
        patch.label,
        tuple(int(v) for v in patch.box),  # type: ignore[arg-type]
        (int(patch.width), int(patch.height)),
        tuple(patch.spacing_mm) if patch.spacing_mm else None,  # type: ignore[arg-type]
        (int(patch.image_size[0]), int(patch.image_size[1])),
        c,
        1.0,
        float(alpha),
    )


@dataclass(frozen=True)
class StudioSettings:
    """How the composite is made.

    Attributes:
        mode: "cutmix" or "mixup" (the plan item's mode; sets the default alpha).
        mm_consistent: The size factor is relative to the mm-consistent size.
        lung: "estimate" (the lung field from the image, ``generate``'s default), "template", or
            a folder of lung masks (``generate --lung FOLDER``: ``<dicom_id>.png``, nonzero = lung).
        seed: The recipe's seed (``compose`` uses it only to re-place a lesion that cannot stay
            where it is planned).
    """

    mode: str = CUTMIX
    mm_consistent: bool = True
    lung: str = "estimate"
    seed: int = 0

    def with_(self, **changes: object) -> StudioSettings:
        return replace(self, **changes)  # type: ignore[arg-type]


def _size_spec(p: StudioPatch, scale: float = 1.0) -> PatchSpec:
    # Only the geometry matters to patch_scale; the pixels are never read.
    return PatchSpec(
        pixels=np.zeros((1, 1), np.uint8),
        box=p.box,
        label=p.label,
        center=p.center,
        scale=scale,
        spacing_mm=p.spacing_mm,
        image_size=p.image_size,
        patch_id=p.patch_id,
    )


def plan_scale(p: StudioPatch, target: Target, settings: StudioSettings) -> float:
    """The recipe's ``scale``: the factor itself, or the factor over the mm-consistent size."""
    if settings.mm_consistent:
        return float(p.factor)
    base = patch_scale(_size_spec(p), target.pixels.shape, target.spacing)  # type: ignore[arg-type]
    return float(p.factor) / base if base > 0 else float(p.factor)


def to_recipe(
    target: TargetRef, patches: Sequence[StudioPatch], settings: StudioSettings, scale_of: Target
) -> Recipe:
    """The recipe of a composition (a plan item ``fpsm dadam generate`` makes the same pixels from).

    Raises:
        StudioError: the recipe is not valid (an alpha outside (0, 1], a class that is no finding).
    """
    from fpsm_core.dadam.errors import DadamError

    meta = {k: v for k, v in target.meta.items() if k != "path"}
    try:
        return Recipe(
            target_path=str(target.meta.get("path", target.path.name)),
            target_labels=tuple(x for x in target.positives if x != "No Finding"),
            patches=tuple(
                RecipePatch(
                    p.patch_id,
                    p.label,
                    p.center,
                    plan_scale(p, scale_of, settings),
                    p.alpha,
                    p.feather,
                    p.match,
                )
                for p in patches
            ),
            seed=int(settings.seed),
            mode=settings.mode,
            target_meta=meta,
            target_row=target.row,
        )
    except DadamError as exc:
        raise StudioError(str(exc)) from None


def composite(
    target: Target,
    patches: Sequence[StudioPatch],
    settings: StudioSettings,
    library: PatchLibrary,
    cache: ComposeCache | None = None,
) -> Composition:
    """The composite, exactly as ``generate`` makes it for the recipe (``recipe.render``).

    ``cache`` keeps the work a drag does not change (the resized patch, its weights, the lung
    estimate) from one step to the next; the pixels are the same without it.

    Raises:
        StudioError: a patch is missing from the library or its file is gone.
    """
    from fpsm_core.dadam.errors import DadamError

    recipe = to_recipe(target.ref, patches, settings, target)
    mask = target_lung_mask(target, settings.lung) if settings.lung not in LUNG_POLICIES else None
    try:
        return render(
            recipe, library, target=(target.pixels, target.spacing), lung=settings.lung,
            lung_mask=mask, cache=cache,
        )  # fmt: skip
    except DadamError as exc:
        raise StudioError(str(exc)) from None


def lesion_size(p: StudioPatch, target: Target, settings: StudioSettings) -> tuple[float, float]:
    """The lesion box (width, height) on the target as fractions (``compose``'s sizing)."""
    h, w = target.pixels.shape
    s = patch_scale(_size_spec(p, plan_scale(p, target, settings)), (h, w), target.spacing)
    s *= min(1.0, 0.9 * w / (p.crop[0] * s), 0.9 * h / (p.crop[1] * s))
    return ((p.box[2] - p.box[0]) * s / w, (p.box[3] - p.box[1]) * s / h)


def lung_field(target: Target, settings: StudioSettings) -> tuple[np.ndarray, str]:
    """The field lung findings are placed in (MASK_SIZE bool grid) and its kind, as ``compose``."""
    if settings.lung == "estimate" and target.lung_estimate is not None:
        return target.lung_estimate, "lung_estimate"
    if settings.lung not in LUNG_POLICIES:
        mask = target_lung_mask(target, settings.lung)
        if mask is not None:
            return resize_mask(mask), "lung_mask"
    return prior_lung_mask(), "lung_template"


def target_lung_mask(target: Target, folder: str) -> np.ndarray | None:
    """The target's mask from a lung mask folder (``generate --lung FOLDER``), found and sized as
    ``generate`` finds and sizes it; None when the folder has none for this image."""
    h, w = target.pixels.shape
    meta = target.ref.meta
    return _folder_mask(folder, meta.get("dicom_id", ""), meta.get("path", ""),
                        str(target.ref.path), int(h), int(w))  # fmt: skip


@lru_cache(maxsize=16)
def _folder_mask(
    folder: str, dicom_id: str, rel: str, path: str, h: int, w: int
) -> np.ndarray | None:
    from fpsm_core.dadam.generator import lung_mask_in
    from fpsm_core.dadam.planner import PlanItem

    item = PlanItem("studio", 0, 0, CUTMIX, "", -1, {"dicom_id": dicom_id, "path": rel}, (), (), ())
    mask = lung_mask_in(folder, item, Path(path))
    if mask is None:
        return None
    if mask.shape != (h, w):  # compose_item's own resize
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
    mask.setflags(write=False)
    return mask


def allowed_centres(field_mask: np.ndarray, box_rel: tuple[float, float]) -> np.ndarray:
    """MASK_SIZE grid of lesion centres whose box fits the field (``compose``'s own rule)."""
    kw = max(1, int(round(box_rel[0] * MASK_SIZE)))
    kh = max(1, int(round(box_rel[1] * MASK_SIZE)))
    eroded = cv2.erode(field_mask.astype(np.uint8), np.ones((kh, kw), np.uint8)).astype(bool)
    return eroded if eroded.any() else field_mask.astype(bool)


def snap_centre(
    centre: tuple[float, float], field_mask: np.ndarray, box_rel: tuple[float, float]
) -> tuple[float, float]:
    """The centre itself when the lesion fits the field there, else the nearest one that does."""
    ok = allowed_centres(field_mask, box_rel)
    cx = min(max(float(centre[0]), 0.0), 1.0 - 1e-6)
    cy = min(max(float(centre[1]), 0.0), 1.0 - 1e-6)
    px, py = int(cx * MASK_SIZE), int(cy * MASK_SIZE)
    if ok[py, px]:
        return (cx, cy)
    ys, xs = np.nonzero(ok)
    if ys.size == 0:
        return (cx, cy)
    k = int(np.argmin((xs + 0.5 - cx * MASK_SIZE) ** 2 + (ys + 0.5 - cy * MASK_SIZE) ** 2))
    return (float((xs[k] + 0.5) / MASK_SIZE), float((ys[k] + 0.5) / MASK_SIZE))


def place(
    p: StudioPatch, centre: tuple[float, float], target: Target, settings: StudioSettings
) -> StudioPatch:
    """The patch moved to ``centre`` (fractions), kept inside the lung field when it belongs there."""
    if p.in_lung:
        field_mask, _ = lung_field(target, settings)
        centre = snap_centre(centre, field_mask, lesion_size(p, target, settings))
    else:
        centre = (min(max(centre[0], 0.0), 1.0), min(max(centre[1], 0.0), 1.0))
    return p.with_(center=(float(centre[0]), float(centre[1])))


def field_outline(field_mask: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """The lung field's outline as closed (n, 2) polygons in image pixels (x, y)."""
    h, w = shape
    up = cv2.resize(
        field_mask.astype(np.uint8), (MASK_SIZE * 4, MASK_SIZE * 4), interpolation=cv2.INTER_LINEAR
    )
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64) + 0.5
        pts[:, 0] *= w / (MASK_SIZE * 4)
        pts[:, 1] *= h / (MASK_SIZE * 4)
        out.append(np.vstack([pts, pts[:1]]))
    return out


# -- labels and partners ----------------------------------------------------------------------------
def label_vector(recipe: Recipe) -> np.ndarray:
    """What training sees for the composite: the row ``generate`` writes (``recipe.label_vector``)."""
    from fpsm_core.dadam.recipe import label_vector as recipe_labels

    return recipe_labels(recipe)


def partner_for(
    label: str, corr: np.ndarray | None, candidates: Sequence[str] | None = None
) -> str | None:
    """The most correlated finding of ``label`` (``cooc.most_correlated``), among ``candidates``."""
    if corr is None:
        return None
    from fpsm_core.dadam.cooc import most_correlated

    allowed = None if candidates is None else set(candidates)
    return most_correlated(corr, LABELS, candidates=allowed).get(label)


@dataclass(frozen=True)
class Difference:
    """A signed difference image for display: (composite - original) mapped to 0..255 around 128."""

    image: np.ndarray = field(repr=False)
    largest: int


def difference(original: np.ndarray, composite_image: np.ndarray) -> Difference:
    d = composite_image.astype(np.int16) - original.astype(np.int16)
    largest = int(np.abs(d).max()) if d.size else 0
    gain = 127.0 / max(largest, 1)
    img = np.clip(128.0 + d * gain, 0, 255).astype(np.uint8)
    return Difference(img, largest)

"""Cutting patches for the library from box-annotated images.

Images are found under a root folder by the box's image id (as given, with a usual extension added,
or anywhere below the root by file name or stem), loaded through ``fpsm_core.io`` and windowed for
display, so a MONOCHROME1 film or a VOI LUT gives the same picture a reader saw. Each box is cut
with a margin of context (for feathering when the patch is pasted). An import commits image by image
and skips the boxes it already holds, so an interrupted import is finished by running it again; a
worker (the editor's "new library" dialog) passes ``progress=`` and ``cancel=`` (a
``threading.Event`` or a callable), checked between images, and resumes by importing again.
Images whose header says BurnedInAnnotation YES are refused (``fpsm_core.io.deid.check_exportable``)
unless the caller allows them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fpsm_core.dadam.boxes import NODULE_MASS, Box, BoxSet, resolve_box_nodule_mass

if TYPE_CHECKING:
    from fpsm_core.dadam.library import PatchLibrary
    from fpsm_core.io import XRayImage

Cancel = threading.Event | Callable[[], bool]

IMAGE_EXTENSIONS = (".dicom", ".dcm", ".png", ".jpg", ".jpeg", ".tif", ".tiff")
DEFAULT_MARGIN = 0.25
MIN_MARGIN_PX = 6


@dataclass(frozen=True)
class ImportReport:
    """What an import did.

    Attributes:
        boxes: Boxes offered.
        added: New patches stored.
        duplicates: Boxes whose crop was already in the library (a provenance row was added).
        skipped: Boxes already imported before (a resumed import).
        missing_images: Image ids with no file under the root.
        load_errors: One sentence per image that could not be loaded.
        outside: One sentence per box that lies mostly outside its image.
        cancelled: The import stopped early on request (run it again to resume).
        images_done: Images handled before it ended (all of them unless cancelled).
    """

    boxes: int
    added: int
    duplicates: int
    skipped: int
    missing_images: tuple[str, ...]
    load_errors: tuple[str, ...]
    outside: tuple[str, ...]
    cancelled: bool = False
    images_done: int = 0

    def summary(self) -> str:
        lines = [
            f"{self.boxes} boxes: {self.added} new patches, {self.duplicates} duplicates, "
            f"{self.skipped} already imported"
        ]
        if self.cancelled:
            lines.append(f"  cancelled after {self.images_done} images: run it again to resume")
        if self.missing_images:
            lines.append(
                f"  {len(self.missing_images)} images not found (first: {self.missing_images[0]})"
            )
        if self.load_errors:
            lines.append(
                f"  {len(self.load_errors)} images unreadable (first: {self.load_errors[0]})"
            )
        if self.outside:
            lines.append(
                f"  {len(self.outside)} boxes outside their image (first: {self.outside[0]})"
            )
        return "\n".join(lines)


class ImageFinder:
    """Finds a source image file under a root folder from the id a box file uses."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index: dict[str, Path] | None = None

    def find(self, image_id: str) -> Path | None:
        direct = self.root / image_id
        if direct.is_file():
            return direct
        for ext in IMAGE_EXTENSIONS:
            candidate = self.root / f"{image_id}{ext}"
            if candidate.is_file():
                return candidate
        if self._index is None:  # one walk, only when the flat layout fails (NIH images_0xx/)
            self._index = {}
            for p in sorted(self.root.rglob("*")):
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
                    self._index.setdefault(p.name, p)
                    self._index.setdefault(p.stem, p)
        name = Path(image_id).name
        return self._index.get(name) or self._index.get(Path(name).stem)


def load_display(
    path: str | Path, *, allow_burned_in: bool = False
) -> tuple[np.ndarray, tuple[float, float] | None]:
    """An image as the reader saw it: (h, w) uint8 display grey and its spacing.

    8-bit rasters (PNG/JPEG) are taken as stored; DICOM and deeper rasters go through the
    loader's display window (modality LUT, VOI, MONOCHROME1 inversion).

    Args:
        path: The image file.
        allow_burned_in: Accept an image whose header says BurnedInAnnotation YES.

    Raises:
        fpsm_core.io.ImageLoadError: the file cannot be read.
        fpsm_core.io.deid.DeidentificationError: burned-in annotation, not allowed.
    """
    from fpsm_core.io import load_image
    from fpsm_core.io.deid import DeidOptions, check_exportable

    img = load_image(path)
    check_exportable(img, DeidOptions(allow_burned_in=allow_burned_in), str(path))
    return display_pixels(img), img.spacing_mm


def display_pixels(img: XRayImage) -> np.ndarray:
    """An ``XRayImage`` as the reader saw it, (h, w) uint8: the cut that import and editing share.

    8-bit rasters are taken as stored; DICOM and deeper rasters go through the image's display
    window (modality LUT, VOI, MONOCHROME1 inversion); colour becomes its luminance.
    """
    if img.source_format != "dicom" and (img.bits_stored or 8) <= 8 and img.pixels.ndim == 2:
        # 8-bit samples arrive as exact whole numbers in float32: the cast is lossless.
        pix = img.pixels.astype(np.uint8)
    else:
        pix = img.display_uint8()
    if pix.ndim == 3:  # a colour raster: its luminance
        pix = pix.mean(axis=2).astype(np.uint8)
    return pix


def crop_box(
    image: np.ndarray,
    box: tuple[float, float, float, float],
    margin: float = DEFAULT_MARGIN,
    min_margin_px: int = MIN_MARGIN_PX,
) -> tuple[np.ndarray, tuple[int, int, int, int], tuple[int, int, int, int]] | None:
    """Cut a box with a margin of context.

    Args:
        image: (H, W) array.
        box: (x0, y0, x1, y1) in image pixels.
        margin: Margin on each side as a fraction of the box side.
        min_margin_px: Least margin in pixels.

    Returns:
        (crop, box inside the crop, crop rectangle in the image), or None when less than half
        of the box lies inside the image.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    area = max(x1 - x0, 0.0) * max(y1 - y0, 0.0)
    cx0, cy0, cx1, cy1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
    inside = max(cx1 - cx0, 0.0) * max(cy1 - cy0, 0.0)
    if area <= 0 or inside < 0.5 * area:
        return None
    bx0, by0 = int(np.floor(cx0)), int(np.floor(cy0))
    bx1, by1 = max(int(np.ceil(cx1)), bx0 + 1), max(int(np.ceil(cy1)), by0 + 1)
    mx = max(int(round(margin * (bx1 - bx0))), min_margin_px)
    my = max(int(round(margin * (by1 - by0))), min_margin_px)
    px0, py0 = max(bx0 - mx, 0), max(by0 - my, 0)
    px1, py1 = min(bx1 + mx, w), min(by1 + my, h)
    crop = np.ascontiguousarray(image[py0:py1, px0:px1])
    return crop, (bx0 - px0, by0 - py0, bx1 - px0, by1 - py0), (px0, py0, px1, py1)


def import_boxes(
    library: PatchLibrary,
    boxes: BoxSet | Iterable[Box],
    images_root: str | Path,
    *,
    dataset: str | None = None,
    margin: float = DEFAULT_MARGIN,
    spacing_mm: Mapping[str, tuple[float, float]] | None = None,
    allow_burned_in: bool = False,
    progress: Callable[[int, int], None] | None = None,
    cancel: Cancel | None = None,
) -> ImportReport:
    """Cut every box's patch from its image and store it.

    Args:
        library: Destination.
        boxes: A :class:`BoxSet` from ``read_boxes`` or boxes.
        images_root: Folder with the source images.
        dataset: Data set name recorded as provenance (default: the boxes' source format).
        margin: Context margin per side as a fraction of the box side.
        spacing_mm: Image id -> (row, column) spacing, overriding the image header (NIH PNGs
            carry none: see ``boxes.nih_spacing``).
        allow_burned_in: Cut patches from images whose header says BurnedInAnnotation YES
            (refused by default: such pixels may identify the patient).
        progress: Called with (images done, images total) after each image.
        cancel: A ``threading.Event`` or a callable returning True to stop; checked before
            each image, so what was committed stays and a later import resumes from it.

    Returns:
        What was added, skipped, and not found.
    """
    from fpsm_core.io import ImageLoadError
    from fpsm_core.io.deid import DeidentificationError

    box_list = list(boxes.boxes if isinstance(boxes, BoxSet) else boxes)
    by_image: dict[str, list[Box]] = {}
    for b in box_list:
        by_image.setdefault(b.image_id, []).append(b)
    finder = ImageFinder(images_root)
    added = dup = skipped = 0
    missing: list[str] = []
    errors: list[str] = []
    outside: list[str] = []
    total = len(by_image)
    done = 0
    cancelled = False
    for image_id, group in by_image.items():
        if _cancelled(cancel):
            cancelled = True
            break
        done += 1
        name = dataset or group[0].source
        todo = [
            b
            for b in group
            if not library.has_provenance(
                name, image_id, b.reader, b.source_label, (b.x0, b.y0, b.x1, b.y1)
            )
        ]
        skipped += len(group) - len(todo)
        if todo:
            path = finder.find(image_id)
            if path is None:
                missing.append(image_id)
            else:
                try:
                    pixels, header_spacing = load_display(path, allow_burned_in=allow_burned_in)
                except (ImageLoadError, DeidentificationError, OSError) as exc:
                    errors.append(str(exc))
                else:
                    spacing = (spacing_mm or {}).get(image_id, header_spacing)
                    a, d = _import_image(
                        library, name, image_id, path, pixels, spacing, todo, margin, outside
                    )
                    added += a
                    dup += d
        if progress is not None:
            progress(done, total)
    return ImportReport(
        len(box_list),
        added,
        dup,
        skipped,
        tuple(missing),
        tuple(errors),
        tuple(outside),
        cancelled=cancelled,
        images_done=done,
    )


def _cancelled(cancel: Cancel | None) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _import_image(
    library: PatchLibrary,
    dataset: str,
    image_id: str,
    path: Path,
    pixels: np.ndarray,
    spacing: tuple[float, float] | None,
    boxes: list[Box],
    margin: float,
    outside: list[str],
) -> tuple[int, int]:
    h, w = pixels.shape
    added = dup = 0
    with library.transaction():  # one image, one commit
        for b in boxes:
            if b.source_label == NODULE_MASS and spacing is not None:
                b = resolve_box_nodule_mass(b, 0.5 * (spacing[0] + spacing[1]))
            cut = crop_box(pixels, (b.x0, b.y0, b.x1, b.y1), margin)
            if cut is None:
                outside.append(
                    f"{image_id} {b.label} box ({b.x0:.0f}, {b.y0:.0f}, {b.x1:.0f}, {b.y1:.0f}) in a {w}x{h} image"
                )
                continue
            crop, inner, rect = cut
            cx = (rect[0] + 0.5 * (inner[0] + inner[2])) / w
            cy = (rect[1] + 0.5 * (inner[1] + inner[3])) / h
            _, new = library.add_patch(
                crop,
                inner,
                b.label,
                dataset=dataset,
                image_id=image_id,
                source_box=(b.x0, b.y0, b.x1, b.y1),
                image_size=(w, h),
                rel_center=(cx, cy),
                spacing_mm=spacing,
                reader=b.reader,
                source_label=b.source_label,
                image_path=str(path),
            )
            added += int(new)
            dup += int(not new)
    return added, dup

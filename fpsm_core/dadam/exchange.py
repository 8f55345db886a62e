"""Curated boxes to and from the detection formats: COCO, YOLO and Pascal VOC.

So the boxes a researcher curated go to CVAT, Label Studio and detection trainers, and come back.
Every box is written in *source image* pixels (the image the box was drawn on, not the crop), one
per patch (its current box: edits included), with the image's width and height:

- **COCO** (``DIR/annotations.json``): ``images`` (id, file_name, width, height), the 26 CXR-LT
  ``categories`` (ids 1-26 in CXR-LT order), ``annotations`` with ``bbox`` = [x, y, w, h]; loads
  with ``pycocotools.coco.COCO``. Each annotation's ``attributes`` carry the patch id, state,
  rating, tags and readers (CVAT shows them).
- **YOLO** (``DIR/labels/<image>.txt``, ``DIR/classes.txt``): a line ``class cx cy w h`` per box,
  normalised to [0, 1] by the image size; ``DIR/images.csv`` records each image's size (YOLO files
  carry none), so import maps back to pixels without opening the images.
- **VOC** (``DIR/Annotations/<image>.xml``): one XML per image, ``size`` and one ``object`` per
  box with ``bndbox`` corners (0-based, x1/y1 exclusive, as CVAT writes them; floats kept).

Each format also records the image id the library knows (``fpsm_image_id``), which import prefers
over the file name, so export -> import gives back every box on the same image. Reading returns a
:class:`~fpsm_core.dadam.boxes.BoxSet`, so ``fpsm dadam import`` cuts patches as for any box file.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fpsm_core.dadam.box_types import Box, BoxSet, parse_corners
from fpsm_core.dadam.errors import DadamError
from fpsm_core.labels import LABELS, UnknownLabelError, to_cxrlt

if TYPE_CHECKING:
    from fpsm_core.dadam.library import Patch, PatchLibrary

EXCHANGE_FORMATS = ("coco", "yolo", "voc")
COCO_FILE = "annotations.json"
ImageSizes = Callable[[str], "tuple[int, int] | None"]


@dataclass(frozen=True)
class ExportReport:
    """What an export wrote: the format, the output folder, its files, images and boxes."""

    format: str
    out: Path
    files: tuple[Path, ...]
    images: int
    boxes: int

    def summary(self) -> str:
        return f"{self.boxes} boxes on {self.images} images -> {self.out} ({self.format})"


@dataclass(frozen=True)
class _Image:
    image_id: str
    file_name: str
    stem: str
    dataset: str
    width: int
    height: int


def _fmt(v: float) -> str:
    return f"{v:.4f}".rstrip("0").rstrip(".")


def _images(patches: Sequence[Patch]) -> dict[tuple[str, str], _Image]:
    """One entry per source image, with a file name and a unique, path-free stem."""
    out: dict[tuple[str, str], _Image] = {}
    stems: Counter[str] = Counter()
    for p in patches:
        key = (p.dataset, p.image_id)
        if key in out:
            continue
        name = Path(p.image_id).name
        if not Path(name).suffix and p.image_path:
            name += Path(p.image_path).suffix
        stem = Path(name).stem or "image"
        stems[stem] += 1
        if stems[stem] > 1:  # two data sets with the same image name
            stem = f"{stem}_{stems[stem]}"
        out[key] = _Image(p.image_id, name, stem, p.dataset, p.image_size[0], p.image_size[1])
    return out


def export_boxes(
    lib: PatchLibrary,
    format: str,
    out: str | Path,
    *,
    states: Sequence[str] | None = ("unreviewed", "accepted"),
    labels: Sequence[str] | None = None,
) -> ExportReport:
    """Write the library's boxes as COCO, YOLO or VOC.

    Args:
        lib: The library.
        format: "coco", "yolo" or "voc".
        out: Output folder (created).
        states: Curation states to export (None: all; default: all but rejected).
        labels: Only these classes.

    Returns:
        What was written.
    """
    if format not in EXCHANGE_FORMATS:
        raise DadamError(None, f"unknown export format {format!r}; expected one of "
                         f"{list(EXCHANGE_FORMATS)}")  # fmt: skip
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    patches = lib.query(states=states, labels=labels, sort="source")
    images = _images(patches)
    writer = {"coco": _write_coco, "yolo": _write_yolo, "voc": _write_voc}[format]
    files = writer(out, patches, images)
    return ExportReport(format, out, tuple(files), len(images), len(patches))


def _attributes(p: Patch) -> dict[str, Any]:
    return {"patch_id": p.id, "state": p.state, "rating": p.rating, "tags": list(p.tags),
            "readers": p.readers, "edited": p.edited, "dataset": p.dataset}  # fmt: skip


def _write_coco(
    out: Path, patches: Sequence[Patch], images: dict[tuple[str, str], _Image]
) -> list[Path]:
    ids = {key: n for n, key in enumerate(images, start=1)}
    doc = {
        "info": {"description": "fpsm dadam export", "version": "1.0",
                 "date_created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")},
        "licenses": [],
        "images": [
            {"id": ids[key], "file_name": im.file_name, "width": im.width, "height": im.height,
             "fpsm_image_id": im.image_id, "fpsm_dataset": im.dataset}
            for key, im in images.items()
        ],
        "categories": [
            {"id": i, "name": name, "supercategory": "finding"}
            for i, name in enumerate(LABELS, start=1)
        ],
        "annotations": [
            {"id": n, "image_id": ids[(p.dataset, p.image_id)],
             "category_id": LABELS.index(p.label) + 1,
             "bbox": [p.source_box[0], p.source_box[1], p.source_box[2] - p.source_box[0],
                      p.source_box[3] - p.source_box[1]],
             "area": (p.source_box[2] - p.source_box[0]) * (p.source_box[3] - p.source_box[1]),
             "iscrowd": 0, "attributes": _attributes(p)}
            for n, p in enumerate(patches, start=1)
        ],
    }  # fmt: skip
    path = out / COCO_FILE
    path.write_text(json.dumps(doc, indent=1))
    return [path]


def _write_yolo(
    out: Path, patches: Sequence[Patch], images: dict[tuple[str, str], _Image]
) -> list[Path]:
    (out / "labels").mkdir(exist_ok=True)
    classes = out / "classes.txt"
    classes.write_text("".join(f"{name}\n" for name in LABELS))
    lines: dict[tuple[str, str], list[str]] = {key: [] for key in images}
    for p in patches:
        im = images[(p.dataset, p.image_id)]
        x0, y0, x1, y1 = p.source_box
        cx, cy = (x0 + x1) / 2 / im.width, (y0 + y1) / 2 / im.height
        w, h = (x1 - x0) / im.width, (y1 - y0) / im.height
        lines[(p.dataset, p.image_id)].append(
            f"{LABELS.index(p.label)} {cx:.8f} {cy:.8f} {w:.8f} {h:.8f}\n"
        )
    files = [classes]
    for key, im in images.items():
        path = out / "labels" / f"{im.stem}.txt"
        path.write_text("".join(lines[key]))
        files.append(path)
    sizes = out / "images.csv"
    with sizes.open("w", newline="") as fh:
        w_ = csv.writer(fh)
        w_.writerow(["label_file", "file_name", "fpsm_image_id", "dataset", "width", "height"])
        for im in images.values():
            w_.writerow(
                [f"{im.stem}.txt", im.file_name, im.image_id, im.dataset, im.width, im.height]
            )
    files.append(sizes)
    return files


def _write_voc(
    out: Path, patches: Sequence[Patch], images: dict[tuple[str, str], _Image]
) -> list[Path]:
    folder = out / "Annotations"
    folder.mkdir(exist_ok=True)
    objects: dict[tuple[str, str], list[Patch]] = {key: [] for key in images}
    for p in patches:
        objects[(p.dataset, p.image_id)].append(p)
    files = []
    for key, im in images.items():
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = im.dataset
        ET.SubElement(root, "filename").text = im.file_name
        ET.SubElement(root, "fpsm_image_id").text = im.image_id
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(im.width)
        ET.SubElement(size, "height").text = str(im.height)
        ET.SubElement(size, "depth").text = "1"
        ET.SubElement(root, "segmented").text = "0"
        for p in objects[key]:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = p.label
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = "0"
            bnd = ET.SubElement(obj, "bndbox")
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), p.source_box, strict=True):
                ET.SubElement(bnd, tag).text = _fmt(v)
            attrs = ET.SubElement(obj, "attributes")
            for name, value in _attributes(p).items():
                a = ET.SubElement(attrs, "attribute")
                ET.SubElement(a, "name").text = name
                ET.SubElement(a, "value").text = json.dumps(value)
        ET.indent(root)
        path = folder / f"{im.stem}.xml"
        ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
        files.append(path)
    return files


# -- reading ----------------------------------------------------------------------------------
class _Reader:
    def __init__(self, path: Path, fmt: str) -> None:
        self.path = path
        self.fmt = fmt
        self.boxes: list[Box] = []
        self.unmapped: Counter[str] = Counter()
        self.unknown: Counter[str] = Counter()
        self.invalid: list[str] = []

    def add(self, where: str, image_id: str, name: str, corners: Sequence[Any],
            reader: str | None = None) -> None:  # fmt: skip
        label = map_name(name)
        if label is False:
            self.unknown[name.strip()] += 1
            return
        if label is None:
            self.unmapped[name.strip()] += 1
            return
        # Rounded to the precision the formats carry, so x + w = 37.000000001 is 37 again
        # (the importer's cut would widen such a box by a pixel).
        parsed = parse_corners(corners, digits=4)
        if isinstance(parsed, str):
            self.invalid.append(f"{where} ({image_id}, {name}) {parsed}")
            return
        x0, y0, x1, y1 = parsed
        if not (x1 > x0 and y1 > y0):
            self.invalid.append(f"{where} ({image_id}, {name}) has an empty box")
            return
        self.boxes.append(Box(image_id, str(label), x0, y0, x1, y1, self.fmt, reader, name.strip()))

    def result(self) -> BoxSet:
        return BoxSet(self.path, self.fmt, tuple(self.boxes), dict(self.unmapped),
                      dict(self.unknown), 0, tuple(self.invalid), len(self.boxes))  # fmt: skip


def map_name(name: str) -> str | None | bool:
    """A class name from another tool as a CXR-LT label; None = no counterpart, False = unknown.

    CXR-LT names first, then the NIH, VinDr and ChestX-Det spellings (a CVAT project made from
    one of them keeps its names).
    """
    for source in ("cxrlt", "nih", "vindr", "chestxdet"):
        try:
            label = to_cxrlt(name, source)
        except UnknownLabelError:
            continue
        return None if label == "Nodule/Mass" else label
    return False


def read_exchange(
    path: str | Path, format: str, *, image_sizes: ImageSizes | None = None
) -> BoxSet:
    """Read a COCO JSON file, a YOLO folder or a VOC folder (as :func:`export_boxes` writes them).

    Args:
        path: The COCO JSON file (or a folder holding ``annotations.json``), or the YOLO / VOC
            folder.
        format: "coco", "yolo" or "voc".
        image_sizes: For YOLO folders without ``images.csv``: image id -> (width, height).

    Raises:
        DadamError: the path is missing or not in that format.
    """
    path = Path(path)
    if not path.exists():
        raise DadamError(path, f"{format} box file or folder not found")
    try:
        if format == "coco":
            return _read_coco(path / COCO_FILE if path.is_dir() else path)
        if format == "yolo":
            return _read_yolo(path, image_sizes)
        if format == "voc":
            return _read_voc(path)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DadamError(path, f"cannot be read as {format} ({exc})") from None
    raise DadamError(path, f"unknown exchange format {format!r}")


def _id(value: Any) -> int | str | None:
    """A COCO id as a dictionary key: a whole number or a string; anything else is no id."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return value


def _read_coco(path: Path) -> BoxSet:
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as exc:
        raise DadamError(path, f"is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except UnicodeDecodeError:
        raise DadamError(path, "is not UTF-8 text, so it is not a COCO file") from None
    except RecursionError:
        raise DadamError(path, "nests its JSON too deeply to be a COCO file") from None
    if not isinstance(doc, dict) or not all(
        isinstance(doc.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise DadamError(path, "is not a COCO file (needs images, annotations and categories)")
    images = {_id(im.get("id")): im for im in doc["images"] if isinstance(im, dict)}
    cats = {
        _id(c.get("id")): str(c.get("name", "")) for c in doc["categories"] if isinstance(c, dict)
    }
    images.pop(None, None)
    cats.pop(None, None)
    r = _Reader(path, "coco")
    for n, ann in enumerate(doc["annotations"], start=1):
        where = f"annotation {n}"
        if not isinstance(ann, dict) or _id(ann.get("image_id")) not in images:
            r.invalid.append(f"{where} names no image of the file")
            continue
        im = images[_id(ann["image_id"])]
        image_id = str(im.get("fpsm_image_id") or im.get("file_name") or im["id"])
        name = cats.get(_id(ann.get("category_id")))
        if name is None:
            r.invalid.append(f"{where} ({image_id}) names no category of the file")
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            r.invalid.append(f"{where} ({image_id}, {name}) has no [x, y, w, h] bbox")
            continue
        try:
            x, y, w, h = (float(v) for v in bbox)
        except (TypeError, ValueError):
            r.invalid.append(f"{where} ({image_id}, {name}) has non-numeric coordinates")
            continue
        attrs = ann.get("attributes")
        reader = attrs.get("reader") if isinstance(attrs, dict) else None
        r.add(where, image_id, name, (x, y, x + w, y + h), str(reader) if reader else None)
    return r.result()


def _read_yolo(folder: Path, image_sizes: ImageSizes | None) -> BoxSet:
    if not folder.is_dir():
        raise DadamError(folder, "is not a YOLO folder (expected a folder with classes.txt)")
    names_file = next(
        (folder / n for n in ("classes.txt", "obj.names") if (folder / n).is_file()), None
    )
    if names_file is None:
        raise DadamError(folder, "is not a YOLO folder (no classes.txt or obj.names)")
    names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
    labels_dir = folder / "labels" if (folder / "labels").is_dir() else folder
    sizes: dict[str, tuple[str, int, int]] = {}
    if (folder / "images.csv").is_file():
        with (folder / "images.csv").open(newline="") as fh:
            for row in csv.DictReader(fh):
                sizes[row["label_file"]] = (row["fpsm_image_id"] or row["file_name"],
                                            int(row["width"]), int(row["height"]))  # fmt: skip
    r = _Reader(folder, "yolo")
    for txt in sorted(labels_dir.glob("*.txt")):
        if txt == names_file:
            continue
        if txt.name in sizes:
            image_id, w, h = sizes[txt.name]
        else:
            got = image_sizes(txt.stem) if image_sizes is not None else None
            if got is None:
                r.invalid.append(f"{txt.name}: no image size (not in images.csv, image not found)")
                continue
            image_id, (w, h) = txt.stem, got
        for n, line in enumerate(txt.read_text().splitlines(), start=1):
            parts = line.split()
            if not parts:
                continue
            where = f"{txt.name} line {n}"
            if len(parts) != 5 or not parts[0].isdigit() or int(parts[0]) >= len(names):
                r.invalid.append(
                    f"{where} is not 'class cx cy w h' with a class of {names_file.name}"
                )
                continue
            try:
                cx, cy, bw, bh = (float(v) for v in parts[1:])
            except ValueError:
                r.invalid.append(f"{where} has non-numeric coordinates")
                continue
            corners = ((cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h)
            r.add(where, image_id, names[int(parts[0])], corners)
    return r.result()


def _read_voc(folder: Path) -> BoxSet:
    if folder.is_file():
        files = [folder]
    else:
        sub = folder / "Annotations"
        files = sorted((sub if sub.is_dir() else folder).glob("*.xml"))
    if not files:
        raise DadamError(folder, "is not a VOC folder (no Annotations/*.xml)")
    r = _Reader(folder, "voc")
    for f in files:
        try:
            root = ET.parse(f).getroot()
        except ET.ParseError as exc:
            r.invalid.append(f"{f.name} is not valid XML ({exc})")
            continue
        image_id = (root.findtext("fpsm_image_id") or root.findtext("filename") or f.stem).strip()
        for n, obj in enumerate(root.iter("object"), start=1):
            bnd = obj.find("bndbox")
            corners = [bnd.findtext(t) if bnd is not None else None
                       for t in ("xmin", "ymin", "xmax", "ymax")]  # fmt: skip
            r.add(f"{f.name} object {n}", image_id, obj.findtext("name") or "", corners)
    return r.result()

"""`load_image`: one entry point that sniffs a file and hands it to the DICOM or raster reader.

A file is DICOM when it carries the 'DICM' marker; a file whose bytes say PNG/JPEG/TIFF is a raster
whatever its suffix; anything else with no suffix, a DICOM suffix or a numeric suffix (archives
name files by SOP Instance UID) is tried as a meta-less DICOM data set.
"""

from __future__ import annotations

import os
from os import PathLike
from pathlib import Path

from fpsm_core.io.dicom import load_dicom
from fpsm_core.io.dicom_header import is_dicom_preamble, looks_like_metaless
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage
from fpsm_core.io.raster import load_raster

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")
# What a file dialog or folder filter should offer. Suffix-less and UID-named files (see
# ``is_image_path``) are DICOM candidates too.
SUPPORTED_SUFFIXES = DICOM_SUFFIXES + RASTER_SUFFIXES
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
)


def is_image_path(path: str | PathLike[str]) -> bool:
    """True when the name alone makes a file worth trying: a supported, empty or numeric suffix.

    The project's one notion of "image file" (folder walks go through
    :func:`fpsm_core.io.studies.image_files`); a DICOMDIR is not one.

    Args:
        path: Any path.

    Returns:
        Whether ``load_image`` / ``index_folder`` consider the file.
    """
    name = os.path.basename(os.fspath(path))
    if name.upper() == "DICOMDIR":  # an index of images, read when named (``index_folder``)
        return False
    suffix = os.path.splitext(name)[1].lower()
    return suffix in SUPPORTED_SUFFIXES or suffix == "" or suffix[1:].isdigit()


def sniff(head: bytes) -> str | None:
    """'dicom', 'png', 'jpeg', 'tiff', 'dicom-raw' (meta-less candidate) or None from leading bytes."""
    if is_dicom_preamble(head):
        return "dicom"
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    if looks_like_metaless(head):
        return "dicom-raw"
    return None


def load_image(path: str | PathLike[str], frame: int = 0) -> XRayImage:
    """Load one radiograph (DICOM, PNG, JPEG or TIFF) in display sense with its window.

    Args:
        path: The file.
        frame: Frame of a multi-frame DICOM or page of a multi-page TIFF.

    Returns:
        The `XRayImage`: float32 pixels after the Modality LUT (higher = brighter), window,
        spacing, identifiers and the loader's warnings.

    Raises:
        ImageLoadError: Any problem with the file, as one sentence naming it.
    """
    p = Path(path)
    if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
        raise ImageLoadError(p, f"frame {frame!r} is not a frame index")
    try:
        if p.is_dir():
            raise ImageLoadError(p, "it is a folder, not an image (index it with index_folder)")
        with open(p, "rb") as fp:
            head = fp.read(132)
    except FileNotFoundError:
        raise ImageLoadError(p, "no such file") from None
    except OSError as exc:
        raise ImageLoadError(p, f"the file cannot be read ({exc.strerror or exc})") from None
    if not head:
        raise ImageLoadError(p, "the file is empty")
    kind = sniff(head)
    if kind in ("png", "jpeg", "tiff"):
        return load_raster(p, frame)
    if kind in ("dicom", "dicom-raw"):
        return load_dicom(p, frame)
    if p.suffix.lower() in RASTER_SUFFIXES:
        raise ImageLoadError(
            p,
            f"it is not a readable {p.suffix.lower().lstrip('.').upper()} "
            "image (unknown file signature)",
        )
    raise ImageLoadError(
        p, "it is not a DICOM file (no 'DICM' marker at byte 128) nor a PNG, JPEG or TIFF image"
    )

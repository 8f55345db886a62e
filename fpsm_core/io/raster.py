"""PNG, JPEG and TIFF radiographs (8 and 16 bit, grey or colour) to `XRayImage`.

Rasters are taken as already in display sense (MONOCHROME2). Colour becomes BT.601 luma in float,
EXIF orientation is honoured, 8-bit images get the full 0-255 window and deeper ones a percentile
window. Files laid out like MIMIC-CXR-JPG (``files/pXX/pSUBJECT/sSTUDY/DICOMID.jpg``) get their
subject, study and dicom ids as patient_id, study_uid and instance_uid.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from fpsm_core.errors import one_sentence
from fpsm_core.io.dicom_header import MAX_FRAME_SAMPLES
from fpsm_core.io.errors import ImageLoadError
from fpsm_core.io.image import XRayImage, percentile_window

# One pixel limit for every format (docs/security.md): PIL's own bomb limit (~89 M pixels, which
# called a valid 12000 x 12000 PNG "impossible") is raised to the DICOM reader's, and the size is
# checked against it below, with a sentence that states it.
Image.MAX_IMAGE_PIXELS = MAX_FRAME_SAMPLES
RASTER_FORMATS = {"PNG": "png", "JPEG": "jpeg", "MPO": "jpeg", "TIFF": "tiff"}
_MIMIC = re.compile(r"^p(\d+)$"), re.compile(r"^s(\d+)$")


def mimic_ids(path: Path) -> tuple[str, str, str] | None:
    """(subject_id, study_id, dicom_id) when ``path`` follows the MIMIC-CXR-JPG layout."""
    parts = path.parts
    if len(parts) < 3:
        return None
    subject, study = _MIMIC[0].match(parts[-3]), _MIMIC[1].match(parts[-2])
    if subject and study:
        return subject.group(1), study.group(1), path.stem
    return None


def load_raster(path: Path, frame: int = 0) -> XRayImage:
    """Load a PNG/JPEG/TIFF file (one page of a multi-page TIFF) as a grey `XRayImage`.

    Args:
        path: The file.
        frame: Page index for multi-page TIFFs.

    Returns:
        The image.

    Raises:
        ImageLoadError: Unreadable, truncated, oversized or not a raster image.
    """
    notes: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                fmt = RASTER_FORMATS.get(im.format or "")
                if fmt is None:
                    raise ImageLoadError(
                        path, f"{im.format} images are not supported (use PNG, JPEG, TIFF or DICOM)"
                    )
                width, height = im.size
                channels = max(1, len(im.getbands()))
                if width < 1 or height < 1:
                    raise ImageLoadError(path, f"impossible image dimensions ({height} x {width})")
                if width * height * channels > MAX_FRAME_SAMPLES:
                    raise ImageLoadError(path, _too_large(height, width, channels))
                n_frames = int(getattr(im, "n_frames", 1) or 1)
                if not 0 <= frame < n_frames:
                    raise ImageLoadError(
                        path,
                        f"frame {frame} does not exist (the file has "
                        f"{n_frames} frame{'s' if n_frames != 1 else ''})",
                    )
                if frame:
                    im.seek(frame)
                pixels, bits = _grey(path, im, notes)
        except ImageLoadError:
            raise
        except (
            UnidentifiedImageError,
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
        ) as exc:
            raise ImageLoadError(path, _pil_reason(exc)) from None
        except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
            raise ImageLoadError(path, _pil_reason(exc)) from None
    if bits <= 8:
        window, source = (127.5, 255.0), "full_range"
    else:
        window, source = percentile_window(pixels), "percentile"
    ids = mimic_ids(path)
    return XRayImage(
        pixels=pixels,
        window=window,
        spacing_mm=None,
        path=path,
        study_uid=ids[1] if ids else None,
        instance_uid=ids[2] if ids else None,
        patient_id=ids[0] if ids else None,
        photometric="MONOCHROME2",
        warnings=tuple(notes),
        source_format=fmt,
        voi_function="LINEAR_EXACT",
        window_source=source,
        frame=frame,
        n_frames=n_frames,
        decoder="pillow",
        bits_stored=bits,
    )


def _too_large(height: int | None, width: int | None, channels: int | None) -> str:
    size = f" ({height} x {width} x {channels} samples)" if height is not None else ""
    return (
        f"the image is too large{size}; fpsm reads at most {MAX_FRAME_SAMPLES:,} samples per "
        "frame, in every format"
    )


def _pil_reason(exc: BaseException) -> str:
    text = one_sentence(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "it is not a readable PNG, JPEG or TIFF image"
    if "truncated" in text.lower():
        return "the image data are truncated"
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _too_large(None, None, None)
    return f"the image data cannot be decoded ({text})"


def _grey(path: Path, im: Image.Image, notes: list[str]) -> tuple[np.ndarray, int]:
    """Decode to float32 grey and report the bit depth of the source samples."""
    im = ImageOps.exif_transpose(im) if im.format in ("JPEG", "MPO", "TIFF") else im
    mode = im.mode
    if mode in ("L", "P", "1", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        if mode in ("L", "1"):
            arr = np.asarray(im.convert("L"), dtype=np.float32)
        elif mode == "LA":
            arr = np.asarray(im, dtype=np.float32)[..., 0]
        else:
            if _png_is_16bit_colour(path, im):
                return _cv2_grey16(path, notes), 16
            rgb = np.asarray(im.convert("RGB"), dtype=np.float32)
            if not _is_grey(rgb):
                notes.append(f"{mode} colour image converted to grey (BT.601 luma).")
            arr = rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114
        return arr, 8
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        bits = (
            16
            if mode.startswith("I;16") or (arr.size and 0 <= arr.min() and arr.max() < 65536)
            else 32
        )
        return arr.astype(np.float32), bits
    if mode == "F":
        return np.asarray(im, dtype=np.float32), 32
    raise ImageLoadError(path, f"the image mode {mode} is not supported")


def _is_grey(rgb: np.ndarray) -> bool:
    sample = rgb[::8, ::8]
    return bool(
        np.array_equal(sample[..., 0], sample[..., 1])
        and np.array_equal(sample[..., 1], sample[..., 2])
    )


def _png_is_16bit_colour(path: Path, im: Image.Image) -> bool:
    """Pillow reduces 16-bit RGB PNGs to 8 bits; the IHDR says when that would happen."""
    if im.format != "PNG":
        return False
    with open(path, "rb") as fp:
        head = fp.read(26)
    return len(head) >= 26 and head[24] == 16 and head[25] in (2, 6)


def _cv2_grey16(path: Path, notes: list[str]) -> np.ndarray:
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    arr = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3:
        raise ImageLoadError(path, "the 16-bit colour PNG cannot be decoded")
    bgr = arr[..., :3].astype(np.float32)
    if not _is_grey(bgr):
        notes.append("16-bit colour image converted to grey (BT.601 luma).")
    return bgr[..., 2] * 0.299 + bgr[..., 1] * 0.587 + bgr[..., 0] * 0.114

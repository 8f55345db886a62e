"""Radiograph decoding, cached resized copies and training augmentation.

An image becomes a training input by the same steps :func:`fpsm_core.preprocess.prepare` takes at
inference: :func:`fpsm_core.io.load_image` (display-sense pixels and the image's own window), then
:func:`~fpsm_core.preprocess.window_to_unit` and :func:`~fpsm_core.preprocess.resize_to_square`.
Augmentation then acts on that [0, 1] square, and normalisation comes last (on the device, see
:func:`fpsm_core.data.dataset.normalise_batch`), so a model sees at inference exactly what it saw in
training minus the augmentation.

Augmentation is mild on purpose: a small rotation, scale and shift, and brightness/contrast jitter
on the body only (the letterbox padding stays black, as at inference). **No horizontal flip by
default**: chest anatomy is lateralised (heart, aortic knob and gastric bubble on the left, the
liver on the right), and a flipped film is a different, rare picture (situs inversus) rather than
the same one; ``hflip`` exists for tasks where it is harmless (MURA limbs).

Decoding a 3000 px MIMIC JPEG costs far more than the training step needs; ``ImageCache`` keeps a
resized copy per image (16-bit PNG of the [0, 1] square, so at most 7.6e-6 from the uncached value)
keyed by path, size, modification time and resize policy.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpsm_core.preprocess import resize_to_square, window_to_unit

CACHE_VERSION = 1


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation of the [0, 1] square.

    Attributes:
        enabled: False gives the plain inference input (validation, evaluation).
        degrees: maximum rotation either way.
        translate: maximum shift as a fraction of the side.
        scale: (min, max) zoom.
        brightness: maximum additive change (in [0, 1] units).
        contrast: maximum relative contrast change.
        hflip: flip left-right with probability 0.5 (off for chests: anatomy is lateralised).
    """

    enabled: bool = True
    degrees: float = 7.0
    translate: float = 0.05
    scale: tuple[float, float] = (0.9, 1.1)
    brightness: float = 0.1
    contrast: float = 0.15
    hflip: bool = False


def decode_unit(path: str | Path) -> np.ndarray:
    """Load an image file and window it to float32 [0, 1], as inference does.

    Raises:
        fpsm_core.io.ImageLoadError: the file cannot be read.
    """
    from fpsm_core.io import load_image

    image = load_image(path)
    return window_to_unit(image.pixels, image.window)


def load_square(
    path: str | Path, size: int, resize: str = "letterbox", cache: ImageCache | None = None
) -> np.ndarray:
    """The [0, 1] ``size`` x ``size`` square of an image, through the cache when given."""
    if cache is not None:
        hit = cache.get(path, size, resize)
        if hit is not None:
            return hit
    square, _ = resize_to_square(decode_unit(path), size, resize)
    if cache is not None:
        # hand back what the cache will give next time, so every epoch sees the same values
        square = cache.put(path, size, resize, square)
    return square


class ImageCache:
    """Resized [0, 1] squares stored as 16-bit PNGs under a folder, safe for parallel workers.

    Args:
        directory: where the copies live (created on first write).
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def key(self, path: str | Path, size: int, resize: str) -> Path:
        try:
            st = os.stat(path)
            stamp = f"{st.st_mtime_ns}:{st.st_size}"
        except OSError:
            stamp = "missing"
        text = f"{CACHE_VERSION}|{os.path.abspath(path)}|{stamp}|{size}|{resize}"
        digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
        return self.directory / f"{size}_{resize}" / digest[:2] / f"{digest}.png"

    def get(self, path: str | Path, size: int, resize: str) -> np.ndarray | None:
        file = self.key(path, size, resize)
        if not file.is_file():
            return None
        data = cv2.imread(str(file), cv2.IMREAD_UNCHANGED)
        if data is None or data.shape != (size, size) or data.dtype != np.uint16:
            return None  # a torn or foreign file: recompute and overwrite
        return data.astype(np.float32) * np.float32(1.0 / 65535.0)

    def put(self, path: str | Path, size: int, resize: str, square: np.ndarray) -> np.ndarray:
        """Store a square; returns it as a later :meth:`get` will return it (16-bit rounded)."""
        file = self.key(path, size, resize)
        file.parent.mkdir(parents=True, exist_ok=True)
        data = np.round(np.clip(square, 0.0, 1.0) * 65535.0).astype(np.uint16)
        tmp = file.with_name(f"{file.stem}.{os.getpid()}.tmp.png")
        if cv2.imwrite(str(tmp), data):
            os.replace(tmp, file)  # atomic: a reader never sees half a file
        return data.astype(np.float32) * np.float32(1.0 / 65535.0)


def augment(square: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Random intensity jitter on the body, then a random affine; returns a new array."""
    if not config.enabled:
        return square
    out = square
    if config.brightness > 0 or config.contrast > 0:
        body = square > 0  # letterbox padding (exact 0) stays black, as at inference
        factor = 1.0 + rng.uniform(-config.contrast, config.contrast)
        shift = rng.uniform(-config.brightness, config.brightness)
        mean = float(square[body].mean()) if body.any() else 0.0
        out = np.clip((square - mean) * factor + mean + shift, 0.0, 1.0)
        out = np.where(body, out, 0.0).astype(np.float32)
    size = square.shape[0]
    angle = rng.uniform(-config.degrees, config.degrees)
    zoom = rng.uniform(*config.scale)
    tx, ty = rng.uniform(-config.translate, config.translate, size=2) * size
    if angle or zoom != 1.0 or tx or ty:
        matrix = cv2.getRotationMatrix2D((size / 2.0, size / 2.0), angle, zoom)
        matrix[:, 2] += (tx, ty)
        out = cv2.warpAffine(
            np.ascontiguousarray(out, dtype=np.float32),
            matrix,
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0.0,
        )
    if config.hflip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out, dtype=np.float32)

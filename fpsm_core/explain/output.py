"""CAM files for ``fpsm infer --cams``: an ``.npz`` of maps and PNG overlays per image.

:func:`write_cam_outputs` is the array-level writer (any maps, any labels); :func:`write_result_cams`
turns an inference :class:`~fpsm_core.inference.Result` into those files, from the closed-form maps
the forward pass already produced or, for other methods, through the grad-cam package. Archives hold
plain arrays only (no pickles: ``np.load(..., allow_pickle=False)`` reads them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fpsm_core.explain import caption as captions
from fpsm_core.explain.errors import ExplainError
from fpsm_core.explain.normalise import resize_maps
from fpsm_core.explain.result_cams import ENSEMBLE, FUSED, LevelKey, ResultCams
from fpsm_core.preprocess import unletterbox


@dataclass(frozen=True)
class CamFiles:
    """What :func:`write_cam_outputs` wrote."""

    npz: Path
    overlays: tuple[Path, ...]


def slug(text: str) -> str:
    """A file-name-safe form of a label: ``Pleural Effusion`` -> ``pleural_effusion``."""
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "class"


def overlay(
    image: np.ndarray, cam: np.ndarray, alpha: float = 0.5, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """Blend a map in [0, 1] (any size, resized bilinearly) over a grey or BGR uint8 image.

    Returns:
        uint8 BGR (H, W, 3): ``alpha * colour(cam) + (1 - alpha) * image``.
    """
    base = _as_bgr(image)
    h, w = base.shape[:2]
    heat = resize_maps(np.clip(np.asarray(cam, dtype=np.float32), 0, 1), (h, w))
    colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), colormap)
    return cv2.addWeighted(colour, float(alpha), base, 1.0 - float(alpha), 0.0)


def _as_bgr(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] != 3):
        raise ExplainError(
            f"the overlay image must be uint8 (H, W) or (H, W, 3), not {arr.dtype} {arr.shape}."
        )
    return cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR) if arr.ndim == 2 else arr


def write_cam_outputs(
    out_dir: str | Path,
    stem: str,
    image: np.ndarray,
    maps: np.ndarray,
    levels: Sequence[int],
    labels: Sequence[str],
    *,
    fused: np.ndarray | None = None,
    scores: Sequence[float] | np.ndarray | None = None,
    top_k: int = 3,
    alpha: float = 0.5,
    colormap: int = cv2.COLORMAP_JET,
    arrays: Mapping[str, np.ndarray] | None = None,
    caption: Callable[[int, LevelKey], captions.Caption] | None = None,
) -> CamFiles:
    """Write ``<stem>_cams.npz`` and overlays of the top findings, per level and fused.

    Overlays are ``<stem>_<rank>_<label>_L<level>.png`` and ``<stem>_<rank>_<label>_fused.png``
    (rank from 01), the map resized over the whole image; with ``caption`` each has its caption
    strip below the image and the same text in its PNG text chunks.

    Args:
        out_dir: created if missing.
        stem: file name prefix, usually the image file's stem.
        image: uint8 (H, W) display image (or BGR (H, W, 3)) that the maps cover.
        maps: (K, L, h, w) maps in [0, 1], row k for ``labels[k]``, column l for ``levels[l]``.
        levels: L paper level numbers.
        labels: K class names.
        fused: optional (K, h, w) fused maps.
        scores: optional (K,) scores ranking the rows (highest first); default the given order.
        top_k: how many rows get overlays (0 for none).
        alpha: overlay opacity of the colour map.
        colormap: an OpenCV colour map.
        arrays: extra arrays to store in the archive (no object arrays).
        caption: (row k, level number or ``FUSED``) -> the overlay's caption.

    Returns:
        The paths written.
    """
    maps = np.asarray(maps, dtype=np.float32)
    levels = [int(lv) for lv in levels]
    labels = [str(x) for x in labels]
    if maps.ndim != 4 or maps.shape[:2] != (len(labels), len(levels)):
        raise ExplainError(
            f"maps of shape {maps.shape} do not match {len(labels)} labels x {len(levels)} levels."
        )
    if fused is not None:
        fused = np.asarray(fused, dtype=np.float32)
        if fused.ndim != 3 or fused.shape[0] != len(labels):
            raise ExplainError(
                f"fused maps of shape {fused.shape} do not match {len(labels)} labels."
            )
    base = _as_bgr(image)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExplainError(f"cannot create the CAM folder {out}: {exc.strerror or exc}.") from None

    store: dict[str, np.ndarray] = {
        "maps": maps,
        "levels": np.asarray(levels, dtype=np.int64),
        "labels": np.asarray(labels, dtype=np.str_),
    }
    if fused is not None:
        store["fused"] = fused
    if scores is not None:
        store["scores"] = np.asarray(scores, dtype=np.float32).reshape(len(labels))
    for name, value in (arrays or {}).items():
        if name in store:
            raise ExplainError(f"extra array name {name!r} clashes with a standard CAM array.")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ExplainError(f"extra array {name!r} holds Python objects; store plain arrays.")
        store[name] = arr
    npz_path = out / f"{stem}_cams.npz"
    try:
        np.savez_compressed(npz_path, **store)  # type: ignore[arg-type]
    except OSError as exc:
        raise ExplainError(f"cannot write {npz_path}: {exc.strerror or exc}.") from None

    order = (
        np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
        if scores is not None
        else np.arange(len(labels))
    )
    written = []
    for rank, k in enumerate(order[: max(0, top_k)], 1):
        prefix = f"{stem}_{rank:02d}_{slug(labels[k])}"
        items: list[tuple[str, LevelKey, np.ndarray]] = [
            (f"L{lv}", lv, maps[k, i]) for i, lv in enumerate(levels)
        ]
        if fused is not None:
            items.append(("fused", FUSED, fused[k]))
        for suffix, key, cam in items:
            path = out / f"{prefix}_{suffix}.png"
            picture = overlay(base, cam, alpha, colormap)
            if caption is not None:
                captions.write_png(path, picture, caption(int(k), key))
            elif not cv2.imwrite(str(path), picture):
                raise ExplainError(f"cannot write the overlay {path}.")
            written.append(path)
    return CamFiles(npz=npz_path, overlays=tuple(written))


def _display_image(image: Any, max_side: int) -> np.ndarray:
    if hasattr(image, "display_uint8"):
        disp = np.asarray(image.display_uint8())
    else:
        from fpsm_core.preprocess import window_to_unit

        unit = window_to_unit(np.asarray(image.pixels), tuple(image.window))
        disp = np.round(unit * 255).astype(np.uint8)
    h, w = disp.shape[:2]
    scale = max_side / max(h, w)
    if scale < 1:
        disp = cv2.resize(
            disp, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )
    return disp


def write_result_cams(
    result: Any,
    service: Any,
    out_dir: str | Path,
    *,
    method: str = "closed-form",
    top_k: int = 3,
    image: Any = None,
    max_side: int = 1024,
    alpha: float = 0.5,
    stem: str | None = None,
    allow_burned_in: bool = False,
    show_phi: bool = False,
) -> dict[str, Any]:
    """Write the CAM files of one inference result; returns a JSON-ready record of them.

    With ``closed-form`` the maps come from ``result.cams`` (raw per member and level, computed in
    the forward pass). The archive then holds, for all classes, the ensemble's Grad-CAM-normalised
    level maps and fused maps on the finest level's grid, cropped to the image (letterbox padding
    removed); ``raw_m<i>_L<level>`` (each member's raw maps on the model input grid, for exact
    recomputation), ``shares`` (C, L: positive logit share per level), ``letterbox`` (scale,
    offset_x, offset_y, width, height of member 0), ``probabilities`` and what made them:
    ``model_name``, ``disclaimer`` and ``model`` (the result's model identity as JSON). Every
    overlay carries a caption strip (:mod:`fpsm_core.explain.caption`). Other methods run the
    grad-cam package on each member for the ``top_k`` findings only (maps at the input size,
    averaged over members per level; fused = mean of the levels' maps).

    Args:
        result: a :class:`fpsm_core.inference.Result`.
        service: the :class:`fpsm_core.inference.InferenceService` that produced it.
        out_dir: destination folder.
        method: ``closed-form`` or one of :data:`fpsm_core.explain.package.METHODS`.
        top_k: overlays (and package maps) for this many most probable findings.
        image: the loaded image (an ``XRayImage``); read from ``result.path`` when None.
        max_side: overlays are drawn on the image shrunk to at most this many pixels per side.
        alpha: overlay opacity.
        stem: file name prefix; default the image file's stem (give a unique one when several
            inputs share a file name, e.g. DICOMs named IM0001 in different folders).
        allow_burned_in: write pixels of an image whose header says BurnedInAnnotation YES.
        show_phi: add the patient/study line to the overlays' captions (hidden by default).

    Raises:
        fpsm_core.io.deid.DeidentificationError: burned-in annotation, not allowed.
    """
    if image is None:
        if result.path is None:
            raise ExplainError("writing CAM overlays needs the image, and the result has no path.")
        from fpsm_core.io import load_image

        image = load_image(result.path)
    from fpsm_core.io.deid import DeidOptions, check_exportable  # every pixel exporter refuses

    check_exportable(image, DeidOptions(allow_burned_in=allow_burned_in))
    disp = _display_image(image, max_side)
    if stem is None:
        stem = Path(result.path).stem if result.path else "image"
    probs = np.asarray(result.probabilities, dtype=np.float32)
    labels = list(result.labels)
    box = result.letterboxes[0]
    letterbox = np.asarray(
        [box.scale, box.offset_x, box.offset_y, box.width, box.height], dtype=np.float64
    )

    identity = model_arrays(result)

    def caption(k: int, level: LevelKey) -> captions.Caption:
        return captions.caption_for(
            result,
            k,
            level=level,
            member=ENSEMBLE,
            method="closed-form Grad-CAM" if method == "closed-form" else f"{method} (grad-cam)",
            image=image,
            show_phi=show_phi,
        )

    if method == "closed-form":
        if result.cams is None:
            raise ExplainError("this result has no closed-form CAMs; run inference with cams=True.")
        cams = ResultCams(result)
        ens = cams.image_maps()
        extra: dict[str, np.ndarray] = {**cams.raw_arrays(), "shares": ens.shares}
        files = write_cam_outputs(
            out_dir,
            stem,
            disp,
            ens.maps,
            ens.levels,
            labels,
            fused=ens.fused,
            scores=probs,
            top_k=top_k,
            alpha=alpha,
            arrays={
                **extra,
                "letterbox": letterbox,
                "probabilities": probs,
                "method": np.asarray(method),
                **identity,
            },
            caption=caption,
        )
    else:
        files = _write_package_cams(
            result,
            service,
            image,
            disp,
            out_dir,
            stem,
            method,
            top_k,
            alpha,
            letterbox,
            caption,
            identity,
        )
    return {
        "method": method,
        "npz": str(files.npz),
        "overlays": [str(p) for p in files.overlays],
    }


def _write_package_cams(
    result: Any,
    service: Any,
    image: Any,
    disp: np.ndarray,
    out_dir: str | Path,
    stem: str,
    method: str,
    top_k: int,
    alpha: float,
    letterbox: np.ndarray,
    caption: Callable[[int, LevelKey], captions.Caption],
    identity: Mapping[str, np.ndarray],
) -> CamFiles:
    import torch

    from fpsm_core.explain.package import package_cams
    from fpsm_core.preprocess import prepare

    probs = np.asarray(result.probabilities, dtype=np.float32)
    top = np.argsort(-probs.astype(np.float64), kind="stable")[: max(1, top_k)]
    size = max(int(s) for s in result.input_sizes)
    sums: dict[int, np.ndarray] = {}
    counts: dict[int, int] = {}
    for member in service.ensemble.members:
        model = member.model
        tensor, _ = prepare(
            np.asarray(image.pixels), tuple(image.window), member.meta.preprocessing, model.in_chans
        )
        x = torch.from_numpy(tensor)[None]
        maps = package_cams(model, x, method=method, target="level", classes=top.tolist())[0]
        maps = resize_maps(maps, size)  # (k, L, S, S)
        for j, lv in enumerate(model.levels):
            sums[lv] = sums.get(lv, 0) + maps[:, j]
            counts[lv] = counts.get(lv, 0) + 1
    levels = list(sums)
    stacked = np.stack([sums[lv] / counts[lv] for lv in levels], axis=1)
    fused = stacked.mean(axis=1)
    peak = fused.max(axis=(-2, -1), keepdims=True)
    fused = np.divide(fused, peak, out=np.zeros_like(fused), where=peak > 0)
    box, size0 = result.letterboxes[0], int(result.input_sizes[0])
    return write_cam_outputs(
        out_dir,
        stem,
        disp,
        unletterbox(stacked, box, size0),
        levels,
        [result.labels[i] for i in top],
        fused=unletterbox(fused, box, size0),
        scores=probs[top],
        top_k=top_k,
        alpha=alpha,
        arrays={
            "classes": top.astype(np.int64),
            "letterbox": letterbox,
            "probabilities": probs,
            "method": np.asarray(method),
            **identity,
        },
        caption=lambda k, level: caption(int(top[k]), level),
    )


def model_arrays(result: Any) -> dict[str, np.ndarray]:
    """What a CAM archive records of the model that made it: name, disclaimer, identity JSON."""
    model = dict(getattr(result, "model", {}) or {})
    return {
        "model_name": np.asarray(str(model.get("name") or "")),
        "disclaimer": np.asarray(str(model.get("disclaimer") or "") or captions.NOT_CLINICAL),
        "model": np.asarray(json.dumps(model, sort_keys=True)),
    }

"""The Secondary Capture: the film, the fused heatmap of the top findings and the text, burned in.

What a reader sees in any PACS viewer, even one that understands no SR or presentation state: the
film with the reader's own window (greyscale), the fused CAM of the top findings as a colour
overlay where it exceeds a fifth of its peak (so the rest of the film stays grey), the outlines of
the findings above threshold, and a side panel with the ranked findings, the model's name and its
disclaimer. It is an RGB image with BurnedInAnnotation YES, since the text is in the pixels.
"""

from __future__ import annotations

from typing import Any

import cv2
import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from fpsm_core.export.common import (
    COLOURS,
    MANUFACTURER,
    NOT_CLINICAL,
    finish,
    series_number,
    source_image_sequence,
)
from fpsm_core.export.evidence import Evidence, Region
from fpsm_core.export.source import ExportSource, describe_model

# The film is drawn at most this many pixels per side (a 3000 px film would make a 27 MB RGB SC).
MAX_SIDE = 2048
# The heatmap shows where the map exceeds this fraction of its peak, more opaque as it rises.
HEAT_FLOOR = 0.3
HEAT_ALPHA = 0.55


def _fused_top(result: Any, ev: Evidence, k: int) -> np.ndarray:
    """Per pixel, the strongest of the top-k findings' fused maps, weighted by probability."""
    top = result.findings[:k]
    p_max = max(f.probability for f in top) or 1.0
    return np.max([ev.fused[f.index] * (f.probability / p_max) for f in top], axis=0)


def _panel_lines(result: Any, k: int) -> list[tuple[str, tuple[int, int, int]]]:
    name, version, members, disclaimer = describe_model(result)
    lines: list[tuple[str, tuple[int, int, int]]] = [
        ("AI RESULT", (255, 255, 255)),
        (f"{name} ({version})", (200, 200, 200)),
    ]
    if members and len(members) > 1:
        lines.append((f"ensemble of {len(members)}: {', '.join(members)}"[:60], (200, 200, 200)))
    if getattr(result, "untrained", False):
        lines.append(("UNTRAINED MODEL: meaningless", (255, 80, 80)))
    lines.append(("", (0, 0, 0)))
    lines.append(("Findings (* above threshold)", (255, 255, 255)))
    for rank, f in enumerate(result.findings[:k], 1):
        colour = COLOURS[(rank - 1) % len(COLOURS)] if f.above_threshold else (220, 220, 220)
        mark = "*" if f.above_threshold else " "
        lines.append((f"{rank}. {f.label[:26]} {f.probability:.2f}{mark}", colour))
    lines.append(("", (0, 0, 0)))
    extra = [] if NOT_CLINICAL.lower() in disclaimer.lower() else _wrap(disclaimer, 34)
    for text in (NOT_CLINICAL, *extra):
        lines.append((text, (255, 200, 120)))
    return lines


def _wrap(text: str, width: int) -> list[str]:
    out: list[str] = []
    line = ""
    for word in text.split():
        if len(line) + len(word) + 1 > width and line:
            out.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    if line:
        out.append(line)
    return out[:6]


def render(
    result: Any,
    source: ExportSource,
    ev: Evidence | None,
    regions: dict[str, Region],
    top_k: int = 5,
) -> np.ndarray:
    """The SC's pixels: uint8 RGB (rows, cols + panel, 3)."""
    film = source.film()
    rows, cols = film.shape
    scale = min(1.0, MAX_SIDE / max(rows, cols))
    if scale < 1:
        film = cv2.resize(
            film, (round(cols * scale), round(rows * scale)), interpolation=cv2.INTER_AREA
        )
    h, w = film.shape
    rgb = np.repeat(film[..., None], 3, axis=2).astype(np.float32)
    if ev is not None:
        heat = cv2.resize(_fused_top(result, ev, 3), (w, h), interpolation=cv2.INTER_LINEAR)
        colour = cv2.applyColorMap(np.round(heat * 255).astype(np.uint8), cv2.COLORMAP_JET)
        colour = colour[..., ::-1].astype(np.float32)  # OpenCV's BGR to the SC's RGB
        ramp = np.clip((heat - HEAT_FLOOR) / (1 - HEAT_FLOOR), 0, 1) ** 0.5
        alpha = (np.where(heat >= HEAT_FLOOR, ramp, 0.0) * HEAT_ALPHA).astype(np.float32)[..., None]
        rgb = rgb * (1 - alpha) + colour * alpha
    out = np.ascontiguousarray(np.clip(rgb, 0, 255).astype(np.uint8))
    thick = max(1, round(h / 400))
    rank = {f.label: i for i, f in enumerate(result.findings)}
    for label, reg in regions.items():
        pts = np.round((reg.polygon - 0.5) * scale).astype(np.int32)
        line = COLOURS[rank[label] % len(COLOURS)]
        cv2.polylines(out, [pts], True, line, thick, cv2.LINE_AA)  # type: ignore[call-overload]
    panel_w = max(360, round(w * 0.42))
    panel = np.zeros((h, panel_w, 3), dtype=np.uint8)
    font_scale = panel_w / 620
    step = max(14, round(34 * font_scale))
    y = step + 6
    for text, ink in _panel_lines(result, top_k):
        if text and y < h - 4:
            cv2.putText(  # type: ignore[call-overload]
                panel,
                text,
                (12, y),
                cv2.FONT_HERSHEY_SIMPLEX,
                font_scale,
                ink,
                max(1, round(2 * font_scale)),
                cv2.LINE_AA,
            )
        y += step
    return np.concatenate([out, panel], axis=1)


def secondary_capture(
    result: Any,
    source: ExportSource,
    ev: Evidence | None,
    regions: dict[str, Region],
) -> Dataset:
    """The Secondary Capture data set for one result."""
    pixels = render(result, source, ev, regions)
    spacing = source.pixel_spacing()
    film_scale = min(1.0, MAX_SIDE / max(source.rows, source.columns))
    name, _, _, disclaimer = describe_model(result)
    sc_spacing = (spacing[0] / film_scale, spacing[1] / film_scale) if spacing is not None else None
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source.dataset,
        pixel_array=pixels,
        photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
        bits_allocated=8,
        coordinate_system=hd.CoordinateSystemNames.PATIENT,
        series_instance_uid=generate_uid(),
        series_number=series_number(source, "sc"),
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        pixel_spacing=sc_spacing,  # type: ignore[arg-type]  # hinted int; mm are floats
        laterality=source.laterality(),
        patient_orientation=source.patient_orientation(),
    )
    sc.BurnedInAnnotation = "YES"
    sc.SourceImageSequence = source_image_sequence(source)
    sc.DerivationDescription = (
        f"Film with the fused Grad-CAM of the top findings and the ranked findings of {name}"
    )[:1024]
    return finish(sc, source, f"AI result {name} (SC)", image=True, disclaimer=disclaimer)

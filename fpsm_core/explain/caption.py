"""Caption strips: every exported picture says what it shows, which model made it, and that it is research.

A CAM overlay or a grab of the viewer's film without its context is a coloured blob anyone can
misread. :func:`caption_for` states, for one finding's map, the finding, its probability and
threshold, the level (or fused), the member (or ensemble mean), the method, the model and its
disclaimer, plus a patient/study line only when the user asks (the rule of ``fpsm info
--show-phi``: identifiers are hidden by default). :func:`captioned` draws those lines in a strip
under the picture, and :func:`write_png` writes the picture with the same lines as PNG text
chunks (``Description``, ``Model``, ``Disclaimer``, ``Software``), so a program can read what a
person reads. Drawing uses OpenCV's Hershey font, which has ASCII only: the strip transliterates,
the text chunks keep the original (UTF-8 iTXt).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fpsm_core.explain.errors import ExplainError
from fpsm_core.explain.result_cams import ENSEMBLE, FUSED, LevelKey

NOT_CLINICAL = "Research software, not for clinical use."
# A strip narrower than this would make its text unreadable: narrow pictures get a wider canvas.
MIN_WIDTH = 360
_FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Caption:
    """What a picture shows, as lines of text (the first names the finding).

    Attributes:
        lines: the caption, top to bottom.
        model: the model's name.
        disclaimer: the model's disclaimer (always non-empty: the project's when the model has none).
    """

    lines: tuple[str, ...]
    model: str
    disclaimer: str

    def text(self) -> str:
        return "\n".join(self.lines)


def member_text(member_names: Sequence[str], member: int) -> str:
    """``ensemble mean of 3 members`` or ``member m1`` (the one member of a single model)."""
    names = list(member_names)
    if member == ENSEMBLE or not 0 <= member < len(names):
        if len(names) == 1:
            return f"member {names[0]} (the only one)"
        return f"ensemble mean of {len(names)} members"
    return f"member {names[member]}"


def level_text(level: LevelKey) -> str:
    return "fused levels" if level == FUSED else f"level {level}"


def patient_line(image: Any) -> str:
    """Patient and study identifiers of an image (shown only when the user asks for them)."""
    parts = []
    pid, name = getattr(image, "patient_id", None), getattr(image, "patient_name", None)
    if pid or name:
        who = " ".join(str(x) for x in (pid, str(name or "").replace("^", " ").strip()) if x)
        parts.append(f"patient {who}")
    study = getattr(image, "study_uid", None)
    if study:
        parts.append(f"study {study}")
    view = getattr(image, "view_position", None)
    if view:
        parts.append(f"view {view}")
    return " | ".join(parts) if parts else "patient and study not recorded in the file"


def caption_for(
    result: Any,
    class_index: int | None,
    *,
    level: LevelKey = FUSED,
    member: int = ENSEMBLE,
    method: str = "closed-form Grad-CAM",
    image: Any = None,
    show_phi: bool = False,
    shown: str | None = None,
) -> Caption:
    """The caption of one finding's map in one result (``class_index`` None: the film alone).

    Args:
        result: an inference ``Result`` (its ``model`` identity names the model and disclaimer).
        class_index: the finding's class index, or None when the picture shows no map.
        level: the map's level or ``FUSED``.
        member: the member whose map it is, or ``ENSEMBLE``.
        method: how the map was made.
        image: the source ``XRayImage`` (for the patient line).
        show_phi: add the patient/study line.
        shown: what the picture shows of the map when not the map itself (e.g. ``heatmap
            hidden``); replaces the method/level/member line.
    """
    model = dict(getattr(result, "model", {}) or {})
    name = str(model.get("name") or "unnamed model")
    disclaimer = str(model.get("disclaimer") or "").strip() or NOT_CLINICAL
    lines: list[str] = []
    input_check = getattr(result, "input", None)
    if getattr(input_check, "flagged", False):
        lines.append("NOT RELIABLE: the film is outside the model's training distribution")
    finding = next((f for f in result.findings if f.index == class_index), None)
    if finding is None:
        lines.append("no AI map shown")
    else:
        side = "above" if finding.above_threshold else "below"
        lines.append(
            f"{finding.label}: probability {finding.probability:.1%}, {side} its threshold "
            f"{finding.threshold:.1%}"
        )
        names = tuple(getattr(result, "member_names", ()) or ())
        lines.append(shown or f"{method} | {level_text(level)} | {member_text(names, member)}")
    from fpsm_core import __version__

    model_line = f"model {name} | fpsm {__version__}"
    if getattr(result, "untrained", False) or model.get("untrained"):
        model_line += " | UNTRAINED: the probabilities mean nothing"
    lines.append(model_line)
    # The model's own disclaimer, or the project's before it when it does not say so itself.
    said = "not for clinical use" in disclaimer.lower()
    lines.append(disclaimer if said else f"{NOT_CLINICAL} {disclaimer}")
    if show_phi and image is not None:
        lines.append(patient_line(image))
    return Caption(lines=tuple(lines), model=name, disclaimer=disclaimer)


def _ascii(text: str) -> str:
    out = text.replace("·", "|").replace("±", "+/-").replace("≥", ">=").replace("—", "-")
    out = unicodedata.normalize("NFKD", out).encode("ascii", "ignore").decode("ascii")
    return out


def _wrap(text: str, width_px: int, scale: float, thick: int) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in _ascii(text).split():
        trial = f"{line} {word}".strip()
        if line and cv2.getTextSize(trial, _FONT, scale, thick)[0][0] > width_px:
            lines.append(line)
            line = word
        else:
            line = trial
    if line:
        lines.append(line)
    return lines or [""]


def strip(caption: Caption, width: int) -> np.ndarray:
    """The caption drawn white on black, ``width`` pixels wide, as uint8 BGR (h, width, 3)."""
    width = max(1, int(width))
    scale = float(np.clip(width / 1100, 0.4, 0.9))
    thick = 1 if scale < 0.7 else 2
    (_, text_h), base = cv2.getTextSize("Ag", _FONT, scale, thick)
    step = text_h + base + max(4, round(6 * scale))
    pad = max(6, round(10 * scale))
    rows: list[tuple[str, tuple[int, int, int]]] = []
    for i, line in enumerate(caption.lines):
        colour = (255, 255, 255) if i == 0 else (210, 210, 210)
        if caption.disclaimer in line or line.startswith("NOT RELIABLE") or "UNTRAINED" in line:
            colour = (120, 200, 255)  # amber (BGR): warnings read as warnings
        rows += [(part, colour) for part in _wrap(line, width - 2 * pad, scale, thick)]
    out = np.zeros((2 * pad + step * len(rows), width, 3), dtype=np.uint8)
    y = pad + text_h
    for text, colour in rows:
        cv2.putText(out, text, (pad, y), _FONT, scale, colour, thick, cv2.LINE_AA)
        y += step
    return out


def captioned(picture: np.ndarray, caption: Caption) -> np.ndarray:
    """The picture (uint8 BGR or grey) on top, its caption strip below, as uint8 BGR.

    A picture narrower than :data:`MIN_WIDTH` sits at the left of a canvas that wide, so the
    caption stays readable.
    """
    arr = np.asarray(picture)
    if arr.dtype != np.uint8 or arr.ndim not in (2, 3):
        raise ExplainError(
            f"a captioned picture must be uint8 (H, W[, 3]), not {arr.dtype} {arr.shape}."
        )
    bgr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR) if arr.ndim == 2 else arr[..., :3]
    h, w = bgr.shape[:2]
    width = max(w, MIN_WIDTH)
    top = np.zeros((h, width, 3), dtype=np.uint8)
    top[:, :w] = bgr
    return np.vstack([top, strip(caption, width)])


def png_text(caption: Caption) -> dict[str, str]:
    """The PNG text chunks written with a captioned picture."""
    from fpsm_core import __version__

    return {
        "Description": caption.text(),
        "Model": caption.model,
        "Disclaimer": caption.disclaimer,
        "Software": f"fpsm {__version__}",
    }


def write_png(path: str | Path, picture: np.ndarray, caption: Caption) -> Path:
    """Write ``captioned(picture, caption)`` as a PNG carrying the caption as text chunks."""
    from PIL import Image, PngImagePlugin

    target = Path(path)
    rgb = np.ascontiguousarray(captioned(picture, caption)[..., ::-1])
    info = PngImagePlugin.PngInfo()
    for key, value in png_text(caption).items():
        info.add_itxt(key, value)
    try:
        Image.fromarray(rgb).save(target, format="PNG", pnginfo=info)
    except OSError as exc:
        raise ExplainError(f"cannot write {target}: {exc.strerror or exc}.") from None
    return target


def read_png_text(path: str | Path) -> dict[str, str]:
    """The text chunks of a PNG (what :func:`write_png` stored)."""
    from PIL import Image

    with Image.open(path) as im:
        return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}

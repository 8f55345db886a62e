"""Corner annotations: patient, study, acquisition and display facts in the four corners of a film.

What each corner shows is a list of field names (:data:`FIELDS`), configurable per corner and kept
in the settings (``reading_room/corner_<corner>``, names joined with spaces). The text of every
field comes from :func:`field_lines`, a plain function of the film's
:class:`~fpsm_core.io.film_header.FilmHeader` and what the view shows (window, zoom, spacing,
orientation, frame), so the corners, the tests and an export read the same words. With PHI hidden
(one key, for screen sharing and teaching) every field whose DICOM attribute the PS3.15 Basic
Profile treats as identifying is left out and the top-left corner says "PHI hidden".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QEvent, QObject, QSettings, Qt
from PySide6.QtWidgets import QLabel

from viewer.orientation import transform_text

if TYPE_CHECKING:
    from fpsm_core.io.film_header import FilmHeader
    from viewer.image_view import ImageViewWidget

CORNERS = ("top_left", "top_right", "bottom_left", "bottom_right")
# Field name -> what it shows (the settings dialog lists these).
FIELDS = {
    "patient_name": "Patient name",
    "patient_id": "Patient ID",
    "sex_age": "Sex / age",
    "study_datetime": "Study date and time",
    "accession": "Accession number",
    "institution": "Institution",
    "modality": "Modality",
    "view": "View position and laterality",
    "description": "Study / series description",
    "series_instance": "Series and instance numbers",
    "window": "Window / level",
    "zoom": "Zoom",
    "spacing": "Pixel spacing and its source",
    "frame": "Frame counter (multi-frame)",
    "transform": "Rotated / flipped mark",
    "key_image": "Key image mark",
}
DEFAULT_CORNERS = {
    "top_left": ("patient_name", "patient_id", "sex_age"),
    "top_right": ("institution", "study_datetime", "accession"),
    "bottom_left": ("window", "zoom", "spacing"),
    "bottom_right": ("modality", "view", "series_instance", "frame", "transform", "key_image"),
}
# The header facts behind each field: a field is PHI when any of them is.
_SOURCES = {
    "patient_name": ("patient_name",),
    "patient_id": ("patient_id",),
    "sex_age": ("patient_sex", "patient_age"),
    "study_datetime": ("study_date", "study_time"),
    "accession": ("accession",),
    "institution": ("institution",),
    "description": ("study_description", "series_description"),
}
PHI_NOTE = "PHI hidden"
TURNED_STYLE = "color: #ffb74d;"


@dataclass(frozen=True)
class ViewFacts:
    """What the view shows, for the display fields (taken from the view by :func:`view_facts`)."""

    window: tuple[float, float] | None = None
    integer: bool = True
    inverted: bool = False
    zoom: float | None = None
    spacing: tuple[float, float] | None = None
    orientation: tuple[tuple[int, int], tuple[int, int]] = ((1, 0), (0, 1))
    frame: tuple[int, int] | None = None
    key_image: bool = False


def view_facts(
    view: ImageViewWidget, frame: tuple[int, int] | None = None, key_image: bool = False
) -> ViewFacts:
    image = view.image
    if image is None:
        return ViewFacts()
    m = view.orientation
    return ViewFacts(
        window=view.window_level,
        integer=bool(np.issubdtype(np.asarray(image.pixels).dtype, np.integer)),
        inverted=view.inverted,
        zoom=view.screen_per_image() * 100,
        spacing=getattr(image, "spacing_mm", None),
        orientation=((int(m[0, 0]), int(m[0, 1])), (int(m[1, 0]), int(m[1, 1]))),
        frame=frame,
        key_image=key_image,
    )


def format_date(value: str | None) -> str:
    """A DICOM date (YYYYMMDD) as YYYY-MM-DD; anything else as it is."""
    if value and len(value) >= 8 and value[:8].isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:8]}"
    return value or ""


def _time(value: str | None) -> str:
    if value and len(value) >= 4 and value[:4].isdigit():
        return f"{value[:2]}:{value[2:4]}" + (f":{value[4:6]}" if value[4:6].isdigit() else "")
    return value or ""


def is_phi_field(name: str, header: FilmHeader | None) -> bool:
    """Whether a corner field shows something that identifies the patient."""
    from fpsm_core.io.film_header import FilmHeader

    h = header or FilmHeader()
    return any(h.is_phi(source) for source in _SOURCES.get(name, ()))


def field_lines(name: str, header: FilmHeader | None, facts: ViewFacts) -> list[str]:
    """The text lines of one field (empty when there is nothing to say)."""
    h = header
    if name in ("window", "zoom", "spacing", "frame", "transform", "key_image"):
        return _display_lines(name, h, facts)
    if h is None:
        return []
    if name == "patient_name":
        return [h.patient_name.replace("^", " ").strip()] if h.patient_name else []
    if name == "patient_id":
        return [f"ID {h.patient_id}"] if h.patient_id else []
    if name == "sex_age":
        parts = [p for p in (h.patient_sex, h.patient_age) if p]
        return [" / ".join(parts)] if parts else []
    if name == "study_datetime":
        text = " ".join(p for p in (format_date(h.study_date), _time(h.study_time)) if p)
        return [text] if text else []
    if name == "accession":
        return [f"Acc {h.accession}"] if h.accession else []
    if name == "institution":
        return [h.institution] if h.institution else []
    if name == "modality":
        return [h.modality] if h.modality else []
    if name == "view":
        parts = [p for p in (h.view_position, h.laterality) if p]
        return [" ".join(parts)] if parts else []
    if name == "description":
        return [d for d in (h.study_description, h.series_description) if d]
    if name == "series_instance":
        parts = []
        if h.series_number is not None:
            parts.append(f"Se {h.series_number}")
        if h.instance_number is not None:
            parts.append(f"Im {h.instance_number}")
        return ["  ".join(parts)] if parts else []
    return []


def _display_lines(name: str, h: FilmHeader | None, f: ViewFacts) -> list[str]:
    if name == "window" and f.window is not None:
        center, width = f.window
        w, c = (f"{width:.0f}", f"{center:.0f}") if f.integer else (f"{width:.6g}", f"{center:.6g}")
        return [f"W {w}  L {c}" + ("  (inverted)" if f.inverted else "")]
    if name == "zoom" and f.zoom is not None:
        return [f"zoom {f.zoom:.0f}%"]
    if name == "spacing" and f.window is not None:
        if f.spacing is None:
            return ["uncalibrated: lengths in pixels"]
        source = h.spacing_source if h is not None else ""
        where = {
            "PixelSpacing": "PixelSpacing",
            "ImagerPixelSpacing": "ImagerPixelSpacing: detector",
        }.get(source, "from the file")
        rows, cols = f.spacing
        size = f"{rows:.3g}" if abs(rows - cols) < 1e-9 else f"{rows:.3g} x {cols:.3g}"
        return [f"{size} mm/px ({where})"]
    if name == "frame" and f.frame is not None and f.frame[1] > 1:
        return [f"frame {f.frame[0] + 1}/{f.frame[1]}"]
    if name == "transform":
        text = transform_text(np.array(f.orientation))
        return [text.upper()] if text else []
    if name == "key_image" and f.key_image:
        return ["★ KEY IMAGE"]
    return []


def corner_text(
    fields: Sequence[str], header: FilmHeader | None, facts: ViewFacts, phi_hidden: bool
) -> str:
    """A corner's text: its fields' lines, PHI fields left out when hidden."""
    lines: list[str] = []
    for name in fields:
        if phi_hidden and is_phi_field(name, header):
            continue
        lines.extend(field_lines(name, header, facts))
    return "\n".join(lines)


def load_corners(settings: QSettings | None) -> dict[str, tuple[str, ...]]:
    """Each corner's fields from the settings (unknown names dropped), else the defaults."""
    out = dict(DEFAULT_CORNERS)
    if settings is None:
        return out
    for corner in CORNERS:
        value = settings.value(f"reading_room/corner_{corner}")
        if isinstance(value, str):
            out[corner] = tuple(name for name in value.split() if name in FIELDS)
    return out


def save_corners(settings: QSettings, corners: Mapping[str, Sequence[str]]) -> None:
    for corner in CORNERS:
        names = [name for name in corners.get(corner, ()) if name in FIELDS]
        settings.setValue(f"reading_room/corner_{corner}", " ".join(names))


def caption_height(view: ImageViewWidget) -> int:
    """The room the view's overlay caption takes at the top (0 when it is hidden)."""
    caption = view.caption_label
    return caption.height() + 4 if caption.isVisibleTo(view) and caption.text() else 0


class CornerText(QObject):
    """Four corner labels over one film view (a child of the view).

    The view's own bottom-left line (window, zoom, spacing) is hidden: its facts are fields here.
    """

    def __init__(self, view: ImageViewWidget, corners: Mapping[str, Sequence[str]]) -> None:
        super().__init__(view)
        self._view = view
        self.corners = {c: tuple(corners.get(c, ())) for c in CORNERS}
        self.header: FilmHeader | None = None
        self.phi_hidden = False
        self.frame: tuple[int, int] | None = None
        self.key_image = False
        self.labels: dict[str, QLabel] = {}
        for corner in CORNERS:
            label = QLabel(view.graphics)
            label.setObjectName("overlayText")
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            align = Qt.AlignmentFlag.AlignRight if "right" in corner else Qt.AlignmentFlag.AlignLeft
            label.setAlignment(align)
            self.labels[corner] = label
        view.info_label.hide()
        view.window_changed.connect(self.refresh)
        view.view_changed.connect(self.refresh)
        view.graphics.installEventFilter(self)
        view.caption_label.installEventFilter(self)  # the top blocks sit below the caption
        self.refresh()

    def set_corners(self, corners: Mapping[str, Sequence[str]]) -> None:
        self.corners = {c: tuple(corners.get(c, ())) for c in CORNERS}
        self.refresh()

    def set_header(self, header: FilmHeader | None) -> None:
        self.header = header
        self.refresh()

    def set_phi_hidden(self, hidden: bool) -> None:
        self.phi_hidden = bool(hidden)
        self.refresh()

    def set_frame(self, frame: tuple[int, int] | None) -> None:
        self.frame = frame
        self.refresh()

    def set_key_image(self, marked: bool) -> None:
        self.key_image = bool(marked)
        self.refresh()

    def text(self, corner: str) -> str:
        return self.labels[corner].text()

    def all_text(self) -> str:
        """Every corner's text, top left to bottom right (for tests and checks)."""
        return "\n".join(self.text(c) for c in CORNERS)

    def refresh(self, *_: object) -> None:
        view = self._view
        image = view.image
        header = self.header if image is not None else None
        facts = view_facts(view, self.frame, self.key_image)
        for corner, label in self.labels.items():
            text = corner_text(self.corners[corner], header, facts, self.phi_hidden)
            if corner == "top_left" and self.phi_hidden and image is not None:
                text = "\n".join(t for t in (PHI_NOTE, text) if t)
            label.setText(text)
            label.adjustSize()
            label.setVisible(bool(text))
        self._place()

    def _place(self) -> None:
        view = self._view
        rect = view.graphics.mapFromScene(view.view.sceneBoundingRect()).boundingRect()
        # Both top blocks go below the overlay caption, the left one below the cursor line too.
        top = 8 + caption_height(view)
        cursor_line = view.status_label.fontMetrics().height() + 6
        for corner, label in self.labels.items():
            w, h = label.width(), label.height()
            x = rect.left() + 8 if "left" in corner else rect.right() - w - 8
            if corner == "top_left":
                y = rect.top() + top + cursor_line
            elif corner == "top_right":
                y = rect.top() + top
            else:
                y = rect.bottom() - h - 8
            label.move(int(x), int(y))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt name)
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Show, QEvent.Type.Hide):
            self._place()
        return False

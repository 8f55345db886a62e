"""The one-page "reading-room keys" help (F1): mouse and keys of the film views on one page.

The keys are read from the window's actions (so a changed shortcut is never out of date here);
the mouse gestures, which are not actions, are listed as written below.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

MOUSE = (
    ("Right-drag", "window / level (left-right: width, up-down: level)"),
    ("Left-drag", "pan (with the ruler on: measure)"),
    ("Wheel", "zoom around the cursor"),
    ("Ctrl+wheel", "next / previous frame of a multi-frame film"),
    ("Click a viewport", "make it active (keys and the toolbar act on it)"),
    ("Drag a worklist item onto a viewport", "show that image there"),
)
# Sections of the page, by action name (names the window lacks are skipped).
SECTIONS = (
    ("Viewports", "layout_1x1 layout_1x2 layout_2x2 link_views compare_prior hang_views"),
    (
        "Film",
        "preset_dicom preset_auto preset_lung preset_soft tissue preset_bone invert fit "
        "one_to_one zoom_in zoom_out rotate_cw rotate_ccw flip_h flip_v reset_view",
    ),
    ("Reading", "hide_phi magnifier key_image next_frame prev_frame cine ruler clear_rulers"),
    ("AI", "overlay next_level prev_level next_finding prev_finding rerun"),
    ("Worklist and output", "next_image prev_image copy_view print_pdf export_png tags"),
)
_SPLIT_NAMES = {"preset_soft": "preset_soft tissue"}


def _names(text: str) -> list[str]:
    names, words = [], text.split()
    i = 0
    while i < len(words):
        word = words[i]
        if word in _SPLIT_NAMES and i + 1 < len(words):
            names.append(f"{word} {words[i + 1]}")
            i += 2
            continue
        names.append(word)
        i += 1
    return names


def keys_html(
    actions: Mapping[str, QAction], sections: Sequence[tuple[str, str]] = SECTIONS
) -> str:
    """The help page as HTML: mouse gestures, then each section's actions with their keys."""
    rows = ["<h3>Mouse</h3><table>"]
    rows += [f"<tr><td><b>{escape(k)}</b></td><td>{escape(v)}</td></tr>" for k, v in MOUSE]
    rows.append("</table>")
    for title, names in sections:
        rows.append(f"<h3>{escape(title)}</h3><table>")
        for name in _names(names):
            action = actions.get(name)
            if action is None:
                continue
            key = action.shortcut().toString() or "—"
            text = action.text().replace("&", "")
            rows.append(f"<tr><td><b>{escape(key)}</b></td><td>{escape(text)}</td></tr>")
        rows.append("</table>")
    rows.append("<p>Shift+F1 lists every shortcut of the window.</p>")
    return "\n".join(rows)


class ReadingKeysDialog(QDialog):
    """The help page in a window of its own (non-modal: it can stay open while reading)."""

    def __init__(self, actions: Mapping[str, QAction], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Reading-room keys")
        self.resize(560, 720)
        layout = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setHtml(keys_html(actions))
        layout.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        layout.addWidget(buttons)

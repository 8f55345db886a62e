"""Opening the patch editor from the viewer's menu, without importing it at viewer start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

_OPEN: list[Any] = []  # editors opened from the viewer stay alive until closed


def viewer_model_path(parent: Any) -> str | None:
    """The model the viewer has loaded (the studio checks with it), or None (the demo)."""
    model = getattr(getattr(parent, "state", None), "model", None)
    path = (getattr(model, "identity", None) or {}).get("path") if model is not None else None
    return str(path) if path and Path(str(path)).exists() else None


def open_patch_editor(parent: Any = None, library: str | Path | None = None) -> Any:
    """Ask for a library folder (unless given) and open the editor on it as its own window.

    Returns:
        The editor window, or None when the user cancelled the folder dialog.
    """
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QFileDialog

    from viewer.patch_editor.window import PatchEditorWindow

    if library is None:
        library = QFileDialog.getExistingDirectory(
            parent, "Open or create a DADAM patch library (a folder)"
        )
        if not library:
            return None
    window = PatchEditorWindow(library, model=viewer_model_path(parent))
    window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    _OPEN.append(window)
    window.destroyed.connect(lambda *_: _OPEN.remove(window) if window in _OPEN else None)
    window.show()
    return window

"""The DADAM patch editor: curate lesion patches of a ``fpsm_core.dadam`` library interactively.

A Qt-free session and state model (``model``, ``state``), small widgets bound to the state
(``gallery``, ``panels``, ``source_view``, ``duplicates``), workers for thumbnails, source images
and imports (``workers``), the composition studio (``studio``, issue 16), and the window that
wires them (``window``). Open it with
``fpsm-viewer --patch-editor LIBRARY`` or from the viewer's Tools menu. See docs/patch_editor.md.
"""

from typing import Any

__all__ = ["PatchEditorWindow"]


def __getattr__(name: str) -> Any:
    # Lazy, so the viewer's menu can name the editor without importing its widgets at start-up.
    if name == "PatchEditorWindow":
        from viewer.patch_editor.window import PatchEditorWindow

        return PatchEditorWindow
    raise AttributeError(name)

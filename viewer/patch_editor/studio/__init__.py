"""The composition studio (issue 16): paste and blend patches with the model in the loop.

A Qt-free model (``model``: targets, placed patches, recipes, lung-field placement), the state
object the widgets bind to (``state``), the composite view with live dragging
(``composite_view``), the small panels (``panels``, ``check_panel``), workers for loading and
for the model (``workers``), and the workspace that wires them into the patch editor
(``widget``). See docs/patch_editor.md, "Composition studio".
"""

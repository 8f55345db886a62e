"""The composition studio workspace of the patch editor: wiring of its state, workers and widgets.

A tab of :class:`viewer.patch_editor.window.PatchEditorWindow` (``add_workspace``), bound to the
editor's :class:`EditorState`: the gallery's selection is what "Add gallery selection" places, and
the library the patches come from is the editor's open library. The composite is made by
``fpsm_core.dadam.recipe.render`` (the generator's own code), so a saved recipe generates the same
pixels. Loading targets, reading recipes and running the model happen on worker threads; results
for a target or composite no longer shown are dropped.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from viewer.patch_editor.studio import model as sm
from viewer.patch_editor.studio.check_panel import CheckPanel, ScorePanel
from viewer.patch_editor.studio.composite_view import CompositeViewWidget
from viewer.patch_editor.studio.panels import (
    LabelVectorTable,
    PatchPanel,
    SettingsPanel,
    TargetPanel,
)
from viewer.patch_editor.studio.state import StudioState
from viewer.patch_editor.studio.workers import JobRunner, ModelWorker

if TYPE_CHECKING:
    from fpsm_core.dadam.library import PatchLibrary
    from fpsm_core.dadam.recipe import Recipe
    from viewer.patch_editor.state import EditorState

CHECK_DELAY_MS = 250  # after the last change, re-check (a drag sends many)


def list_targets(source: str, image_roots: list[Path]) -> tuple[list[sm.TargetRef], Any]:
    """The targets of a folder or a labels CSV, and the CSV's co-occurrence matrix (or None)."""
    path = Path(source)
    if path.is_dir():
        return sm.targets_from_folder(path), None
    if not path.is_file():
        raise sm.StudioError("no such folder or labels CSV", path=path)
    from fpsm_core.dadam.cooc import correlation_matrix

    refs = sm.targets_from_csv(path, image_roots)
    y = np.stack([r.values >= 0.5 for r in refs]).astype(np.float64)
    return refs, correlation_matrix(y)


def opened_recipe(output: Path, image: str) -> tuple[Recipe, sm.TargetRef, Path]:
    """A generated image's recipe and its target (from the output folder's manifest)."""
    import json

    from fpsm_core.dadam.errors import DadamError
    from fpsm_core.dadam.generator import MANIFEST
    from fpsm_core.dadam.recipe import generated_image_path, recipe_for_generated

    try:
        recipe = recipe_for_generated(output, image)
        with (output / MANIFEST).open(encoding="utf-8") as fh:
            header = json.loads(fh.readline())
    except (DadamError, OSError, ValueError) as exc:
        raise sm.StudioError(str(exc)) from None
    root = Path(str(header.get("images_root", "")))
    values = np.array([1.0 if x in recipe.target_labels else 0.0 for x in sm.LABELS], np.float32)
    if not recipe.target_labels:
        values[sm.NO_FINDING] = 1.0
    meta = dict(recipe.target_meta) | {"path": recipe.target_path}
    ref = sm.TargetRef(
        root / recipe.target_path,
        meta.get("dicom_id") or recipe.target_path,
        values,
        True,
        meta,
        recipe.target_row,
        None,
        root,
    )
    return recipe, ref, generated_image_path(output, recipe)


class StudioWidget(QWidget):
    """The studio.

    Args:
        editor: The patch editor's state (session and gallery selection).
        model: Checkpoint or ensemble for the model check (default: the bundled demo ensemble).
        images: Extra folders where a labels CSV's images are looked for.

    Signals:
        target_shown(Target): a target is loaded and composed.
        recipe_saved(Path, str): a recipe was appended to this plan, as this item id.
        recipe_opened(Recipe): a generated image's recipe is on screen.
    """

    target_shown = Signal(object)
    recipe_saved = Signal(object, str)
    recipe_opened = Signal(object)

    def __init__(
        self,
        editor: EditorState,
        model: str | Path | None = None,
        images: list[Path] | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.editor = editor
        self.images = list(images or [])
        self.state = StudioState(self)
        self.state.library = self._library
        self.jobs = JobRunner(self)
        self.model = ModelWorker(model, self)
        self.view = CompositeViewWidget(self.state)
        self.target_panel = TargetPanel(self.state)
        self.patch_panel = PatchPanel(self.state)
        self.settings_panel = SettingsPanel(self.state)
        self.label_table = LabelVectorTable(self.state)
        self.check_panel = CheckPanel(self.state, self.model)
        self.score_panel = ScorePanel(self.state, self.model, editor)
        self.label_summary = QLabel("")
        self.label_summary.setWordWrap(True)
        self.state.labels_changed.connect(self._on_state_labels_changed)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        self.message.setObjectName("studio_message")
        self._build_recipe_box()

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.target_panel, 1)
        ll.addWidget(self.patch_panel)
        ll.addWidget(self.settings_panel)
        centre = QWidget()
        cl = QVBoxLayout(centre)
        cl.setContentsMargins(0, 0, 0, 0)
        cl.addWidget(self.view, 1)
        cl.addWidget(self.message)
        right = QSplitter(Qt.Orientation.Vertical)
        labels_box = QGroupBox("Label vector (what training sees)")
        lb = QVBoxLayout(labels_box)
        lb.addWidget(self.label_summary)
        lb.addWidget(self.label_table, 1)
        right.addWidget(labels_box)
        right.addWidget(self.check_panel)
        right.addWidget(self.recipe_box)
        right.addWidget(self.score_panel)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(centre)
        split.addWidget(right)
        right.setSizes([200, 560, 120, 90])
        split.setStretchFactor(1, 1)
        split.setSizes([330, 700, 570])
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(split)

        self._check_timer = QTimer(self)
        self._check_timer.setSingleShot(True)
        self._check_timer.setInterval(CHECK_DELAY_MS)
        self._check_timer.timeout.connect(self.check_panel.request_check)
        self.target_panel.source_requested.connect(self.list_targets)
        self.target_panel.target_picked.connect(self.load_target)
        self.patch_panel.add_selected.connect(self.add_selection)
        self.patch_panel.add_partner.connect(self.add_partner)
        self.jobs.finished.connect(self._on_jobs_finished)
        self.jobs.failed.connect(self._on_jobs_failed)
        self.state.message_changed.connect(self._on_state_message_changed)
        self.state.composition_changed.connect(self._on_state_composition_changed)
        self.state.current_changed.connect(self._on_state_current_changed)
        editor.session_changed.connect(self._on_editor_session_changed)
        self._on_editor_session_changed(editor.session)

    # -- construction ----------------------------------------------------------------------------
    def _build_recipe_box(self) -> None:
        box = QGroupBox("Recipe")
        self.plan_path = QLineEdit()
        self.plan_path.setPlaceholderText("plan file (.jsonl) to append the composition to")
        self.save_button = QPushButton("Append to plan")
        self.plan_browse = QPushButton("…")
        self.output_path = QLineEdit()
        self.output_path.setPlaceholderText("DADAM output folder")
        self.generated_name = QLineEdit()
        self.generated_name.setPlaceholderText("generated image (id or file name)")
        self.open_button = QPushButton("Open generated image")
        self.generated_browse = QPushButton("…")
        self.recipe_text = QLabel("")
        self.recipe_text.setWordWrap(True)
        self.recipe_text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QHBoxLayout()
        row.addWidget(self.plan_path, 1)
        row.addWidget(self.plan_browse)
        row.addWidget(self.save_button)
        row2 = QHBoxLayout()
        row2.addWidget(self.output_path, 1)
        row2.addWidget(self.generated_name, 1)
        row2.addWidget(self.generated_browse)
        row2.addWidget(self.open_button)
        lay = QVBoxLayout(box)
        lay.addLayout(row)
        lay.addLayout(row2)
        lay.addWidget(self.recipe_text)
        self.save_button.clicked.connect(self.save_recipe)
        self.open_button.clicked.connect(self._on_open_clicked)
        self.plan_browse.clicked.connect(self._on_plan_browse_clicked)
        self.generated_browse.clicked.connect(self._on_generated_browse_clicked)
        self.recipe_box = box

    def _on_plan_browse_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Plan to append the recipe to", self.plan_path.text(),
            "DADAM plan (*.jsonl);;All files (*)",
            options=QFileDialog.Option.DontConfirmOverwrite,  # appended to, never overwritten
        )  # fmt: skip
        if path:
            self.plan_path.setText(path)

    def _on_generated_browse_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "A generated image (OUT/images/...)", self.output_path.text(),
            "Images (*.png *.jpg);;All files (*)",
        )  # fmt: skip
        if path:  # OUT/images/<id>.png: the output folder is two levels up
            self.output_path.setText(str(Path(path).parent.parent))
            self.generated_name.setText(Path(path).name)
            self._on_open_clicked()

    def _library(self) -> PatchLibrary | None:
        session = self.editor.session
        return None if session is None else session.library

    # -- targets -----------------------------------------------------------------------------------
    def list_targets(self, source: str) -> None:
        roots = list(self.images)
        self.state.say(f"Listing targets of {source}…")
        self.jobs.request("targets", lambda: list_targets(source, roots))

    def load_target(self, ref: sm.TargetRef) -> None:
        self.jobs.request("target", lambda: sm.load_target(ref))

    def _on_jobs_finished(self, kind: str, value: Any) -> None:
        if kind == "targets":
            refs, corr = value
            self.state.set_targets(refs, corr)
            self.state.say(
                f"{len(refs)} targets" + (" with labels." if refs and refs[0].labelled else ".")
            )
        elif kind == "target" and isinstance(value, tuple):
            self._show_recipe(*value)
        elif kind == "target":
            self.state.source = None
            self.state.set_target(value)
            self.target_shown.emit(value)

    def _on_jobs_failed(self, kind: str, message: str) -> None:
        self.state.say(message, error=True)

    # -- patches -----------------------------------------------------------------------------------
    def _alpha(self) -> float:
        return sm.DEFAULT_ALPHA[self.state.settings.mode]

    def add_selection(self) -> None:
        lib = self._library()
        ids = self.editor.targets()
        if lib is None or not ids:
            self.state.say("Select patches in the gallery first.", error=True)
            return
        placed = {p.patch_id for p in self.state.patches}
        added = 0
        for pid in ids:
            if pid in placed:
                continue
            try:
                patch = lib.get(pid)
            except KeyError:
                continue
            self.state.add_patch(sm.studio_patch(patch, self._alpha()))
            added += 1
        self.state.say(f"{added} patch{'es' if added != 1 else ''} placed.")

    def add_partner(self, label: str) -> None:
        """Place a patch of ``label`` (accepted ones first) beside the edited one."""
        lib = self._library()
        if lib is None:
            self.state.say("Open a patch library first.", error=True)
            return
        placed = {p.patch_id for p in self.state.patches}
        for states in (("accepted",), ("unreviewed",)):
            for patch in lib.patches(label, states=states, limit=50):
                if patch.id not in placed:
                    self.state.add_patch(sm.studio_patch(patch, self._alpha()))
                    self.state.say(f"Partner {label} patch {patch.id} placed.")
                    return
        self.state.say(f"The library has no usable {label} patch to pair.", error=True)

    def _on_editor_session_changed(self, session: Any) -> None:
        lib = self._library()
        self.state.partner_candidates = list(lib.counts()) if lib is not None else None
        self.state.set_patches(())

    # -- recipes -----------------------------------------------------------------------------------
    def save_recipe(self) -> Path | None:
        """Append the composition on screen to the plan file named in the box."""
        from fpsm_core.dadam.errors import DadamError
        from fpsm_core.dadam.recipe import append_to_plan

        recipe, t = self.state.recipe, self.state.target
        text = self.plan_path.text().strip()
        if recipe is None or t is None or not recipe.patches:
            self.state.say("Nothing to save: pick a target and place a patch first.", error=True)
            return None
        if not text:
            self.state.say("Name the plan file to append the recipe to.", error=True)
            return None
        lib = self._library()
        try:
            item = append_to_plan(
                text,
                recipe,
                labels_csv=t.ref.labels_csv,
                library=lib.root if lib is not None else None,
            )
        except DadamError as exc:
            self.state.say(str(exc), error=True)
            return None
        labels = "" if t.ref.labels_csv else " --labels LABELS.csv"
        lung = self.state.settings.lung
        labels += "" if lung == "estimate" else f" --lung {lung}"
        where = f" --library {lib.root}" if lib is not None else ""
        self.state.say(
            f"Recipe {item.id} appended to {text} as item {item.index}; make it with fpsm dadam "
            f"generate --plan {text}{where} --images {t.ref.images_root}{labels} --out DIR."
        )
        self.recipe_saved.emit(Path(text), item.id)
        return Path(text)

    def _on_open_clicked(self) -> None:
        self.open_generated(self.output_path.text().strip(), self.generated_name.text().strip())

    def open_generated(self, output: str | Path, image: str) -> None:
        """Show a generated image's recipe and composite (read from its manifest)."""
        out = Path(output)
        self.jobs.request("target", lambda: self._read_recipe(out, image))

    @staticmethod
    def _read_recipe(out: Path, image: str) -> tuple[Recipe, sm.Target, Path]:
        recipe, ref, png = opened_recipe(out, image)
        return recipe, sm.load_target(ref), png

    def _show_recipe(self, recipe: Recipe, target: sm.Target, png: Path) -> None:
        lib = self._library()
        if lib is None:
            self.state.say("Open the patch library the output was made from first.", error=True)
            return
        patches = []
        for rp in recipe.patches:
            try:
                p = lib.get(rp.patch_id)
            except KeyError:
                self.state.say(f"This library has no patch {rp.patch_id} (the recipe's).", True)
                return
            patches.append(
                sm.studio_patch(p, rp.alpha, rp.center).with_(
                    factor=rp.scale, feather=rp.feather, match=rp.match
                )
            )
        settings = sm.StudioSettings(mode=recipe.mode, mm_consistent=True, seed=recipe.seed)
        self.state.load(target, patches, settings, source=recipe)
        self.recipe_text.setText(recipe_summary(recipe))
        comp = self.state.composition
        same = ""
        if comp is not None and png.is_file():
            import cv2

            made = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
            same = (
                " It matches the generated image bit for bit."
                if made is not None and np.array_equal(made, comp.image)
                else " It differs from the generated file (regenerated with other settings?)."
            )
        self.state.say(f"Recipe of {recipe.item_id()} opened.{same}")
        self.recipe_opened.emit(recipe)

    # -- messages and checks ------------------------------------------------------------------------
    def _on_state_message_changed(self, text: str, error: bool) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #ff8a80;" if error else "")
        if error:
            self.editor.say(text, error=True)

    def _on_state_labels_changed(self, values: np.ndarray) -> None:
        names = [sm.LABELS[i] for i in np.flatnonzero(values > 0)]
        self.label_summary.setText("Composite: " + (", ".join(names) if names else "none"))

    def _on_state_composition_changed(self, _comp: Any) -> None:
        if self.check_panel.auto and self.state.composition is not None:
            self._check_timer.start()

    def _on_state_current_changed(self, _index: int) -> None:
        # Another patch is edited: its class is the one to check.
        if self.check_panel.auto and self.state.composition is not None:
            self._check_timer.start()

    def shutdown(self) -> None:
        self._check_timer.stop()
        self.jobs.shutdown()
        self.model.shutdown()

    def threads(self) -> list[Any]:
        return [self.jobs.worker_thread, self.model.worker_thread]


def recipe_summary(recipe: Recipe) -> str:
    """The recipe in words: target, each patch with its placement, alpha and seed."""
    lines = [
        f"<b>{recipe.item_id()}</b>: {recipe.mode}, seed {recipe.seed}, target "
        f"{recipe.target_path} ({', '.join(recipe.target_labels) or 'No Finding'})"
    ]
    for p in recipe.patches:
        lines.append(
            f"patch {p.patch_id} {p.label} at ({p.center[0]:.3f}, {p.center[1]:.3f}), "
            f"scale {p.scale:.2f}, alpha {p.alpha:.2f}, feather {p.feather:.2f}"
            + ("" if p.match else ", no intensity matching")
        )
    return "<br>".join(lines)

"""Screenshot of the composition studio for the docs (docs/img/studio.png).

``QT_QPA_PLATFORM=offscreen python tools/studio_screenshot.py WORKDIR docs/img/studio.png
[docs/img/studio_gallery.png]`` simulates a few films (512 px) with their labels and boxes in WORKDIR, imports their patches into a
library there, opens the patch editor on its Studio tab, picks a normal target from the labels CSV,
places a lung patch and its MixUp partner, runs "Check with the model" with the bundled demo
ensemble, and saves the window. With a second file it then scores a dozen patches (N = 4) with the
same model and saves the gallery sorted by efficacy, each card with its badge.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(work: str, out: str, gallery: str | None = None) -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fpsm_core import sim
    from fpsm_core.dadam import PatchLibrary, import_boxes, read_boxes
    from fpsm_core.dadam.composition import LUNG_FIELD_CLASSES
    from viewer.patch_editor import PatchEditorWindow
    from viewer.theme import apply_theme

    base = Path(work)
    if not (base / "labels.csv").is_file():
        sim.write_dataset(base, n=24, seed=5, format="png", size=512)
    lib_root = base / "lib"
    with PatchLibrary(lib_root) as lib:
        if len(lib) == 0:
            import_boxes(lib, read_boxes(base / "boxes.csv", "fpsm"), base)
        pid = next(
            p.id for p in lib.patches() if p.label in LUNG_FIELD_CLASSES and 60 < p.width < 160
        )
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    window = PatchEditorWindow(lib_root)
    window.resize(1600, 1000)
    window.show()
    studio = window.studio
    window.tabs.setCurrentWidget(studio)
    status = {"code": 1}

    def on_targets(_refs: object) -> None:
        refs = studio.state.targets
        row = next(i for i, r in enumerate(refs) if r.label_text() == "No Finding")
        studio.target_panel.list.setCurrentRow(row)

    def on_target(_t: object) -> None:
        window.state.set_selection([pid])
        studio.add_selection()
        if studio.state.partner:
            studio.add_partner(studio.state.partner)
        studio.state.set_current(0)
        studio.state.update_settings(mode="mixup")
        studio.check_panel.button.click()

    def on_check(_r: object) -> None:
        QTimer.singleShot(300, save)

    def save() -> None:
        ok = window.grab().save(out, "PNG")
        status["code"] = 0 if ok else 1
        if gallery is None or not ok:
            window.close()
            app.quit()
            return
        window.state.set_selection(window.state.ids[:12])
        studio.score_panel.per_patch.setValue(4)
        studio.score_panel.scored.connect(lambda _r: QTimer.singleShot(0, save_gallery))
        studio.score_panel.button.click()

    def save_gallery() -> None:
        window.tabs.setCurrentIndex(0)
        window.filter_bar.sort_combo.setCurrentText("efficacy")
        window.filter_bar.descending.setChecked(True)
        window.state.set_selection([])
        QTimer.singleShot(1500, grab_gallery)

    def grab_gallery() -> None:
        ok = window.grab().save(str(gallery), "PNG")
        status["code"] = 0 if ok else 1
        window.close()
        app.quit()

    studio.state.targets_changed.connect(on_targets)
    studio.target_shown.connect(on_target)
    studio.check_panel.check_shown.connect(on_check)
    studio.check_panel.check_failed.connect(lambda m: (print(m), save()))
    studio.list_targets(str(base / "labels.csv"))
    QTimer.singleShot(600000, app.quit)  # give up after ten minutes
    app.exec()
    return status["code"]


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))

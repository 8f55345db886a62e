"""Scoring the gallery's selection from the studio: the GUI side of ``fpsm dadam score``.

The work is ``fpsm_core.dadam.efficacy`` (N random valid compositions of each patch onto targets
without its finding; efficacy = mean rise of the class probability with its interval, plus the
in-box CAM energy at the best level, stored in the library with the model's identity and seed). It
runs on the studio's model thread with progress and cancel; the targets are the studio's listed
targets (a folder or a labels CSV).
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viewer.patch_editor.studio.check_panel import ScorePanel


def core_can_score() -> bool:
    """Whether this build's ``fpsm_core`` has the efficacy scorer."""
    return importlib.util.find_spec("fpsm_core.dadam.efficacy") is not None


def start_scoring(panel: ScorePanel) -> bool:
    """Start scoring the selection on the model thread; False (and one sentence) when it cannot."""
    st = panel.state
    ids = panel.editor.targets()
    if not core_can_score():
        st.say("This build's fpsm_core has no efficacy scorer (fpsm_core.dadam.efficacy).", True)
        return False
    if not ids:
        st.say("Select the patches to score in the gallery first.", error=True)
        return False
    session = panel.editor.session
    if session is None:
        st.say("Open a patch library first.", error=True)
        return False
    if not st.targets:
        st.say("List targets (a folder or a labels CSV) to score the patches on.", error=True)
        return False
    from viewer.patch_editor.studio.score_job import make_score_job

    n = int(panel.per_patch.value())
    job = make_score_job(session.root, tuple(ids), st.targets, n, st.settings.seed)
    panel.started(len(ids))
    panel.worker.score(job)
    return True


def describe_scores(value: Any) -> str:
    """One line about a finished scoring run."""
    from viewer.patch_editor.studio.score_job import summary

    return summary(value)

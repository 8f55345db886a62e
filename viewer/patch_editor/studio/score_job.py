"""The "score selection" job: ``fpsm_core.dadam.efficacy.score_patches`` on the model thread.

Kept apart from the widgets so that the job holds only plain values (the library folder, the
patch ids, where the targets are): it runs on the model's thread with its own library connection
(a SQLite connection belongs to the thread that opened it) and the thread's inference service.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from viewer.patch_editor.studio.model import TargetRef

ScoreJob = Callable[[Any, Callable[[int, int], None], Callable[[], bool]], Any]


def target_source(targets: Sequence[TargetRef]) -> tuple[Path | None, Path | None]:
    """(images folder, labels CSV) the targets were listed from."""
    first = targets[0]
    return first.images_root, first.labels_csv


def make_score_job(
    library: Path, ids: Sequence[int], targets: Sequence[TargetRef], per_patch: int, seed: int
) -> ScoreJob:
    """A job scoring ``ids`` on the studio's targets, N compositions each, seeded."""
    images, labels_csv = target_source(targets)
    patch_ids = [int(i) for i in ids]

    def job(
        service: Any, progress: Callable[[int, int], None], cancelled: Callable[[], bool]
    ) -> Any:
        from fpsm_core.dadam.efficacy import score_patches

        return score_patches(
            library,
            service,
            images=images,
            labels_csv=labels_csv,
            per_patch=per_patch,
            seed=seed,
            patch_ids=patch_ids,
            progress=progress,
            cancel=cancelled,
        )

    return job


def summary(report: Any) -> str:
    """One line: how many were scored, skipped, failed; the best and worst efficacy."""
    scored = list(report.scored)
    parts = [f"{len(scored)} patch{'es' if len(scored) != 1 else ''} scored"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} already scored with this model, seed and N")
    if report.failed:
        parts.append(f"{len(report.failed)} failed (first: {report.failed[0]})")
    text = ", ".join(parts)
    if report.cancelled:
        text += "; cancelled (what was scored is stored)"
    if scored:
        best = max(scored, key=lambda s: s.efficacy)
        worst = min(scored, key=lambda s: s.efficacy)
        text += (
            f". Best: patch {best.patch_id} {best.label} {best.efficacy:+.3f} "
            f"[{best.lo:+.3f}, {best.hi:+.3f}]; worst: patch {worst.patch_id} "
            f"{worst.efficacy:+.3f}"
        )
    return text + f" (model {report.model.name}, {report.seconds:.1f} s)."

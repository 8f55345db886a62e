"""Comparing two results: how each finding's probability changed between two films.

A reader hanging a prior beside the current film asks "what changed?"; :func:`score_changes`
answers per label, largest change first, only for labels both results scored (two models with
different label sets compare on what they share). Changes are in probability points (0-100).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fpsm_core.inference import Result


@dataclass(frozen=True)
class ScoreChange:
    """One label's probability in the earlier (``before``) and later (``after``) result."""

    label: str
    before: float
    after: float

    @property
    def points(self) -> float:
        """The change in probability points (after - before, x 100)."""
        return (self.after - self.before) * 100.0

    def text(self) -> str:
        return f"{self.label} {self.points:+.1f} pts ({self.before:.0%} → {self.after:.0%})"


def score_changes(before: Result, after: Result, top: int | None = None) -> list[ScoreChange]:
    """Per-label changes from ``before`` to ``after``, largest absolute change first.

    Args:
        top: keep only this many (None: all shared labels).
    """
    earlier = {f.label: f.probability for f in before.findings}
    changes = [
        ScoreChange(f.label, earlier[f.label], f.probability)
        for f in after.findings
        if f.label in earlier
    ]
    changes.sort(key=lambda c: (-abs(c.points), c.label))
    return changes if top is None else changes[:top]

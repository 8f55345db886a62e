"""Prevalence badges (head / medium / tail) for findings, from the model's own training counts.

CXR-LT 2023 published per-class train counts, but the project does not hold them: only two are
quoted in DATA.md (Support Devices 89,140 and Pneumoperitoneum 543 of 264,849 images), and a badge
built on guessed numbers would mislead. So the badges come from the checkpoint's provenance
(``provenance.train_positives`` as `fpsm train` writes it, or ``train_counts``: label -> positive training images), i.e. from the data the loaded model
actually saw; without it, no badge is shown.

Tiers split the labels ranked by count into thirds: the most frequent third is "head", the next
"medium", the rarest "tail" (the long-tail literature's many/medium/few-shot split, by rank).
"""

from __future__ import annotations

from collections.abc import Mapping

TIERS = ("head", "medium", "tail")


def prevalence_tiers(train_counts: Mapping[str, int] | None) -> dict[str, str]:
    """Label -> "head" | "medium" | "tail", or an empty dict without counts.

    Args:
        train_counts: positive training images per label (labels with no entry get no badge).
    """
    if not train_counts:
        return {}
    ranked = sorted(train_counts.items(), key=lambda kv: (-int(kv[1]), kv[0]))
    n = len(ranked)
    tiers: dict[str, str] = {}
    for rank, (label, _count) in enumerate(ranked):
        tiers[label] = TIERS[min(2, rank * 3 // n)]
    return tiers

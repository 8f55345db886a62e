"""Duplicate and near-duplicate patches, for the editor to show side by side and merge.

Two kinds. **Same box**: several readers boxed one lesion (VinDr has three readers per image), so
the library holds several patches whose source boxes lie on the same image with the same class
and overlap (IoU >= 0.5 by default); they are linked transitively. **Same pixels**: crops that
look alike although their boxes differ (the same film in two data sets, a re-encoded copy, a box
shifted by a pixel): a 64-bit dHash of each crop (``schema.dhash``), same class, Hamming distance
<= 4 bits by default. Candidate pairs come from the pigeonhole rule (two hashes within k bits agree
exactly on at least one of k + 1 bands), so a 50,000-patch library needs no all-pairs comparison.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fpsm_core.dadam.errors import DadamError

if TYPE_CHECKING:
    from fpsm_core.dadam.library import PatchLibrary


@dataclass(frozen=True)
class DuplicateGroup:
    """Patches that are probably one lesion.

    Attributes:
        kind: "same-box" (overlapping source boxes) or "same-pixels" (near-identical crops).
        label: Their CXR-LT class.
        ids: The patch ids, ascending.
        score: Least IoU linking the group ("same-box") or largest Hamming distance between
            linked crops ("same-pixels").
    """

    kind: str
    label: str
    ids: tuple[int, ...]
    score: float

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class _Union:
    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.score: dict[int, float] = {}

    def find(self, i: int) -> int:
        self.parent.setdefault(i, i)
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def link(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra

    def groups(self) -> list[tuple[int, ...]]:
        out: dict[int, list[int]] = {}
        for i in self.parent:
            out.setdefault(self.find(i), []).append(i)
        return sorted(tuple(sorted(g)) for g in out.values() if len(g) > 1)


def fill_dhashes(lib: PatchLibrary) -> int:
    """Compute the dHash of patches that have none (libraries upgraded from schema 1).

    Returns:
        How many were computed; a patch whose file is missing is skipped (and stays without).
    """
    from fpsm_core.dadam.patch_files import read_patch_png
    from fpsm_core.dadam.schema import dhash

    rows = lib.connection.execute(
        "SELECT id, file FROM patches WHERE dhash IS NULL AND deleted=0"
    ).fetchall()
    values = []
    for pid, file in rows:
        try:
            values.append((dhash(read_patch_png(lib.root / str(file))), int(pid)))
        except DadamError:
            continue
    if values:
        with lib.transaction() as db:
            db.executemany("UPDATE patches SET dhash=? WHERE id=? AND dhash IS NULL", values)
    return len(values)


def duplicate_groups(
    lib: PatchLibrary, *, iou: float, max_distance: int, states: Sequence[str]
) -> list[DuplicateGroup]:
    """See :meth:`PatchLibrary.duplicate_groups`: same-box groups first, then same-pixels."""
    if not lib.readonly:
        fill_dhashes(lib)
    marks = ",".join("?" * len(states))
    return _same_box(lib, iou, marks, list(states)) + _same_pixels(
        lib, max_distance, marks, list(states)
    )


def _same_box(
    lib: PatchLibrary, threshold: float, marks: str, states: list[str]
) -> list[DuplicateGroup]:
    # Keyed by film and class, not by data set: ChestX-Det re-annotates NIH's own films (same
    # image ids), and a lesion boxed in both is one lesion.
    by_image: dict[tuple[str, str], list[tuple[int, tuple[float, float, float, float]]]] = {}
    rows = lib.connection.execute(
        f"SELECT p.id, p.label, v.dataset, v.image_id, v.x0, v.y0, v.x1, v.y1 FROM provenance v "
        f"JOIN patches p ON p.id=v.patch_id WHERE p.deleted=0 AND p.state IN ({marks}) "
        f"UNION SELECT id, label, dataset, image_id, src_x0, src_y0, src_x1, src_y1 FROM patches "
        f"WHERE deleted=0 AND state IN ({marks}) AND src_x0 IS NOT NULL",
        states + states,
    )
    for pid, label, _dataset, image_id, *box in rows:
        by_image.setdefault((str(image_id), str(label)), []).append(
            (int(pid), (float(box[0]), float(box[1]), float(box[2]), float(box[3])))
        )
    links = _Union()
    labels: dict[int, str] = {}
    for (_, label), boxes in by_image.items():
        for pos, (pa, ba) in enumerate(boxes):
            for pb, bb in boxes[pos + 1 :]:
                if pa == pb:
                    continue
                value = iou(ba, bb)
                if value >= threshold:
                    links.link(pa, pb)
                    root = links.find(pa)
                    links.score[root] = min(links.score.get(root, 1.0), value)
                    labels[pa] = labels[pb] = label
    out = []
    for ids in links.groups():
        score = min(links.score.get(links.find(i), 1.0) for i in ids)
        out.append(DuplicateGroup("same-box", labels[ids[0]], ids, round(score, 4)))
    return out


def _same_pixels(
    lib: PatchLibrary, max_distance: int, marks: str, states: list[str]
) -> list[DuplicateGroup]:
    rows = lib.connection.execute(
        f"SELECT id, label, dhash FROM patches WHERE deleted=0 AND state IN ({marks}) "
        "AND dhash IS NOT NULL ORDER BY id",
        states,
    ).fetchall()
    k = max(int(max_distance), 0)
    bands = k + 1
    width = -(-64 // bands)
    buckets: dict[tuple[str, int, int], list[int]] = {}
    hashes: dict[int, int] = {}
    labels: dict[int, str] = {}
    for pid, label, value in rows:
        h = int(value) & ((1 << 64) - 1)
        hashes[int(pid)] = h
        labels[int(pid)] = str(label)
        for band in range(bands):
            chunk = (h >> (band * width)) & ((1 << width) - 1)
            buckets.setdefault((str(label), band, chunk), []).append(int(pid))
    links = _Union()
    worst: dict[int, int] = {}  # patch -> largest distance of a link it is part of
    seen: set[tuple[int, int]] = set()
    for members in buckets.values():
        for pos, a in enumerate(members):
            for b in members[pos + 1 :]:
                if (a, b) in seen:
                    continue
                seen.add((a, b))
                d = (hashes[a] ^ hashes[b]).bit_count()
                if d <= k:
                    links.link(a, b)
                    worst[a] = max(worst.get(a, 0), d)
                    worst[b] = max(worst.get(b, 0), d)
    out = []
    for ids in links.groups():
        score = max(worst.get(i, 0) for i in ids)
        out.append(DuplicateGroup("same-pixels", labels[ids[0]], ids, float(score)))
    return out

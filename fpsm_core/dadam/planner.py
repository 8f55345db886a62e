"""Planning an augmented data set: which image gets which patches, to reach per-class targets.

The planner reads only labels (a CXR-LT labels CSV) and the library's patch list, never pixels. It
grows the class furthest (relatively) from its target, one synthetic image at a time, until every
reachable target is met or the budget is spent. Each synthetic image is one of:

- **CutMix**: disease patches pasted (alpha 1) onto a normal image.
- **MixUp**: on a disease image, a patch of the class being grown, optionally with a patch of its
  most correlated class, blended at alpha (default 0.6, the paper's transparency).

Its labels are the union of the destination's labels and the pasted classes ("No Finding" dropped).
Three strategies choose destination and patches:

- ``"cooc"`` (default): among a few sampled destinations (a normal image, random disease images,
  images with the class's partner or with the class itself), with and without the partner's patch,
  take the one that keeps the running label correlation matrix closest (Frobenius) to the
  original. This is what keeps the co-occurrence: growing a class changes its marginal, and
  the correlations only stay put if its co-labels follow (about 1 ms per image).
- ``"template"``: copy the label set of a random real image with the class (destination = a real
  image carrying the rest). Keeps the conditional distribution of co-labels, which drifts the
  correlations when a class grows many-fold from a few examples.
- ``"paper"``: literally the paper: half CutMix of the class alone on normal images, half MixUp of
  the class and its partner on random disease images.

A plan is a JSON-lines manifest: one header line, then one line per synthetic image with its
destination row, patches, planned relative positions, scale jitter, alpha, labels and its own seed,
so generation is reproducible item by item and in any order.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from fpsm_core.dadam.composition import LUNG_FIELD_CLASSES, prior_lung_mask
from fpsm_core.dadam.cooc import correlation_matrix, matrix_distance, most_correlated
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.library import USABLE_STATES
from fpsm_core.dadam.table import META_COLUMNS, LabelTable
from fpsm_core.labels import LABEL_INDEX, LABELS

STRATEGIES = ("cooc", "template", "paper")
PLAN_KIND = "dadam-plan"
PLAN_VERSION = 1
NO_FINDING = LABEL_INDEX["No Finding"]
DEFAULT_ALPHA = 0.6
DEFAULT_TARGET = 15_000  # the paper grew every minority class to at least 15k images
_SUBSET_SEARCH_LIMIT = 20_000
_COOC_RANDOM_DESTS = 12


def _signed_corr(n: float, s: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Signed label correlations (zero diagonal, zero for constant labels) from the sufficient
    statistics of B label matrices: n rows, (B, C) column sums, (B, C, C) co-occurrence counts."""
    mean = s / n
    cov = m / n - mean[:, :, None] * mean[:, None, :]
    std = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0.0, None))
    denom = std[:, :, None] * std[:, None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.where(denom > 1e-12, cov / np.where(denom > 1e-12, denom, 1.0), 0.0)
    idx = np.arange(corr.shape[1])
    corr[:, idx, idx] = 0.0
    return corr


class PatchLike(Protocol):
    id: int
    label: str
    rel_center: tuple[float, float]


class PatchSource(Protocol):
    def patches(self, label: str | None = ..., *, states: Sequence[str] = ...) -> Sequence[Any]: ...


@dataclass(frozen=True)
class PlannedPatch:
    """One patch of a planned image: library id, class, planned centre (fractions), jitter, alpha.

    ``feather`` and ``match`` (the studio's edge width and intensity matching) are written only
    when they differ from the defaults, so the planner's own plans read as they always did.
    """

    patch_id: int
    label: str
    center: tuple[float, float]
    scale: float
    alpha: float
    feather: float = 1.0
    match: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "patch_id": self.patch_id,
            "label": self.label,
            "center": [self.center[0], self.center[1]],
            "scale": self.scale,
            "alpha": self.alpha,
        }
        if self.feather != 1.0:
            out["feather"] = self.feather
        if not self.match:
            out["match"] = False
        return out

    @staticmethod
    def from_json(p: Mapping[str, Any]) -> PlannedPatch:
        match = p.get("match", True)
        if not isinstance(match, bool):
            raise ValueError("match must be true or false")
        return PlannedPatch(
            int(p["patch_id"]),
            str(p["label"]),
            (float(p["center"][0]), float(p["center"][1])),
            float(p["scale"]),
            float(p["alpha"]),
            float(p.get("feather", 1.0)),
            match,
        )


@dataclass(frozen=True)
class PlanItem:
    """One synthetic image to make.

    Attributes:
        id: The new image's ``dicom_id``.
        index: Position in the plan.
        seed: Its own seed (placement inside the lung field when the planned one does not fit).
        mode: "cutmix" (normal destination) or "mixup" (disease destination).
        target: The class this image was made to grow.
        dest_row: Row of the destination in the labels CSV.
        dest: The destination's six metadata columns.
        dest_labels: The destination's labels.
        patches: What to paste.
        labels: The new image's labels (the union; "No Finding" dropped).
    """

    id: str
    index: int
    seed: int
    mode: str
    target: str
    dest_row: int
    dest: Mapping[str, str]
    dest_labels: tuple[str, ...]
    patches: tuple[PlannedPatch, ...]
    labels: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": "item",
            "id": self.id,
            "index": self.index,
            "seed": self.seed,
            "mode": self.mode,
            "target": self.target,
            "dest_row": self.dest_row,
            "dest": dict(self.dest),
            "dest_labels": list(self.dest_labels),
            "patches": [p.to_json() for p in self.patches],
            "labels": list(self.labels),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> PlanItem:
        return PlanItem(
            id=str(d["id"]),
            index=int(d["index"]),
            seed=int(d["seed"]),
            mode=str(d["mode"]),
            target=str(d["target"]),
            dest_row=int(d["dest_row"]),
            dest={k: str(v) for k, v in d["dest"].items()},
            dest_labels=tuple(d["dest_labels"]),
            patches=tuple(PlannedPatch.from_json(p) for p in d["patches"]),
            labels=tuple(d["labels"]),
        )


@dataclass(frozen=True)
class Plan:
    """A plan: its header (settings, counts before/after, unreachable classes) and its items."""

    header: Mapping[str, Any]
    items: tuple[PlanItem, ...] = field(default_factory=tuple)

    @property
    def counts_before(self) -> dict[str, int]:
        return dict(self.header["counts_before"])

    @property
    def counts_after(self) -> dict[str, int]:
        return dict(self.header["counts_after"])


def item_seed(seed: int, index: int) -> int:
    """The seed of item ``index`` of a plan made with ``seed`` (independent of everything else)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


class _Planner:
    def __init__(
        self,
        table: LabelTable,
        patches: Mapping[str, list[PatchLike]],
        rng: np.random.Generator,
        seed: int,
        alpha: float,
        strategy: str,
        max_patches: int,
        scale_jitter: float,
        center_jitter: float,
        mixup_fraction: float,
    ) -> None:
        self.table = table
        self.rng = rng
        self.seed = seed
        self.alpha = alpha
        self.strategy = strategy
        self.max_patches = max_patches
        self.scale_jitter = scale_jitter
        self.center_jitter = center_jitter
        self.mixup_fraction = mixup_fraction
        real = np.nonzero(table.synthetic == 0)[0]
        y = table.y[real].astype(bool)
        y_sets = y.copy()
        y_sets[:, NO_FINDING] = False
        self.rows_by_set: dict[frozenset[int], list[int]] = {}
        for r, row in zip(real, y_sets, strict=True):
            self.rows_by_set.setdefault(frozenset(np.flatnonzero(row).tolist()), []).append(int(r))
        self.positives = [real[y_sets[:, c]].tolist() for c in range(len(LABELS))]
        self.normal = self.rows_by_set.get(frozenset(), [])
        self.disease = [r for s, rows in self.rows_by_set.items() if s for r in rows]
        self.pastable = {
            LABEL_INDEX[name] for name, lst in patches.items() if lst and name in LABEL_INDEX
        } - {NO_FINDING}
        partners = most_correlated(
            correlation_matrix(table.y[real]), candidates={LABELS[c] for c in self.pastable}
        )
        self.partner = {
            LABEL_INDEX[k]: (LABEL_INDEX[v] if v else None) for k, v in partners.items()
        }
        self.cycles: dict[int, itertools.cycle[PatchLike]] = {}
        for c in self.pastable:
            order = list(patches[LABELS[c]])
            self.rng.shuffle(order)  # type: ignore[arg-type]
            self.cycles[c] = itertools.cycle(order)
        mask = prior_lung_mask()
        ys, xs = np.nonzero(mask)
        self.lung_points = (xs.astype(np.float64), ys.astype(np.float64), mask.shape[0])
        self.subset_cache: dict[frozenset[int], list[frozenset[int]]] = {}
        # Running sufficient statistics of the label matrix, for the "cooc" strategy.
        y_all = table.y.astype(np.float64)
        self.n = float(y_all.shape[0])
        self.s = y_all.sum(axis=0)
        self.m = y_all.T @ y_all
        self.target_corr = _signed_corr(self.n, self.s[None], self.m[None])[0]

    # -- destinations -----------------------------------------------------------------------
    def best_subset(self, wanted: frozenset[int]) -> frozenset[int] | None:
        """A largest non-empty subset of ``wanted`` that some real image has exactly (ties: random)."""
        if wanted not in self.subset_cache:
            found: list[frozenset[int]] = []
            items = sorted(wanted)
            checked = 0
            for size in range(len(items), 0, -1):
                for combo in itertools.combinations(items, size):
                    checked += 1
                    if frozenset(combo) in self.rows_by_set:
                        found.append(frozenset(combo))
                    if checked >= _SUBSET_SEARCH_LIMIT:  # huge templates: settle for what we have
                        break
                if found or checked >= _SUBSET_SEARCH_LIMIT:
                    break
            self.subset_cache[wanted] = found
        hits = self.subset_cache[wanted]
        if not hits:
            return None
        return hits[int(self.rng.integers(len(hits)))] if len(hits) > 1 else hits[0]

    def pick(self, rows: list[int]) -> int:
        return rows[int(self.rng.integers(len(rows)))]

    # -- one item --------------------------------------------------------------------------
    def make(self, k: int, index: int) -> PlanItem:
        if self.strategy == "paper":
            dest, paste = self.choose_paper(k)
        elif self.strategy == "template":
            dest, paste = self.choose_template(k)
        else:
            dest, paste = self.choose_cooc(k)
        dest_set = frozenset(self.table.y[dest].nonzero()[0].tolist())
        mode = "mixup" if dest_set - {NO_FINDING} else "cutmix"
        alpha = self.alpha if mode == "mixup" else 1.0
        final = (dest_set | set(paste)) - {NO_FINDING}
        self.commit(sorted(final))
        planned = tuple(self.plan_patch(c, alpha) for c in paste)
        meta = self.table.meta[dest]
        return PlanItem(
            id=f"dadam-{self.seed}-{index:07d}",
            index=index,
            seed=item_seed(self.seed, index),
            mode=mode,
            target=LABELS[k],
            dest_row=int(dest),
            dest={c: meta.get(c, "") for c in META_COLUMNS},
            dest_labels=tuple(LABELS[c] for c in sorted(dest_set)),
            patches=planned,
            labels=tuple(LABELS[c] for c in sorted(final)),
        )

    def commit(self, labels: Sequence[int]) -> None:
        self.n += 1.0
        self.s[list(labels)] += 1.0
        idx = np.array(labels, dtype=np.intp)
        self.m[np.ix_(idx, idx)] += 1.0

    def choose_paper(self, k: int) -> tuple[int, list[int]]:
        """The paper: MixUp (class + partner) on a disease image, or CutMix on a normal one."""
        partner = self.partner.get(k)
        if self.disease and (not self.normal or self.rng.random() < self.mixup_fraction):
            return self.pick(self.disease), [k] if partner is None else [k, partner]
        return self.pick(self.normal), [k]

    def choose_template(self, k: int) -> tuple[int, list[int]]:
        """Copy the label set of a real image with the class (see the module docstring)."""
        paste = [k]
        partner = self.partner.get(k)
        template = (
            frozenset(self.table.y[self.pick(self.positives[k])].nonzero()[0].tolist())
            - {NO_FINDING}
            if self.positives[k]
            else frozenset({k})
        )
        if partner is not None and partner in template:
            paste.append(partner)
        rest = template - set(paste)
        subset = self.best_subset(rest) if rest else None
        if subset is not None:
            dest = self.pick(self.rows_by_set[subset])
        elif self.normal:
            dest = self.pick(self.normal)
        else:
            dest = self.pick(self.disease)
        for c in sorted(rest - (subset or frozenset())):  # complete the template with patches
            if c in self.pastable and len(paste) < self.max_patches:
                paste.append(c)
        return dest, paste

    def choose_cooc(self, k: int) -> tuple[int, list[int]]:
        """Among sampled destinations, with or without the partner's patch, the choice that keeps
        the running correlation matrix closest to the original one."""
        partner = self.partner.get(k)
        dests: list[int] = []
        if self.normal:
            dests.append(self.pick(self.normal))
        for pool, n in (
            (self.disease, _COOC_RANDOM_DESTS),
            (self.positives[partner] if partner is not None else [], 4),
            (self.positives[k], 4),
        ):
            if pool:
                dests.extend(pool[int(i)] for i in self.rng.integers(len(pool), size=n))
        pastes = [[k]] if partner is None else [[k], [k, partner]]
        rows = np.zeros((len(dests) * len(pastes), len(LABELS)))
        options: list[tuple[int, list[int]]] = []
        for d in dests:
            for paste in pastes:
                row = rows[len(options)]
                row[:] = self.table.y[d]
                row[paste] = 1.0
                row[NO_FINDING] = 0.0
                options.append((d, paste))
        corr = _signed_corr(
            self.n + 1.0, self.s[None] + rows, self.m[None] + rows[:, :, None] * rows[:, None, :]
        )
        loss = ((corr - self.target_corr[None]) ** 2).sum(axis=(1, 2))
        return options[int(np.argmin(loss))]

    def plan_patch(self, c: int, alpha: float) -> PlannedPatch:
        patch = next(self.cycles[c])
        if LABELS[c] in LUNG_FIELD_CLASSES:
            xs, ys, size = self.lung_points
            j = int(self.rng.integers(xs.size))
            center = ((xs[j] + self.rng.random()) / size, (ys[j] + self.rng.random()) / size)
        else:
            jitter = self.rng.normal(0.0, self.center_jitter, 2)
            center = (
                float(np.clip(patch.rel_center[0] + jitter[0], 0.02, 0.98)),
                float(np.clip(patch.rel_center[1] + jitter[1], 0.02, 0.98)),
            )
        scale = round(float(1.0 + self.rng.uniform(-self.scale_jitter, self.scale_jitter)), 5)
        # Rounded as the manifest stores them, so a plan read back equals the plan made.
        xy = (round(float(center[0]), 5), round(float(center[1]), 5))
        return PlannedPatch(int(patch.id), LABELS[c], xy, scale, alpha)


def make_plan(
    table: LabelTable,
    library: PatchSource | Mapping[str, Sequence[PatchLike]],
    *,
    targets: Mapping[str, int],
    budget: int,
    seed: int = 0,
    alpha: float = DEFAULT_ALPHA,
    strategy: str = "cooc",
    max_patches: int = 3,
    states: Sequence[str] = USABLE_STATES,
    scale_jitter: float = 0.15,
    center_jitter: float = 0.03,
    mixup_fraction: float = 0.5,
    sources: Mapping[str, str] | None = None,
) -> Plan:
    """Plan synthetic images until every reachable target is met or the budget is spent.

    Args:
        table: The data set to grow (its synthetic rows, if any, are never destinations or
            templates, but count towards the targets and the correlation statistics).
        library: A :class:`~fpsm_core.dadam.library.PatchLibrary`, or label -> patches.
        targets: CXR-LT class -> wanted number of positive images.
        budget: Most synthetic images to plan.
        seed: Seed of every random choice; the same inputs and seed give the same plan.
        alpha: MixUp blend weight of the pasted patches (CutMix pastes at 1).
        strategy: "cooc" (keep the correlation matrix; default), "template" or "paper" (see
            the module docstring).
        max_patches: Most patches on one image.
        states: Curation states of usable patches.
        scale_jitter: Patch size varies by up to this fraction.
        center_jitter: Standard deviation of the position jitter (fractions of the image) for
            findings placed at their source position.
        mixup_fraction: Share of MixUp images under the "paper" strategy.
        sources: Recorded in the header (e.g. the labels CSV and library paths).

    Returns:
        The plan.

    Raises:
        DadamError: a target names an unknown class, or the data set has no usable destination.
    """
    if strategy not in STRATEGIES:
        raise DadamError(None, f"unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    if not 0.0 < alpha <= 1.0:
        raise DadamError(None, f"alpha must lie in (0, 1], got {alpha}")
    for name in targets:
        if name not in LABEL_INDEX or name == "No Finding":
            raise DadamError(table.path, f"cannot target {name!r}: not a CXR-LT finding")
    if isinstance(library, Mapping):
        by_label = {k: list(v) for k, v in library.items()}
    else:
        by_label = {}
        for p in library.patches(None, states=states):
            by_label.setdefault(p.label, []).append(p)
    rng = np.random.default_rng(seed)
    planner = _Planner(
        table, by_label, rng, seed, alpha, strategy, max_patches, scale_jitter, center_jitter,
        mixup_fraction,
    )  # fmt: skip
    if not planner.normal and not planner.disease:
        raise DadamError(table.path, "has no rows to paste onto")
    counts = table.y.sum(axis=0).astype(np.int64)
    before = counts.copy()
    goal = np.zeros(len(LABELS), dtype=np.int64)
    for name, n in targets.items():
        goal[LABEL_INDEX[name]] = int(n)
    unreachable = {
        name: "no patches in the library"
        for name in targets
        if LABEL_INDEX[name] not in planner.pastable and counts[LABEL_INDEX[name]] < targets[name]
    }
    reachable = np.array([c in planner.pastable and goal[c] > 0 for c in range(len(LABELS))])
    items: list[PlanItem] = []
    y_new: list[np.ndarray] = []
    while len(items) < budget:
        deficit = np.where(reachable, (goal - counts) / np.maximum(goal, 1), 0.0)
        k = int(np.argmax(deficit))
        if deficit[k] <= 0:
            break
        item = planner.make(k, len(items))
        row = np.zeros(len(LABELS), dtype=np.uint8)
        row[[LABEL_INDEX[n] for n in item.labels]] = 1
        counts += row
        y_new.append(row)
        items.append(item)
    for name in targets:
        c = LABEL_INDEX[name]
        if name not in unreachable and counts[c] < goal[c]:
            unreachable[name] = f"budget spent at {int(counts[c])} of {int(goal[c])}"
    y_after = np.concatenate([table.y, np.array(y_new, dtype=np.uint8).reshape(-1, len(LABELS))])
    distance = matrix_distance(correlation_matrix(table.y), correlation_matrix(y_after))
    header = {
        "kind": PLAN_KIND,
        "version": PLAN_VERSION,
        "seed": int(seed),
        "strategy": strategy,
        "alpha": alpha,
        "budget": int(budget),
        "max_patches": max_patches,
        "states": list(states),
        "targets": {k: int(v) for k, v in targets.items()},
        "n_items": len(items),
        "modes": {m: sum(1 for i in items if i.mode == m) for m in ("cutmix", "mixup")},
        "counts_before": {n: int(v) for n, v in zip(LABELS, before, strict=True)},
        "counts_after": {n: int(v) for n, v in zip(LABELS, counts, strict=True)},
        "unreachable": unreachable,
        "partners": {
            LABELS[k]: (LABELS[v] if v is not None else None)
            for k, v in planner.partner.items()
            if k in planner.pastable
        },
        "cooc_distance": distance.as_dict(),
        "sources": dict(sources or {}),
    }
    return Plan(header, tuple(items))


def write_plan(plan: Plan, path: str | Path) -> Path:
    """Write a plan as JSON lines (header first), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(plan.header), sort_keys=True) + "\n")
        for item in plan.items:
            fh.write(json.dumps(item.to_json(), sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def read_plan(path: str | Path) -> Plan:
    """Read a plan written by :func:`write_plan`.

    Raises:
        DadamError: the file is missing or is not a DADAM plan.
    """
    path = Path(path)
    if not path.is_file():
        raise DadamError(path, "plan file not found")
    items: list[PlanItem] = []
    with path.open(encoding="utf-8") as fh:
        try:
            header = json.loads(fh.readline() or "null")
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("kind") != PLAN_KIND:
            raise DadamError(path, "is not a DADAM plan (its first line must be the plan header)")
        for number, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            try:
                items.append(PlanItem.from_json(json.loads(line)))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
                raise DadamError(path, f"line {number} is not a valid plan item") from None
    return Plan(header, tuple(items))

"""Patch efficacy: does pasting a patch make the model see its finding?

For each patch, ``n`` random valid compositions onto images *without* its finding (CutMix, alpha 1,
mm-consistent scale, placed as ``generate`` places it: inside the lung field for parenchymal
findings, near its source position for the others) are run through the model. The patch's
**efficacy** is the mean rise of the ensemble's probability of the patch's class (composite minus
original), with a 95 % bootstrap interval (2,000 resamples, seeded); its **energy** is the mean
share of the class's closed-form CAM energy inside the pasted box at the level where that share is
highest (``best_level``). A patch that only adds texture the model ignores scores near 0.

Images come from a labels CSV (an image "has" the finding when its label is >= 0.5) or a folder
(then an image the model already calls positive for the class, at its threshold, is left out).
Everything random is drawn from ``(seed, patch id)``, every patch is one batch of ``n`` composites
and every original is read alone, so a score does not depend on which other patches were scored, in
which order, or whether the run was interrupted. Scores go to the library's ``efficacy`` table
(schema 3) one patch at a time with the model's identity (a hash of its members' weights, and its
name), the seed, ``n`` and a key of the image set; a rerun skips what is stored, and scoring with
another model, seed or image set keeps the earlier scores. :func:`score_patches` is what the CLI
(``fpsm dadam score``) and the studio's "score selection" button (in a worker, with ``progress``
and ``cancel``) call.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fpsm_core.dadam.composition import LUNG_FIELD_CLASSES, prior_lung_mask
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.library import USABLE_STATES, Patch, PatchLibrary
from fpsm_core.dadam.model_check import as_service, class_index, grey_image, read_result
from fpsm_core.dadam.recipe import Recipe, RecipePatch, load_target, render
from fpsm_core.explain.result_cams import FUSED

if TYPE_CHECKING:
    from fpsm_core.inference import InferenceService
    from fpsm_core.model.ensemble import Ensemble

DEFAULT_PER_PATCH = 8
BOOTSTRAP = 2000
CENTER_JITTER = 0.03


@dataclass(frozen=True)
class ModelId:
    """Which model scored: ``id`` hashes the members' weights; ``name`` is the ensemble's."""

    id: str
    name: str

    @staticmethod
    def of(service: InferenceService) -> ModelId:
        ident = service.ensemble.identity()
        shas = [str(m.get("weights_sha256", "")) for m in ident.get("members", [])]
        digest = hashlib.sha256("|".join(shas).encode()).hexdigest()[:16]
        return ModelId(digest, str(ident.get("name", "")))


@dataclass(frozen=True)
class Score:
    """One patch's stored efficacy under one model, seed, ``n`` and image set.

    Attributes:
        efficacy: Mean rise of the class probability (composite minus original).
        lo: Lower end of its 95 % bootstrap interval.
        hi: Upper end.
        energy: Mean in-box share of the class's CAM energy at ``best_level`` (None: no map).
        best_level: The pyramid level with the highest mean in-box share.
        n_images: Compositions actually made (fewer than ``n`` when images failed to load).
    """

    patch_id: int
    label: str
    model_id: str
    model_name: str
    seed: int
    n: int
    images_key: str
    efficacy: float
    lo: float
    hi: float
    energy: float | None
    best_level: int | None
    n_images: int
    scored: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "efficacy": round(self.efficacy, 6),
            "interval": [round(self.lo, 6), round(self.hi, 6)],
            "energy": None if self.energy is None else round(self.energy, 6),
            "best_level": self.best_level,
            "model": self.model_name,
            "model_id": self.model_id,
            "seed": self.seed,
            "n": self.n,
            "n_images": self.n_images,
            "images_key": self.images_key,
        }


@dataclass(frozen=True)
class ScoreReport:
    """What a scoring run did."""

    model: ModelId
    scored: tuple[Score, ...]
    skipped: tuple[int, ...]
    failed: tuple[str, ...]
    cancelled: bool
    seconds: float
    images_key: str
    n_images: int = 0
    forward_seconds: float = 0.0

    @property
    def patches_per_second(self) -> float:
        return len(self.scored) / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class _Target:
    rel: str
    root: Path
    dicom_id: str
    positives: frozenset[str] | None  # None: unknown (a folder), decided by the model


# -- images --------------------------------------------------------------------------------------
def _targets(images: str | Path | None, labels_csv: str | Path | None) -> list[_Target]:
    from fpsm_core.dadam.table import read_labels_csv
    from fpsm_core.labels import LABELS

    if labels_csv is not None:
        table = read_labels_csv(labels_csv)
        root = Path(images) if images is not None else Path(labels_csv).parent
        if not root.is_dir():
            raise DadamError(root, "images folder not found")
        out = []
        for meta, y in zip(table.meta, table.y, strict=True):
            names = frozenset(LABELS[c] for c in np.flatnonzero(y))
            out.append(_Target(meta["path"], root, meta.get("dicom_id", ""), names))
        return out
    if images is None:
        raise DadamError(None, "give the images to score on: --images DIR or --labels CSV")
    from fpsm_core.io.studies import image_files

    root = Path(images)
    if not root.is_dir():
        raise DadamError(root, "images folder not found")
    files = image_files(root)
    if not files:
        raise DadamError(root, "holds no images")
    return [_Target(f.relative_to(root).as_posix(), root, f.stem, None) for f in files]


def _images_key(targets: Sequence[_Target]) -> str:
    h = hashlib.sha256()
    for t in targets:
        pos = "?" if t.positives is None else ",".join(sorted(t.positives))
        h.update(f"{t.rel}\t{pos}\n".encode())
    return h.hexdigest()[:16]


class _Originals:
    """Loaded targets and the model's probabilities on them, each read alone (cached)."""

    def __init__(self, service: InferenceService, cache: int = 256) -> None:
        self.service = service
        self.pixels: OrderedDict[str, tuple[np.ndarray, tuple[float, float] | None]] = OrderedDict()
        self.probs: dict[str, np.ndarray] = {}
        self.failed: dict[str, str] = {}
        self.cache = cache
        self.forward = 0.0

    def load(self, t: _Target) -> tuple[np.ndarray, tuple[float, float] | None] | None:
        from fpsm_core.errors import FpsmError

        if t.rel in self.failed:
            return None
        if t.rel in self.pixels:
            self.pixels.move_to_end(t.rel)
            return self.pixels[t.rel]
        try:
            got = load_target(Recipe(t.rel, (), ()), t.root)
        except (FpsmError, OSError) as exc:
            self.failed[t.rel] = str(exc)
            return None
        self.pixels[t.rel] = got
        if len(self.pixels) > self.cache:
            self.pixels.popitem(last=False)
        return got

    def probabilities(self, t: _Target) -> np.ndarray | None:
        if t.rel not in self.probs:
            got = self.load(t)
            if got is None:
                return None
            t0 = time.perf_counter()
            (res,) = self.service.predict([grey_image(got[0], t.rel)])
            self.forward += time.perf_counter() - t0
            self.probs[t.rel] = np.asarray(res.probabilities, dtype=np.float64)
        return self.probs[t.rel]


# -- one patch -----------------------------------------------------------------------------------
def _center(patch: Patch, rng: np.random.Generator) -> tuple[float, float]:
    """A centre the planner could have drawn: in the template lung field, or near the source."""
    if patch.label in LUNG_FIELD_CLASSES:
        ys, xs = np.nonzero(prior_lung_mask())
        j = int(rng.integers(xs.size))
        size = prior_lung_mask().shape[0]
        return (float((xs[j] + rng.random()) / size), float((ys[j] + rng.random()) / size))
    jitter = rng.normal(0.0, CENTER_JITTER, 2)
    return (
        float(np.clip(patch.rel_center[0] + jitter[0], 0.02, 0.98)),
        float(np.clip(patch.rel_center[1] + jitter[1], 0.02, 0.98)),
    )


def bootstrap_interval(
    values: Sequence[float], rng: np.random.Generator, n: int = BOOTSTRAP
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of the mean (the value itself for one sample)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2:
        m = float(v.mean()) if v.size else math.nan
        return m, m
    means = v[rng.integers(0, v.size, size=(n, v.size))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def _score_one(
    patch: Patch,
    library: PatchLibrary,
    service: InferenceService,
    originals: _Originals,
    pool: Sequence[_Target],
    *,
    n: int,
    seed: int,
    c: int,
    lung: str,
) -> tuple[list[float], dict[int, list[float]], int] | str:
    rng = np.random.default_rng([int(seed), int(patch.id)])
    threshold = float(service.thresholds[c])
    order = rng.permutation(len(pool))
    items: list[tuple[np.ndarray, float, tuple[int, int, int, int]]] = []
    for i in order:
        if len(items) >= n:
            break
        t = pool[int(i)]
        if t.dicom_id and t.dicom_id == patch.image_id:
            continue  # never onto the patch's own source image
        before = originals.probabilities(t)
        if before is None:
            continue
        if t.positives is None and before[c] >= threshold:
            continue  # a folder image the model already reads as positive
        target = originals.load(t)
        if target is None:
            continue
        recipe = Recipe(
            t.rel, tuple(sorted(t.positives or ())),
            (RecipePatch(patch.id, patch.label, _center(patch, rng)),),
            seed=int(rng.integers(2**31)),
        )  # fmt: skip
        comp = render(recipe, library, t.root, target=target, lung=lung)
        items.append((comp.image, float(before[c]), comp.placements[0].box))
    if not items:
        return f"patch {patch.id}: no image without {patch.label} could be used"
    t0 = time.perf_counter()
    results = service.predict([grey_image(img) for img, _, _ in items], cams=True)
    originals.forward += time.perf_counter() - t0
    rises: list[float] = []
    energy: dict[int, list[float]] = {}
    for (_img, before_c, box), res in zip(items, results, strict=True):
        reading = read_result(res, c, box, members=False, keep_maps=False)
        rises.append(float(res.probabilities[c]) - before_c)
        for (_who, level), e in reading.energy.items():
            if level != FUSED and not math.isnan(e):
                energy.setdefault(int(level), []).append(e)
    return rises, energy, len(items)


# -- library table -------------------------------------------------------------------------------
_COLUMNS = (
    "patch_id, label, model_id, model_name, seed, n, images_key, efficacy, lo, hi, energy, "
    "best_level, n_images, scored"
)


def _row_score(row: Sequence[Any]) -> Score:
    return Score(
        int(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]), int(row[5]), str(row[6]),
        float(row[7]), float(row[8]), float(row[9]), None if row[10] is None else float(row[10]),
        None if row[11] is None else int(row[11]), int(row[12]), float(row[13]),
    )  # fmt: skip


def stored_scores(
    library: PatchLibrary, patch_ids: Iterable[int] | None = None, model: str | None = None
) -> dict[int, list[Score]]:
    """Every stored score, per patch (newest first); optionally of some patches or one model.

    ``model`` matches a model's name or the start of its id.
    """
    sql = f"SELECT {_COLUMNS} FROM efficacy"
    args: list[Any] = []
    where = []
    if model is not None:
        where.append("(model_name = ? OR model_id LIKE ?)")
        args += [model, f"{model}%"]
    ids = None if patch_ids is None else sorted({int(i) for i in patch_ids})
    out: dict[int, list[Score]] = {}
    chunks = [None] if ids is None else [ids[i : i + 500] for i in range(0, len(ids), 500)]
    for chunk in chunks:
        clause = list(where)
        params = list(args)
        if chunk is not None:
            if not chunk:
                continue
            clause.append(f"patch_id IN ({','.join('?' * len(chunk))})")
            params += chunk
        q = sql + (" WHERE " + " AND ".join(clause) if clause else "") + " ORDER BY scored DESC"
        for row in library.connection.execute(q, params):
            s = _row_score(row)
            out.setdefault(s.patch_id, []).append(s)
    return out


def scored_models(library: PatchLibrary) -> list[tuple[str, str, int]]:
    """(model name, model id, patches scored) of every model with stored scores."""
    rows = library.connection.execute(
        "SELECT model_name, model_id, count(DISTINCT patch_id) FROM efficacy "
        "GROUP BY model_id, model_name ORDER BY model_name"
    )
    return [(str(a), str(b), int(c)) for a, b, c in rows]


def latest_scores(library: PatchLibrary, model: str | None = None) -> dict[int, Score]:
    """Each patch's newest score under one model (name or id prefix; None: the only model).

    Raises:
        DadamError: no scores, an unknown model, or several models and none chosen.
    """
    models = scored_models(library)
    if not models:
        raise DadamError(library.root, "has no efficacy scores yet (run fpsm dadam score)")
    if model is None:
        ids = {m[1] for m in models}
        if len(ids) > 1:
            names = ", ".join(f"{m[0]} ({m[1][:8]})" for m in models)
            raise DadamError(
                library.root, f"holds scores of several models ({names}); choose one by name"
            )
    else:
        matching = [m for m in models if m[0] == model or m[1].startswith(model)]
        if not matching:
            names = ", ".join(f"{m[0]} ({m[1][:8]})" for m in models)
            raise DadamError(library.root, f"has no scores of model {model!r} (it has: {names})")
    return {pid: scores[0] for pid, scores in stored_scores(library, model=model).items()}


def _store(library: PatchLibrary, s: Score) -> None:
    with library.transaction() as db:
        db.execute(
            f"INSERT OR REPLACE INTO efficacy({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (s.patch_id, s.label, s.model_id, s.model_name, s.seed, s.n, s.images_key, s.efficacy,
             s.lo, s.hi, s.energy, s.best_level, s.n_images, s.scored),
        )  # fmt: skip


# -- the run -------------------------------------------------------------------------------------
def score_patches(
    library: str | Path | PatchLibrary,
    model: InferenceService | Ensemble | str | Path,
    *,
    images: str | Path | None = None,
    labels_csv: str | Path | None = None,
    per_patch: int = DEFAULT_PER_PATCH,
    seed: int = 0,
    patch_ids: Sequence[int] | None = None,
    states: Sequence[str] = USABLE_STATES,
    workers: int | None = None,
    device: str = "auto",
    lung: str = "estimate",
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ScoreReport:
    """Score patches (all usable ones, or ``patch_ids``) and store the scores in the library.

    Args:
        library: The patch library (a folder or an open library, opened for writing).
        model: An ``InferenceService``, an ``Ensemble`` or a checkpoint / ensemble path.
        images: Folder of images (or the root of ``labels_csv``'s paths).
        labels_csv: A labels CSV; its rows are the images (default root: its folder).
        per_patch: Compositions per patch (N).
        seed: Seed of every random choice.
        patch_ids: Only these patches (the studio's selection); default every usable one.
        states: Curation states scored when ``patch_ids`` is None.
        workers: CPU threads of the forward passes (default: torch's).
        device: "auto" (GPU when present), "cpu", "cuda"...
        lung: "estimate" or "template" lung field (as ``generate``'s ``lung``).
        progress: Called with (patches done, patches to do) after each patch.
        cancel: Returning True stops before the next patch (what is stored stays).

    Returns:
        What was scored, skipped (already stored) and failed.

    Raises:
        DadamError: a model, library or image set that cannot be used (one sentence).
    """
    import torch

    t_start = time.perf_counter()
    if per_patch < 1:
        raise DadamError(None, f"--per-patch must be at least 1, not {per_patch}")
    if lung not in ("estimate", "template"):
        raise DadamError(None, f"lung must be estimate or template, not {lung!r}")
    targets = _targets(images, labels_csv)
    key = _images_key(targets)
    service = as_service(model, device, batch_size=max(per_patch, 1))
    service.batch_size = max(service.batch_size, per_patch)
    mid = ModelId.of(service)
    lib = library if isinstance(library, PatchLibrary) else PatchLibrary(library, create=False)
    threads = torch.get_num_threads()
    if workers:
        torch.set_num_threads(int(workers))
    try:
        if patch_ids is None:
            patches = list(lib.patches(None, states=states))
        else:
            patches = lib.get_many(list(patch_ids))
            missing = sorted(set(int(i) for i in patch_ids) - {p.id for p in patches})
            if missing:
                raise DadamError(lib.root, f"has no patch {missing[0]}")
        patches.sort(key=lambda p: p.id)
        done = {
            s.patch_id
            for scores in stored_scores(lib, [p.id for p in patches]).values()
            for s in scores
            if (s.model_id, s.seed, s.n, s.images_key) == (mid.id, seed, per_patch, key)
        }
        todo = [p for p in patches if p.id not in done]
        originals = _Originals(service)
        scored: list[Score] = []
        failed: list[str] = []
        cancelled = False
        for k, patch in enumerate(todo):
            if cancel is not None and cancel():
                cancelled = True
                break
            if patch.label not in service.labels:
                failed.append(f"patch {patch.id}: the model does not predict {patch.label}")
                continue
            c = class_index(service, patch.label)
            pool = [t for t in targets if t.positives is None or patch.label not in t.positives]
            got = _score_one(
                patch, lib, service, originals, pool, n=per_patch, seed=seed, c=c, lung=lung
            )
            if isinstance(got, str):
                failed.append(got)
            else:
                rises, energy, n_made = got
                brng = np.random.default_rng([int(seed), int(patch.id), 1])
                lo, hi = bootstrap_interval(rises, brng)
                means = {lv: float(np.mean(v)) for lv, v in energy.items() if v}
                best = max(means, key=lambda lv: means[lv]) if means else None
                score = Score(
                    patch.id, patch.label, mid.id, mid.name, int(seed), int(per_patch), key,
                    float(np.mean(rises)), lo, hi, None if best is None else means[best], best,
                    n_made, time.time(),
                )  # fmt: skip
                _store(lib, score)
                scored.append(score)
            if progress is not None:
                progress(k + 1, len(todo))
        failed.extend(f"{rel}: {why}" for rel, why in sorted(originals.failed.items()))
    finally:
        torch.set_num_threads(threads)
        if lib is not library:
            lib.close()
    return ScoreReport(
        mid, tuple(scored), tuple(sorted(done)), tuple(failed), cancelled,
        time.perf_counter() - t_start, key, len(targets), originals.forward,
    )  # fmt: skip


def efficacy_summary(library: PatchLibrary) -> dict[str, Any]:
    """Per model and class: patches scored, mean efficacy, share with the interval above 0."""
    out: dict[str, Any] = {}
    for name, mid, _n in scored_models(library):
        per_class: dict[str, list[Score]] = {}
        for scores in stored_scores(library, model=mid).values():
            per_class.setdefault(scores[0].label, []).append(scores[0])
        out[f"{name} ({mid[:8]})"] = {
            label: {
                "patches": len(ss),
                "mean_efficacy": round(float(np.mean([s.efficacy for s in ss])), 6),
                "positive_share": round(sum(s.lo > 0 for s in ss) / len(ss), 4),
                "mean_energy": round(
                    float(np.mean([s.energy for s in ss if s.energy is not None] or [math.nan])), 6
                ),
            }
            for label, ss in sorted(per_class.items())
        }
    return out


def filter_by_efficacy(
    patches: Iterable[Patch], scores: Mapping[int, Score], minimum: float
) -> tuple[list[Patch], int, int]:
    """(patches whose efficacy >= minimum, how many fell below, how many had no score)."""
    kept: list[Patch] = []
    below = unscored = 0
    for p in patches:
        s = scores.get(p.id)
        if s is None:
            unscored += 1
        elif s.efficacy >= minimum:
            kept.append(p)
        else:
            below += 1
    return kept, below, unscored


__all__ = [
    "DEFAULT_PER_PATCH",
    "ModelId",
    "Score",
    "ScoreReport",
    "bootstrap_interval",
    "efficacy_summary",
    "filter_by_efficacy",
    "latest_scores",
    "score_patches",
    "scored_models",
    "stored_scores",
]

"""The inference service: images in, ranked findings with their evidence out.

Synchronous and thread-agnostic: the CLI calls it directly, the viewer runs it in a worker thread.
One forward pass per member yields the summed logits, every level's logits and the level feature
maps, from which the closed-form per-level Grad-CAMs come at almost no cost (:mod:`fpsm_core.explain`).
On CUDA it uses half-precision autocast, channels_last and cuDNN autotuning; everywhere it runs under
``torch.inference_mode``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from fpsm_core.device import pick_device
from fpsm_core.errors import FpsmError
from fpsm_core.model.ensemble import Ensemble, load_model, mean_probabilities
from fpsm_core.preprocess import Letterbox, Preprocessing, prepare
from fpsm_core.trust.checks import Reason, check_image
from fpsm_core.trust.features import pooled
from fpsm_core.trust.runtime import InputVerdict, describe, load_ensemble_trust


class InferenceError(FpsmError, RuntimeError):
    """Inference could not run (no usable device, a model that fails on this input...).

    A user error like every :class:`FpsmError` (one sentence, caught once by the CLI); it stays a
    ``RuntimeError`` too, as it was, so callers that catch that keep working.
    """


@dataclass(frozen=True)
class Finding:
    """One label's verdict, with its evidence.

    Attributes:
        member_probabilities: each member's probability, in ensemble order.
        level_logits: per member, the logit of each of that member's levels (they sum to the
            member's logit).
    """

    label: str
    index: int
    probability: float
    threshold: float
    member_probabilities: tuple[float, ...]
    level_logits: tuple[tuple[float, ...], ...]

    @property
    def above_threshold(self) -> bool:
        return self.probability >= self.threshold

    @property
    def member_spread(self) -> float:
        """Max minus min of member probabilities: disagreement between members."""
        return max(self.member_probabilities) - min(self.member_probabilities)


@dataclass(frozen=True)
class Result:
    """Everything one image's inference produced; immutable and safe to pass between threads.

    Attributes:
        findings: all labels, highest ensemble probability first.
        probabilities: ensemble probabilities in label order, (C,).
        member_probabilities: (M, C).
        level_logits: per member, (L_m, C) in that member's ``levels`` order.
        member_levels: each member's levels.
        letterboxes: per member, where the image lies in that member's input (for CAM mapping).
        cams: per member, the raw closed-form level CAMs (L_m arrays of (C, h_l, w_l)) when asked.
        input: whether the image is like what the model was trained on (checks and gate).
        calibrated: the probabilities (ensemble and members) are calibrated; thresholds too.
    """

    path: str | None
    image_shape: tuple[int, int]
    labels: tuple[str, ...]
    findings: tuple[Finding, ...]
    probabilities: np.ndarray
    member_probabilities: np.ndarray
    member_names: tuple[str, ...]
    member_levels: tuple[tuple[int, ...], ...]
    level_logits: tuple[np.ndarray, ...]
    letterboxes: tuple[Letterbox, ...]
    input_sizes: tuple[int, ...]
    model: Mapping[str, Any]
    untrained: bool
    timing_ms: Mapping[str, float]
    device: str
    cams: tuple[tuple[np.ndarray, ...], ...] | None = None
    input: InputVerdict = InputVerdict(None, None, None)
    calibrated: bool = False

    def top(self, k: int) -> tuple[Finding, ...]:
        return self.findings[:k]

    def finding(self, label: str) -> Finding:
        for f in self.findings:
            if f.label == label:
                return f
        raise KeyError(label)

    def to_json(self, top: int | None = None) -> dict[str, Any]:
        """The ``fpsm infer --json`` record (all findings unless ``top`` is given)."""
        findings = self.findings if top is None else self.findings[:top]
        return {
            "path": self.path,
            "input": self.input.to_json(),
            "calibrated": self.calibrated,
            "findings": [
                {
                    "label": f.label,
                    "probability": round(f.probability, 6),
                    "threshold": round(f.threshold, 6),
                    "above_threshold": f.above_threshold,
                    "members": {
                        n: round(p, 6)
                        for n, p in zip(self.member_names, f.member_probabilities, strict=True)
                    },
                    "level_logits": {
                        n: {str(lv): round(x, 6) for lv, x in zip(levels, logits, strict=True)}
                        for n, levels, logits in zip(
                            self.member_names, self.member_levels, f.level_logits, strict=True
                        )
                    },
                }
                for f in findings
            ],
            "members": [
                {"name": n, "levels": list(lv)}
                for n, lv in zip(self.member_names, self.member_levels, strict=True)
            ],
            "levels": {
                n: {
                    str(lv): [round(float(v), 6) for v in row]
                    for lv, row in zip(levels, ll, strict=True)
                }
                for n, levels, ll in zip(
                    self.member_names, self.member_levels, self.level_logits, strict=True
                )
            },
            "model": dict(self.model),
            "untrained": self.untrained,
            "device": self.device,
            "timing_ms": {k: round(v, 2) for k, v in self.timing_ms.items()},
        }


@dataclass(frozen=True)
class LoadFailure:
    """An input that could not be read; ``error`` is one sentence naming the file."""

    path: str
    error: str


@dataclass
class Prepared:
    """An image ready for the forward pass: each member's input tensor, letterbox and checks.

    Mutable on purpose: the pipeline drops ``tensors`` once it has stacked them into a batch.
    """

    path: str | None
    shape: tuple[int, int]
    tensors: list[np.ndarray]
    boxes: list[Letterbox]
    reasons: tuple[Reason, ...] = ()
    load_ms: float = 0.0
    preprocess_ms: float = 0.0
    checks_ms: float = 0.0


PreprocessKey = tuple[Preprocessing, int]


def prepare_item(image: Any, keys: Sequence[PreprocessKey]) -> Prepared:
    """Window, resize and normalise ``image`` for each member's input contract; run the checks.

    Members that share a contract share one tensor. Needs no model (the pipeline's decode workers
    call it).
    """
    t0 = time.perf_counter()
    pixels = np.asarray(image.pixels)
    window = tuple(image.window)
    tensors: list[np.ndarray] = []
    boxes: list[Letterbox] = []
    cache: dict[Any, tuple[np.ndarray, Letterbox]] = {}
    for key in keys:
        if key not in cache:
            cache[key] = prepare(pixels, window, key[0], key[1])  # type: ignore[arg-type]
        tensor, box = cache[key]
        tensors.append(tensor)
        boxes.append(box)
    path = getattr(image, "path", None)
    t1 = time.perf_counter()
    reasons = check_image(image)
    return Prepared(
        path=str(path) if path is not None else None,
        shape=(int(pixels.shape[0]), int(pixels.shape[1])),
        tensors=tensors,
        boxes=boxes,
        reasons=reasons,
        preprocess_ms=(t1 - t0) * 1e3,
        checks_ms=(time.perf_counter() - t1) * 1e3,
    )


class InferenceService:
    """Runs an FPSM ensemble on radiographs.

    Args:
        model: an :class:`Ensemble`, a checkpoint/ensemble path, or None for the bundled default.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: Ensemble | str | Path | None = None,
        device: str = "auto",
        batch_size: int = 4,
    ) -> None:
        self.device = pick_device(device)
        if model is None:
            from fpsm_core.resources import default_model_path

            model = default_model_path()
        self.ensemble = model if isinstance(model, Ensemble) else load_model(model)
        self.ensemble.to(self.device)
        self.batch_size = max(1, int(batch_size))
        self.trust = load_ensemble_trust(self.ensemble)
        self._thresholds = self.trust.thresholds or self.ensemble.thresholds
        # Built once: every Result carries it, and the per-image path should not rebuild it.
        identity = self.ensemble.identity()
        self._result_identity = MappingProxyType(
            {k: v for k, v in identity.items() if k != "members"}
            | {"members": tuple(m["name"] for m in identity["members"])}
            | describe(self.trust)
        )
        self._cuda = self.device.type == "cuda"
        if self._cuda:
            torch.backends.cudnn.benchmark = True
            for member in self.ensemble.members:
                member.model.to(memory_format=torch.channels_last)

    @property
    def labels(self) -> tuple[str, ...]:
        return self.ensemble.labels

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The thresholds in use: the calibrated ones when the model is calibrated."""
        return tuple(self._thresholds)

    def identity(self) -> dict[str, Any]:
        return {**self.ensemble.identity(), **describe(self.trust), "device": str(self.device)}

    # -- public API ------------------------------------------------------------------------
    def predict(self, images: Sequence[Any], *, cams: bool = False) -> list[Result]:
        """Predict for loaded images (objects with ``pixels``, ``window`` and optionally ``path``)."""
        prepared = [self._prepare(img) for img in images]
        return self._run(prepared, cams=cams)

    def predict_paths(
        self,
        paths: Iterable[str | Path],
        *,
        cams: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel: Callable[[], bool] | None = None,
    ) -> Iterator[Result | LoadFailure]:
        """Load and predict files in batches; unreadable files yield :class:`LoadFailure`.

        ``progress(done, total)`` is called after every batch; ``cancel()`` returning True stops
        before the next batch.
        """
        from fpsm_core.io import ImageLoadError, load_image

        path_list = [Path(p) for p in paths]
        total = len(path_list)
        done = 0
        batch: list[Prepared] = []

        def flush() -> Iterator[Result]:
            nonlocal batch
            results = self._run(batch, cams=cams)
            batch = []
            yield from results

        for path in path_list:
            if cancel is not None and cancel():
                return
            t0 = time.perf_counter()
            try:
                image = load_image(path)
            except ImageLoadError as exc:
                done += 1
                yield LoadFailure(path=str(path), error=str(exc))
                if progress:
                    progress(done, total)
                continue
            load_ms = (time.perf_counter() - t0) * 1e3
            item = self._prepare(image)
            item.load_ms = load_ms
            batch.append(item)
            if len(batch) >= self.batch_size:
                done += len(batch)
                yield from flush()
                if progress:
                    progress(done, total)
        if batch:
            done += len(batch)
            yield from flush()
            if progress:
                progress(done, total)

    # -- internals --------------------------------------------------------------------------
    def _prepare(self, image: Any) -> Prepared:
        return prepare_item(image, self.preprocess_keys())

    def preprocess_keys(self) -> tuple[PreprocessKey, ...]:
        """Each member's input contract (preprocessing, channels), in member order.

        Plain, picklable data: the batch pipeline's decode workers prepare images from it without
        the model.
        """
        return tuple(
            (member.meta.preprocessing, int(member.model.in_chans))
            for member in self.ensemble.members
        )

    def predict_prepared(
        self,
        items: Sequence[Prepared],
        *,
        cams: bool = False,
        stacked: Sequence[torch.Tensor] | None = None,
    ) -> list[Result]:
        """Results for images already decoded and prepared (by :func:`prepare_item`).

        Args:
            items: the prepared images, one forward batch.
            cams: keep the closed-form level CAMs.
            stacked: per member, the items' input tensors already stacked (and pinned on CUDA) by
                the pipeline; None stacks them here.
        """
        if stacked is None:
            return self._run(items, cams=cams)
        return self._run_batch(items, list(stacked), cams=cams)

    def _forward_member(
        self, index: int, batch: np.ndarray | torch.Tensor, cams: bool
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray] | None, np.ndarray | None]:
        model = self.ensemble.members[index].model
        x = batch if isinstance(batch, torch.Tensor) else torch.from_numpy(batch)
        # From pinned memory (the pipeline pins on CUDA) the copy overlaps the previous batch.
        x = x.to(self.device, non_blocking=True)
        if self._cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(device_type=self.device.type, dtype=torch.float16, enabled=self._cuda),
        ):
            out = model.forward_all(x)
            level_logits = torch.stack([z.float() for z in out.level_logits], dim=1)  # (B, L, C)
            logits = out.logits.float().cpu().numpy()
            # The gate reads the pooled vectors of this same pass: no second forward.
            scores = (
                self.trust.member_score(index, pooled(out.features))
                if self.trust.has_gate
                else None
            )
            raw = None
            if cams:
                from fpsm_core.explain import raw_level_cams

                raw = [m.float().cpu().numpy() for m in raw_level_cams(model, out)]
        probs = self.trust.member_probabilities(index, logits)
        return probs, level_logits.cpu().numpy(), raw, scores

    def _run(self, items: Sequence[Prepared], *, cams: bool) -> list[Result]:
        results: list[Result] = []
        for start in range(0, len(items), self.batch_size):
            chunk = items[start : start + self.batch_size]
            stacked = [
                np.stack([it.tensors[m] for it in chunk]) for m in range(len(self.ensemble.members))
            ]
            results.extend(self._run_batch(chunk, stacked, cams=cams))
        return results

    def _run_batch(
        self,
        chunk: Sequence[Prepared],
        stacked: Sequence[np.ndarray | torch.Tensor],
        *,
        cams: bool,
    ) -> list[Result]:
        if not chunk:
            return []
        results: list[Result] = []
        member_probs, member_levels, member_cams, forward_ms = [], [], [], []
        member_scores: list[np.ndarray | None] = []
        for m in range(len(self.ensemble.members)):
            if self._cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            probs, levels, raw, scores = self._forward_member(m, stacked[m], cams)
            forward_ms.append((time.perf_counter() - t0) * 1e3)
            member_scores.append(scores)
            member_probs.append(probs)
            member_levels.append(levels)
            member_cams.append(raw)
        per_image_forward = sum(forward_ms) / len(chunk)
        for b, item in enumerate(chunk):
            gated = all(s is not None for s in member_scores)
            verdict = self.trust.verdict(
                [float(s[b]) for s in member_scores if s is not None] if gated else None,
                item.reasons,
            )
            results.append(
                self._assemble(
                    item,
                    [p[b] for p in member_probs],
                    [lv[b] for lv in member_levels],
                    [tuple(level[b] for level in raw) for raw in member_cams if raw is not None]
                    if cams
                    else None,
                    per_image_forward,
                    verdict,
                )
            )
        return results

    def _assemble(
        self,
        item: Prepared,
        probs: list[np.ndarray],
        levels: list[np.ndarray],
        cams: list[tuple[np.ndarray, ...]] | None,
        forward_ms: float,
        verdict: InputVerdict,
    ) -> Result:
        ens = self.ensemble
        member_probs = np.stack(probs).astype(np.float32)
        mean = mean_probabilities(probs).astype(np.float32)
        findings = [
            Finding(
                label=label,
                index=i,
                probability=float(mean[i]),
                threshold=float(self._thresholds[i]),
                member_probabilities=tuple(float(p[i]) for p in probs),
                level_logits=tuple(tuple(float(x) for x in lv[:, i]) for lv in levels),
            )
            for i, label in enumerate(ens.labels)
        ]
        findings.sort(key=lambda f: (-f.probability, f.index))
        timing = {
            "load": item.load_ms,
            "preprocess": item.preprocess_ms,
            "forward": forward_ms,
            "checks": item.checks_ms,
        }
        timing["total"] = sum(timing.values())
        return Result(
            path=item.path,
            image_shape=item.shape,
            labels=ens.labels,
            findings=tuple(findings),
            probabilities=mean,
            member_probabilities=member_probs,
            member_names=ens.member_names,
            member_levels=tuple(m.model.levels for m in ens.members),
            level_logits=tuple(lv.astype(np.float32) for lv in levels),
            letterboxes=tuple(item.boxes),
            input_sizes=tuple(m.meta.preprocessing.input_size for m in ens.members),
            model=self._result_identity,
            untrained=ens.untrained,
            timing_ms=timing,
            device=str(self.device),
            cams=tuple(cams) if cams is not None else None,
            input=verdict,
            calibrated=self.trust.calibrated,
        )

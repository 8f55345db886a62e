"""The FPSM trainer: per-level losses, AdamW, AMP, EMA, accumulation, DDP and exact resume.

Each pyramid level's logits get their own multi-label loss (BCE or ASL) and the losses are summed,
as the paper trains FPSM; classes the data set does not annotate are left out of the loss. One
epoch: shuffled (or class-balanced) batches, an optimizer step every ``accumulate`` batches with
the learning rate a pure function of the step, an EMA update, then validation with the EMA weights.
The best checkpoint by validation mAP is written in the project's safetensors format with the full
config, the metrics and F1-optimal per-class thresholds chosen on the validation set.

Interruption: the first Ctrl-C or SIGTERM finishes the current optimizer step, writes the resume
state and returns; ``resume=True`` continues from it with the same data order, augmentation, random
generators and schedule, so the weights equal those of an uninterrupted run (on a deterministic
device). Under ``torchrun`` every rank trains a shard; rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fpsm_core.data.dataset import (
    EpochSampler,
    RadiographDataset,
    class_balanced_weights,
    make_loader,
    normalise_batch,
)
from fpsm_core.metrics import f1_optimal_thresholds, multilabel_report
from fpsm_core.model.checkpoint import read_checkpoint_meta, save_checkpoint
from fpsm_core.model.fpsm import FPSM
from fpsm_core.training.config import TrainConfig, dump_config
from fpsm_core.training.distributed import (
    DistInfo,
    any_flag,
    barrier,
    gather_objects,
    init_distributed,
    shutdown,
)
from fpsm_core.training.interrupt import StopRequest
from fpsm_core.training.losses import per_level_loss
from fpsm_core.training.metering import EpochMeter, epoch_line, epoch_record, plan_steps
from fpsm_core.training.optim import ModelEma, build_optimizer, lr_factor, set_lr
from fpsm_core.training.predict import autocast_dtype, predict_records
from fpsm_core.training.provenance import training_provenance
from fpsm_core.training.setup import (
    MetricsLog,
    RunData,
    build_model,
    json_safe,
    known_thresholds,
    load_run_data,
    preprocessing_of,
)
from fpsm_core.training.state import (
    RunPosition,
    capture_rng,
    check_resumable,
    load_state,
    restore_rng,
    save_state,
)

EpochCallback = Callable[[int, Mapping[str, Any]], None]
StepCallback = Callable[[int], bool]


@dataclass(frozen=True)
class FitResult:
    """What a training run produced.

    Attributes:
        checkpoint: the best checkpoint's JSON (by validation mAP; the last one without validation).
        last_checkpoint: the final weights' checkpoint JSON (None when interrupted).
        best_score: best validation mAP (None without validation).
        history: one record per finished epoch (as in ``metrics.csv``).
        interrupted: stopped early on request; ``resume=True`` continues.
    """

    out_dir: Path
    checkpoint: Path | None
    last_checkpoint: Path | None
    best_score: float | None
    best_epoch: int | None
    history: tuple[dict[str, Any], ...]
    epochs_done: int
    steps: int
    interrupted: bool


def fit(
    config: TrainConfig,
    *,
    resume: bool | str | Path = False,
    epoch_callback: EpochCallback | None = None,
    step_callback: StepCallback | None = None,
    log: Callable[[str], None] | None = print,
) -> FitResult:
    """Train an FPSM as ``config`` says.

    Args:
        resume: True continues from the run folder's resume state; a path names another run
            folder (or its ``train_state.json``).
        epoch_callback: called on every rank after each epoch with the epoch record (validation
            metrics included); it may raise to stop (Optuna pruning does).
        step_callback: called after every optimizer step with the step number; returning True
            requests a clean stop as a signal would (tests use it to interrupt a run).
        log: where progress lines go (rank 0 only); None for silence.

    Raises:
        ConfigError, DatasetError, ResumeError: user mistakes, one sentence each.
    """
    started_dist = not torch.distributed.is_initialized()
    info = init_distributed(config.run.device)
    say = log if (log is not None and info.is_main) else (lambda _msg: None)
    try:
        return _Trainer(config, info, say).run(resume, epoch_callback, step_callback)
    finally:
        if started_dist:
            shutdown(info)


class _Trainer:
    """One training run on one rank: set-up, optional resume, then the epoch loop.

    The loop is all this class does itself: micro-batches through the model, an optimizer step every
    ``accumulate`` of them, validation and checkpoints at the end of each epoch. What a run is made
    of comes from :mod:`~fpsm_core.training.setup`, the step arithmetic and the epoch's
    measurements from :mod:`~fpsm_core.training.metering`, whether a saved run may be continued
    from :func:`~fpsm_core.training.state.check_resumable`, and what a checkpoint records about the
    run from :mod:`~fpsm_core.training.provenance`.

    ``position`` (a :class:`RunPosition`) is the only state that changes as the run goes; it is what
    the resume state saves, so an interrupted run continues from it exactly.
    """

    def __init__(self, config: TrainConfig, info: DistInfo, log: Callable[[str], None]) -> None:
        self.config = config
        self.info = info
        self.log = log
        self.out_dir = Path(config.run.out_dir)
        self.device = info.device
        self.amp_dtype = autocast_dtype(self.device, config.optim.amp, config.optim.amp_dtype)
        self.position = RunPosition()
        self.metrics_log = MetricsLog(self.out_dir)
        self.best_path: Path | None = None
        self.best_thresholds: list[float] | None = None

    # -- set-up ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        c = self.config
        if self.info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            dump_config(c, self.out_dir / "config.yaml")
        self.data: RunData = load_run_data(c)
        for note in self.data.notes:
            self.log(note)
        self.known = torch.from_numpy(self.data.known)
        self.labels = self.data.labels
        self.preprocessing = preprocessing_of(c)
        self._build_model()
        self._build_loader()

    def _build_model(self) -> None:
        c, info = self.config, self.info
        torch.manual_seed(c.run.seed)  # same initial weights on every rank
        self.model, notes = build_model(c, num_classes=len(self.labels))
        for note in notes:
            self.log(note)
        if info.distributed and c.optim.sync_bn:
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)  # type: ignore[assignment]
        self.model.to(self.device)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
            if c.optim.channels_last:
                self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.ema = ModelEma(self.model, c.optim.ema_decay) if c.optim.ema else None
        # What the training pass runs: the model's level logits, under DDP and compile if asked.
        self.train_module: nn.Module = _LevelLogits(self.model)
        if info.distributed:
            self.train_module = nn.parallel.DistributedDataParallel(
                self.train_module,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
            )
        if c.optim.compile:
            self.train_module = torch.compile(self.train_module)  # type: ignore[assignment]
        self.optimizer = build_optimizer(self.model, c.optim)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None

    def _build_loader(self) -> None:
        c, info = self.config, self.info
        weights = (
            class_balanced_weights(self.data.train.targets, self.data.known, c.data.balance_power)
            if c.data.class_balanced
            else None
        )
        self.sampler = EpochSampler(
            len(self.data.train),
            shuffle=True,
            seed=c.run.seed,
            weights=weights,
            rank=info.rank,
            world_size=info.world_size,
        )
        dataset = RadiographDataset(
            self.data.train,
            c.input.input_size,
            c.input.resize,
            augment_config=c.augment,
            cache_dir=c.data.cache_dir,
            seed=c.run.seed,
        )
        self.plan = plan_steps(
            self.sampler.per_rank(),
            c.optim.batch_size,
            c.optim.accumulate,
            c.optim.epochs,
            c.optim.warmup_epochs,
        )
        self.loader = make_loader(
            dataset,
            c.optim.batch_size,
            self.sampler,
            num_workers=c.data.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.plan.drop_last,
        )

    def _resume(self, resume: bool | str | Path) -> None:
        if resume is False:
            return
        where = self.out_dir if resume is True else Path(resume)
        state = load_state(where, rank=self.info.rank)
        check_resumable(
            where,
            state,
            self.config.to_dict(),
            world_size=self.info.world_size,
            ema=self.ema is not None,
        )
        self.model.load_state_dict(state.model)
        if self.ema is not None and state.ema is not None:
            self.ema.module.load_state_dict(state.ema)
            self.ema.updates = state.position.step
        self.optimizer.load_state_dict(state.optimizer)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.position = state.position
        best = self.out_dir / f"{self.config.run.name}.json"
        self.best_path = best if best.is_file() else None
        if self.best_path is not None and self.data.val is not None:
            self.best_thresholds = list(read_checkpoint_meta(self.best_path).thresholds)
        p = self.position
        self.log(
            f"resumed {where} at epoch {p.epoch + 1}, batch {p.batches_in_epoch}, step {p.step}."
        )

    # -- the loop ----------------------------------------------------------------------------
    def run(
        self,
        resume: bool | str | Path,
        epoch_callback: EpochCallback | None,
        step_callback: StepCallback | None,
    ) -> FitResult:
        self._prepare()
        self._resume(resume)
        c = self.config
        if resume is False:
            torch.manual_seed(c.run.seed + 1000 * self.info.rank)  # dropout differs per rank
            np.random.seed(c.run.seed + self.info.rank)
        self.log(
            f"training {c.model.backbone} levels {'+'.join(map(str, c.model.levels))} "
            f"({c.model.aggregation}{', synthetic embedding' if c.model.synthetic_embedding else ''}) "
            f"at {c.input.input_size} px on {self.info.world_size} x {self.device}: "
            f"{len(self.data.train)} train / {len(self.data.val) if self.data.val else 0} val images, "
            f"{self.plan.steps_per_epoch} steps per epoch."
        )
        interrupted = False
        with StopRequest() as stop:
            try:
                while self.position.epoch < c.optim.epochs:
                    record = self._train_epoch(stop, step_callback)
                    if record is None:
                        interrupted = True
                        break
                    if epoch_callback is not None:
                        epoch_callback(self.position.epoch - 1, record)
                    more = self.position.epoch < c.optim.epochs
                    if any_flag(self.info, stop.requested) and more:
                        interrupted = True
                        break
            finally:
                del self.loader
        last = None if interrupted else self._save_last()
        if interrupted:
            self.log(
                f"stopped at epoch {self.position.epoch + 1}, step {self.position.step}; "
                f"resume with --resume (state in {self.out_dir})."
            )
        if not interrupted and self.info.is_main:
            self._fit_trust(self.best_path or last)
        barrier(self.info)
        p = self.position
        return FitResult(
            out_dir=self.out_dir,
            checkpoint=self.best_path or last,
            last_checkpoint=last,
            best_score=p.best_score if math.isfinite(p.best_score) else None,
            best_epoch=p.best_epoch if p.best_epoch >= 0 else None,
            history=tuple(p.history),
            epochs_done=p.epoch,
            steps=p.step,
            interrupted=interrupted,
        )

    def _fit_trust(self, checkpoint: Path | None) -> None:
        """Fit the gate and calibration beside the chosen checkpoint (``run.trust``).

        A run without validation images, or whose data cannot support a gate (too few images),
        still ends with its checkpoint: the reason is logged and the model says the gate is
        unavailable when it is loaded.
        """
        if not self.config.run.trust or checkpoint is None:
            return
        if self.data.val is None:
            self.log("trust: no validation images, so no gate or calibration was fitted.")
            return
        from fpsm_core.errors import FpsmError
        from fpsm_core.trust.fit import fit_trust

        try:
            fit_trust(checkpoint, self.data.train, self.data.val, device=str(self.device))
        except FpsmError as exc:
            self.log(f"trust: not fitted ({exc})")
            return
        self.log(f"trust: gate and calibration fitted beside {checkpoint.name}.")

    def _batches(self, start: int) -> Iterator[dict[str, Any]]:
        self.sampler.set_epoch(self.position.epoch, start=start * self.config.optim.batch_size)
        yield from self.loader

    def _train_epoch(
        self, stop: StopRequest, step_callback: StepCallback | None
    ) -> dict[str, Any] | None:
        """One epoch from the current position and its end; None when a stop was requested."""
        c, o, p = self.config, self.config.optim, self.position
        self.train_module.train()
        meter = EpochMeter(len(c.model.levels))
        start_batch = p.batches_in_epoch
        bar = _progress_bar(self, start_batch)
        pending = 0
        batch_index = start_batch
        stopped = False
        for batch in self._batches(start_batch):
            meter.batch_arrived()
            batch_index += 1
            pending += 1
            step_ends = pending == o.accumulate or batch_index == self.plan.batches_per_epoch
            loss, per_level, readable = self._forward_backward(batch, step_ends)
            meter.add(loss, per_level, readable, batch["error"])
            if step_ends:
                self._optimizer_step()
                pending = 0
                p.batches_in_epoch = batch_index
                if step_callback is not None and step_callback(p.step):
                    stop.requested = True
                if c.run.save_every_steps and p.step % c.run.save_every_steps == 0:
                    self._save_state()
                stopped = any_flag(self.info, stop.requested)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{meter.recent_loss(50):.4f}")
            if step_ends and p.step % c.run.log_every == 0:
                self._log_step(meter, to_console=bar is None)
            if stopped:
                break
            meter.batch_done()
        if bar is not None:
            bar.close()
        elapsed = meter.elapsed()
        p.elapsed_s += elapsed
        if stopped and p.batches_in_epoch < self.plan.batches_per_epoch:
            self._save_state()
            return None
        stats = meter.finish(
            self.info, self.data.train.source, ran=batch_index > start_batch, elapsed=elapsed
        )
        record = epoch_record(
            p.epoch + 1, p.step, c.model.levels, stats, self.optimizer.param_groups[0]["lr"]
        )
        if stats.unreadable:
            self.log(
                f"{len(stats.unreadable)} training images could not be read and were skipped "
                f"(first: {stats.unreadable[0]})."
            )
        return self._end_epoch(record)

    def _log_step(self, meter: EpochMeter, to_console: bool) -> None:
        c, p = self.config, self.position
        lr = self.optimizer.param_groups[0]["lr"]
        if to_console:
            self.log(
                f"  epoch {p.epoch + 1} step {p.step}/{self.plan.total_steps} "
                f"loss {meter.recent_loss(c.run.log_every):.4f} lr {lr:.3g}"
            )
        if self.info.is_main:
            loss = meter.recent_loss(c.run.log_every)
            self.metrics_log.write(
                {
                    "type": "step",
                    "epoch": p.epoch + 1,
                    "step": p.step,
                    "loss": loss if meter.losses else None,
                    "lr": lr,
                }
            )

    def _forward_backward(
        self, batch: Mapping[str, Any], sync: bool
    ) -> tuple[float, np.ndarray, int]:
        """Loss and gradients of one micro-batch: (loss, per-level losses, readable images).

        Gradients are averaged over ranks only when ``sync`` (the group's last micro-batch).
        """
        o = self.config.optim
        valid = batch["valid"]
        readable = int(valid.sum())
        use = valid if readable >= 2 else torch.ones_like(valid)  # BN needs 2+; DDP needs a pass
        weight = 1.0 if readable >= 2 else 0.0
        x = normalise_batch(
            batch["image"][use].to(self.device, non_blocking=True),
            self.preprocessing.mean,
            self.preprocessing.std,
            self.config.model.in_chans,
        )
        if self.device.type == "cuda" and o.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        known = self.known.to(self.device)
        y = batch["target"][use].to(self.device, non_blocking=True)[:, known]
        syn = batch["synthetic"][use].to(self.device, non_blocking=True)
        no_sync = (
            self.train_module.no_sync()
            if isinstance(self.train_module, nn.parallel.DistributedDataParallel) and not sync
            else contextlib.nullcontext()
        )
        with no_sync:
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ):
                out = self.train_module(x, syn)
            per_level = torch.stack([self._loss([z.float()[:, known]], y) for z in out])
            loss = per_level.sum() * weight / o.accumulate
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        if weight == 0.0:
            return float("nan"), np.zeros(len(out)), 0
        return float(per_level.sum().item()), per_level.detach().cpu().numpy(), readable

    def _loss(self, level_logits: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        lc = self.config.loss
        kwargs = (
            {"gamma_neg": lc.gamma_neg, "gamma_pos": lc.gamma_pos, "clip": lc.clip}
            if lc.type == "asl"
            else {}
        )
        return per_level_loss(level_logits, y, loss=lc.type, **kwargs)  # type: ignore[arg-type]

    def _optimizer_step(self) -> None:
        o = self.config.optim
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if o.grad_clip:
            nn.utils.clip_grad_norm_(self.model.parameters(), o.grad_clip)
        factor = lr_factor(self.position.step, self.plan.total_steps, self.plan.warmup_steps, o)
        set_lr(self.optimizer, o.lr * factor)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.position.step += 1

    # -- end of epoch --------------------------------------------------------------------------
    def _end_epoch(self, record: dict[str, Any]) -> dict[str, Any]:
        """Validate when due, keep the best checkpoint, save the resume state; returns the record."""
        c, p = self.config, self.position
        epoch = p.epoch
        report = None
        thresholds = None
        last_epoch = epoch + 1 == c.optim.epochs
        if self.data.val is not None and ((epoch + 1) % c.run.eval_every == 0 or last_epoch):
            report, thresholds, val_time = self._validate()
            record.update(
                {
                    "val_mAP": report["mAP"],
                    "val_AUC": report["AUC"],
                    "val_F1": report["F1"],
                    "val_recall": report["recall"],
                    "val_precision": report["precision"],
                    "val_time_s": round(val_time, 2),
                }
            )
        p.epoch += 1
        p.batches_in_epoch = 0
        score = record.get("val_mAP")
        improved = score is not None and math.isfinite(score) and score > p.best_score
        if improved:
            p.best_score = float(score)  # type: ignore[arg-type]
            p.best_epoch = epoch + 1
        record["best"] = bool(improved)
        p.history.append(json_safe(record))
        if self.info.is_main:
            self.metrics_log.write(record)
            self.metrics_log.write_epochs(p.history)
            if improved or self.data.val is None:
                self.best_thresholds = thresholds
                self.best_path = self._save_checkpoint(
                    self.out_dir / c.run.name,
                    report,
                    thresholds,
                    kind="best" if improved else "last",
                )
        self._save_state()
        self.log(epoch_line(record, c.optim.epochs))
        return record

    def _validate(self) -> tuple[dict[str, Any], list[float], float]:
        c = self.config
        t0 = time.perf_counter()
        assert self.data.val is not None
        preds = predict_records(
            self._weights_model(),
            self.data.val,
            self.preprocessing,
            device=self.device,
            batch_size=c.run.eval_batch_size or c.optim.batch_size,
            num_workers=c.data.num_workers,
            cache_dir=c.data.cache_dir,
            amp=c.optim.amp,
            info=self.info,
        )
        known = self.data.known
        ok = preds.valid
        y = self.data.val.targets[ok][:, known]
        probabilities = preds.probabilities[ok][:, known]
        tuned = f1_optimal_thresholds(y, probabilities)
        report = multilabel_report(
            y,
            probabilities,
            tuned,
            labels=[lab for lab, k in zip(self.labels, known, strict=True) if k],
        )
        if preds.errors:
            self.log(
                f"{len(preds.errors)} validation images could not be read and were left out "
                f"(first: {preds.errors[0]})."
            )
        return report, known_thresholds(tuned, known), time.perf_counter() - t0

    # -- files ---------------------------------------------------------------------------------
    def _weights_model(self) -> FPSM:
        """The weights a checkpoint holds and validation scores: the EMA's when there is one."""
        model = self.ema.module if self.ema is not None else self.model
        return model  # type: ignore[return-value]

    def _save_checkpoint(
        self,
        stem: Path,
        report: Mapping[str, Any] | None,
        thresholds: list[float] | None,
        kind: str,
    ) -> Path:
        c = self.config
        provenance = training_provenance(
            c,
            self.data,
            kind=kind,
            epoch=self.position.epoch,
            step=self.position.step,
            ema=self.ema is not None,
            world_size=self.info.world_size,
            report=report,
            tuned_thresholds=bool(thresholds),
        )
        return save_checkpoint(
            self._weights_model(),
            stem,
            name=c.run.name,
            preprocessing=self.preprocessing,
            labels=self.labels,
            thresholds=thresholds,
            provenance=json_safe(provenance.to_json()),
            dtype=c.run.checkpoint_dtype,  # type: ignore[arg-type]
            untrained=False,
        )

    def _save_last(self) -> Path | None:
        path = None
        if self.info.is_main:
            path = self._save_checkpoint(
                self.out_dir / f"{self.config.run.name}_last", None, self.best_thresholds, "last"
            )
            if self.best_path is None:
                self.best_path = path
        return path

    def _save_state(self) -> None:
        rngs = gather_objects(self.info, capture_rng())
        if self.info.is_main:
            save_state(
                self.out_dir,
                position=self.position,
                model=self.model.state_dict(),
                ema=self.ema.module.state_dict() if self.ema is not None else None,
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict() if self.scaler is not None else None,
                rngs=rngs,
                config=self.config.to_dict(),
            )
        barrier(self.info)


def _progress_bar(trainer: _Trainer, start: int) -> Any:
    """A tqdm bar over the epoch's batches on an interactive rank 0, else None (log lines)."""
    if not (trainer.config.run.progress and trainer.info.is_main):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        return None
    if not sys.stderr.isatty():
        return None
    return tqdm(
        total=trainer.plan.batches_per_epoch,
        initial=start,
        desc=f"epoch {trainer.position.epoch + 1}/{trainer.config.optim.epochs}",
        unit="batch",
        leave=False,
        file=sys.stderr,
    )


class _LevelLogits(nn.Module):
    """The FPSM seen through ``forward_levels``, so that DDP's hooks see the training pass."""

    def __init__(self, model: FPSM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, synthetic: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_levels(x, synthetic)

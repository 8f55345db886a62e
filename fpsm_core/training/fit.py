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
import signal
import sys
import threading
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
from fpsm_core.data.records import DatasetError
from fpsm_core.metrics import f1_optimal_thresholds, multilabel_report
from fpsm_core.model.checkpoint import read_checkpoint_meta, save_checkpoint
from fpsm_core.model.fpsm import FPSM
from fpsm_core.training.config import ConfigError, TrainConfig, dump_config
from fpsm_core.training.distributed import (
    DistInfo,
    any_flag,
    barrier,
    gather_objects,
    init_distributed,
    mean_scalar,
    shutdown,
    sum_scalar,
)
from fpsm_core.training.losses import per_level_loss
from fpsm_core.training.optim import ModelEma, build_optimizer, lr_factor, set_lr
from fpsm_core.training.predict import autocast_dtype, predict_records
from fpsm_core.training.setup import (
    MetricsLog,
    RunData,
    build_model,
    init_from_provenance,
    json_safe,
    known_thresholds,
    load_run_data,
    preprocessing_of,
)
from fpsm_core.training.state import (
    ResumeError,
    RunPosition,
    capture_rng,
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


class _StopRequest:
    """First SIGINT/SIGTERM asks for a clean stop; a second SIGINT interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        print(
            "\nstop requested: finishing this step and saving the resume state "
            "(Ctrl-C again to abort).",
            file=sys.stderr,
            flush=True,
        )

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


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
    def __init__(self, config: TrainConfig, info: DistInfo, say: Callable[[str], None]) -> None:
        self.config = config
        self.info = info
        self.say = say
        self.out_dir = Path(config.run.out_dir)
        self.device = info.device
        self.amp_dtype = autocast_dtype(self.device, config.optim.amp, config.optim.amp_dtype)

    # -- set-up ------------------------------------------------------------------------------
    def _prepare(self) -> None:
        c, info = self.config, self.info
        if info.is_main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            dump_config(c, self.out_dir / "config.yaml")
        self.data: RunData = load_run_data(c)
        for note in self.data.notes:
            self.say(note)
        self.known = torch.from_numpy(self.data.known)
        self.labels = self.data.labels
        torch.manual_seed(c.run.seed)  # same initial weights on every rank
        self.model, notes = build_model(c, num_classes=len(self.labels))
        for note in notes:
            self.say(note)
        self.preprocessing = preprocessing_of(c)
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
        self.net: nn.Module = _Levels(self.model)
        if info.distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if c.optim.compile:
            self.net = torch.compile(self.net)  # type: ignore[assignment]
        self.optimizer = build_optimizer(self.model, c.optim)
        use_scaler = self.amp_dtype == torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler) if use_scaler else None

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
        per_rank = self.sampler.per_rank()
        self.drop_last = per_rank >= c.optim.batch_size
        self.loader = make_loader(
            dataset,
            c.optim.batch_size,
            self.sampler,
            num_workers=c.data.num_workers,
            pin_memory=self.device.type == "cuda",
            drop_last=self.drop_last,
        )
        batches = (
            per_rank // c.optim.batch_size
            if self.drop_last
            else math.ceil(per_rank / c.optim.batch_size)
        )
        self.batches_per_epoch = max(1, batches)
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / c.optim.accumulate)
        self.total_steps = self.steps_per_epoch * c.optim.epochs
        self.warmup_steps = round(c.optim.warmup_epochs * self.steps_per_epoch)
        self.pos = RunPosition()
        self.metrics_log = MetricsLog(self.out_dir)
        self.best_path: Path | None = None
        self.best_thresholds: list[float] | None = None

    def _resume(self, resume: bool | str | Path) -> None:
        if resume is False:
            return
        where = self.out_dir if resume is True else Path(resume)
        state = load_state(where, rank=self.info.rank)
        saved = state.config
        c = self.config.to_dict()
        for key in ("backbone", "levels", "aggregation", "synthetic_embedding", "in_chans"):
            if saved["model"][key] != c["model"][key]:
                raise ResumeError(
                    f"{where}: the saved run has model.{key}={saved['model'][key]!r}, this config "
                    f"{c['model'][key]!r}; resume the same architecture."
                )
        for section, key in (("optim", "batch_size"), ("optim", "accumulate")):
            if saved[section][key] != c[section][key]:
                raise ResumeError(
                    f"{where}: {section}.{key} was {saved[section][key]}, now {c[section][key]}; "
                    "exact resume needs the same value."
                )
        if state.world_size != self.info.world_size:
            raise ResumeError(
                f"{where}: the run used {state.world_size} process(es), this one "
                f"{self.info.world_size}; exact resume needs the same number."
            )
        self.model.load_state_dict(state.model)
        if self.ema is not None:
            if state.ema is None:
                raise ResumeError(
                    f"{where}: the saved run had no EMA but this config asks for one."
                )
            self.ema.module.load_state_dict(state.ema)
            self.ema.updates = state.position.step
        self.optimizer.load_state_dict(state.optimizer)
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)
        restore_rng(state.rng)
        self.pos = state.position
        best = self.out_dir / f"{self.config.run.name}.json"
        self.best_path = best if best.is_file() else None
        if self.best_path is not None and self.data.val is not None:
            self.best_thresholds = list(read_checkpoint_meta(self.best_path).thresholds)
        self.say(
            f"resumed {where} at epoch {self.pos.epoch + 1}, batch {self.pos.batches_in_epoch}, "
            f"step {self.pos.step}."
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
        self.say(
            f"training {c.model.backbone} levels {'+'.join(map(str, c.model.levels))} "
            f"({c.model.aggregation}{', synthetic embedding' if c.model.synthetic_embedding else ''}) "
            f"at {c.input.input_size} px on {self.info.world_size} x {self.device}: "
            f"{len(self.data.train)} train / {len(self.data.val) if self.data.val else 0} val images, "
            f"{self.steps_per_epoch} steps per epoch."
        )
        interrupted = False
        with _StopRequest() as stop:
            try:
                while self.pos.epoch < c.optim.epochs:
                    finished = self._train_epoch(stop, step_callback)
                    if not finished:
                        interrupted = True
                        break
                    record = self._end_epoch()
                    if epoch_callback is not None:
                        epoch_callback(self.pos.epoch - 1, record)
                    if any_flag(self.info, stop.requested) and self.pos.epoch < c.optim.epochs:
                        interrupted = True
                        break
            finally:
                del self.loader
        last = None if interrupted else self._save_last()
        if interrupted:
            self.say(
                f"stopped at epoch {self.pos.epoch + 1}, step {self.pos.step}; "
                f"resume with --resume (state in {self.out_dir})."
            )
        barrier(self.info)
        best_score = self.pos.best_score if math.isfinite(self.pos.best_score) else None
        return FitResult(
            out_dir=self.out_dir,
            checkpoint=self.best_path or last,
            last_checkpoint=last,
            best_score=best_score,
            best_epoch=self.pos.best_epoch if self.pos.best_epoch >= 0 else None,
            history=tuple(self.pos.history),
            epochs_done=self.pos.epoch,
            steps=self.pos.step,
            interrupted=interrupted,
        )

    def _batches(self, start: int) -> Iterator[dict[str, Any]]:
        self.sampler.set_epoch(self.pos.epoch, start=start * self.config.optim.batch_size)
        yield from self.loader

    def _train_epoch(self, stop: _StopRequest, step_callback: StepCallback | None) -> bool:
        """One epoch from the current position; False when a stop was requested."""
        c, o = self.config, self.config.optim
        self.net.train()
        epoch_start = time.perf_counter()
        t_wait = 0.0
        start_batch = self.pos.batches_in_epoch
        losses: list[float] = []
        level_losses = np.zeros(len(c.model.levels))
        seen = 0
        errors: list[str] = []
        bar = self._progress_bar(start_batch)
        t_ready = time.perf_counter()
        pending = 0
        batch_index = start_batch
        stopped = False
        for batch in self._batches(start_batch):
            t_wait += time.perf_counter() - t_ready
            batch_index += 1
            pending += 1
            last_in_group = pending == o.accumulate or batch_index == self.batches_per_epoch
            loss_value, per_level, n_valid = self._forward_backward(batch, last_in_group)
            errors.extend(e for e in batch["error"] if e)
            seen += n_valid
            if last_in_group:
                self._optimizer_step()
                pending = 0
                self.pos.batches_in_epoch = batch_index
                if step_callback is not None and step_callback(self.pos.step):
                    stop.requested = True
                if c.run.save_every_steps and self.pos.step % c.run.save_every_steps == 0:
                    self._save_state()
                if any_flag(self.info, stop.requested):
                    stopped = True
            if not math.isnan(loss_value):
                losses.append(loss_value)
                level_losses += per_level
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{np.mean(losses[-50:]) if losses else float('nan'):.4f}")
            elif self.pos.step % c.run.log_every == 0 and last_in_group:
                self.say(
                    f"  epoch {self.pos.epoch + 1} step {self.pos.step}/{self.total_steps} "
                    f"loss {np.mean(losses[-c.run.log_every :]) if losses else float('nan'):.4f} "
                    f"lr {self.optimizer.param_groups[0]['lr']:.3g}"
                )
            if last_in_group and self.pos.step % c.run.log_every == 0 and self.info.is_main:
                self.metrics_log.write(
                    {
                        "type": "step",
                        "epoch": self.pos.epoch + 1,
                        "step": self.pos.step,
                        "loss": float(np.mean(losses[-c.run.log_every :])) if losses else None,
                        "lr": self.optimizer.param_groups[0]["lr"],
                    }
                )
            if stopped:
                break
            t_ready = time.perf_counter()
        if bar is not None:
            bar.close()
        elapsed = time.perf_counter() - epoch_start
        self.pos.elapsed_s += elapsed
        if stopped and self.pos.batches_in_epoch < self.batches_per_epoch:
            self._save_state()
            return False
        total_seen = int(sum_scalar(self.info, seen))
        if total_seen == 0 and batch_index > start_batch:
            first = errors[0] if errors else "no readable image"
            raise DatasetError(
                f"no training image of {self.data.train.source} could be read (first: {first})."
            )
        self._epoch_stats = {
            "train_loss": mean_scalar(
                self.info, float(np.mean(losses)) if losses else float("nan")
            ),
            "level_losses": (level_losses / max(1, len(losses))).tolist(),
            "images": total_seen,
            "time_s": elapsed,
            "data_wait": t_wait / max(elapsed, 1e-9),
            "unreadable": [e for part in gather_objects(self.info, errors) for e in part],
        }
        return True

    def _forward_backward(
        self, batch: Mapping[str, Any], sync: bool
    ) -> tuple[float, np.ndarray, int]:
        o = self.config.optim
        valid = batch["valid"]
        n_valid = int(valid.sum())
        use = valid if n_valid >= 2 else torch.ones_like(valid)  # BN needs 2+; DDP needs a pass
        weight = 1.0 if n_valid >= 2 else 0.0
        x = normalise_batch(
            batch["image"][use].to(self.device, non_blocking=True),
            self.preprocessing.mean,
            self.preprocessing.std,
            self.config.model.in_chans,
        )
        if self.device.type == "cuda" and o.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = batch["target"][use].to(self.device, non_blocking=True)[:, self.known.to(self.device)]
        syn = batch["synthetic"][use].to(self.device, non_blocking=True)
        no_sync = (
            self.net.no_sync()
            if isinstance(self.net, nn.parallel.DistributedDataParallel) and not sync
            else contextlib.nullcontext()
        )
        with no_sync:
            with torch.autocast(
                self.device.type,
                dtype=self.amp_dtype or torch.float32,
                enabled=self.amp_dtype is not None,
            ):
                out = self.net(x, syn)
            known = self.known.to(self.device)
            per_level = torch.stack([self._loss([z.float()[:, known]], y) for z in out])
            loss = per_level.sum() * weight / o.accumulate
            if self.scaler is not None:
                self.scaler.scale(loss).backward()
            else:
                loss.backward()
        if weight == 0.0:
            return float("nan"), np.zeros(len(out)), 0
        return float(per_level.sum().item()), per_level.detach().cpu().numpy(), n_valid

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
        set_lr(
            self.optimizer, o.lr * lr_factor(self.pos.step, self.total_steps, self.warmup_steps, o)
        )
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model)
        self.pos.step += 1

    # -- end of epoch --------------------------------------------------------------------------
    def _end_epoch(self) -> dict[str, Any]:
        c = self.config
        epoch = self.pos.epoch
        stats = self._epoch_stats
        record: dict[str, Any] = {
            "type": "epoch",
            "epoch": epoch + 1,
            "step": self.pos.step,
            "train_loss": stats["train_loss"],
            **{
                f"loss_level{lv}": float(v)
                for lv, v in zip(c.model.levels, stats["level_losses"], strict=True)
            },
            "lr": self.optimizer.param_groups[0]["lr"],
            "epoch_time_s": round(stats["time_s"], 2),
            "train_images_seen": stats["images"],
            "train_images_per_s": round(stats["images"] / max(stats["time_s"], 1e-9), 2),
            "data_wait_fraction": round(stats["data_wait"], 3),
            "unreadable_images": len(stats["unreadable"]),
        }
        if stats["unreadable"]:
            first = stats["unreadable"][0]
            self.say(
                f"{len(stats['unreadable'])} training images could not be read and were skipped "
                f"(first: {first})."
            )
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
        self.pos.epoch += 1
        self.pos.batches_in_epoch = 0
        score = record.get("val_mAP")
        improved = score is not None and math.isfinite(score) and score > self.pos.best_score
        no_val = self.data.val is None
        if improved:
            self.pos.best_score = float(score)  # type: ignore[arg-type]
            self.pos.best_epoch = epoch + 1
        record["best"] = bool(improved)
        self.pos.history.append(json_safe(record))
        if self.info.is_main:
            self.metrics_log.write(record)
            self.metrics_log.write_epochs(self.pos.history)
            if improved or no_val:
                self.best_thresholds = thresholds
                self.best_path = self._save_checkpoint(
                    self.out_dir / c.run.name,
                    report,
                    thresholds,
                    kind="best" if improved else "last",
                )
        self._save_state()
        self.say(self._epoch_line(record))
        return record

    def _validate(self) -> tuple[dict[str, Any], list[float], float]:
        c = self.config
        t0 = time.perf_counter()
        assert self.data.val is not None
        model = self.ema.module if self.ema is not None else self.model
        preds = predict_records(
            model,
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
        p = preds.probabilities[ok][:, known]
        tuned = f1_optimal_thresholds(y, p)
        report = multilabel_report(
            y, p, tuned, labels=[lab for lab, k in zip(self.labels, known, strict=True) if k]
        )
        if preds.errors:
            self.say(
                f"{len(preds.errors)} validation images could not be read and were left out "
                f"(first: {preds.errors[0]})."
            )
        return report, known_thresholds(tuned, known), time.perf_counter() - t0

    def _epoch_line(self, r: Mapping[str, Any]) -> str:
        line = (
            f"epoch {r['epoch']}/{self.config.optim.epochs}  loss {r['train_loss']:.4f}  "
            f"{r['train_images_per_s']:.1f} img/s  time {r['epoch_time_s']:.1f} s "
            f"(data wait {100 * r['data_wait_fraction']:.0f}%)"
        )
        if "val_mAP" in r:
            line += (
                f"  val mAP {100 * r['val_mAP']:.2f} AUC {100 * r['val_AUC']:.2f} "
                f"F1 {100 * r['val_F1']:.2f}{' *' if r.get('best') else ''}"
            )
        return line

    def _progress_bar(self, start: int) -> Any:
        if not (self.config.run.progress and self.info.is_main):
            return None
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return None
        if not sys.stderr.isatty():
            return None
        return tqdm(
            total=self.batches_per_epoch,
            initial=start,
            desc=f"epoch {self.pos.epoch + 1}/{self.config.optim.epochs}",
            unit="batch",
            leave=False,
            file=sys.stderr,
        )

    # -- files ---------------------------------------------------------------------------------
    def _weights_model(self) -> FPSM:
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
        train = self.data.train
        provenance = {
            "trainer": "fpsm_core.training.fit",
            "kind": kind,
            "epoch": self.pos.epoch,
            "step": self.pos.step,
            "weights": "ema" if self.ema is not None else "raw",
            "config": c.to_dict(),
            "world_size": self.info.world_size,
            "train_images": len(train),
            "val_images": len(self.data.val) if self.data.val is not None else 0,
            "train_positives": {
                lab: int(n) for lab, n in zip(self.labels, train.positives(), strict=True)
            },
            "known_labels": [lab for lab, k in zip(self.labels, self.data.known, strict=True) if k],
            "thresholds": "F1-optimal on the validation set" if thresholds else "default 0.5",
            "init_from": init_from_provenance(c.model.init_from),
        }
        if report is not None:
            provenance["val_metrics"] = {
                k: report[k] for k in ("mAP", "AUC", "F1", "recall", "precision", "n_samples")
            }
            provenance["val_per_class"] = report["per_class"]
            provenance["val_excluded"] = report["excluded"]
        return save_checkpoint(
            self._weights_model(),
            stem,
            name=c.run.name,
            preprocessing=self.preprocessing,
            labels=self.labels,
            thresholds=thresholds,
            provenance=json_safe(provenance),
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
                position=self.pos,
                model=self.model.state_dict(),
                ema=self.ema.module.state_dict() if self.ema is not None else None,
                optimizer=self.optimizer.state_dict(),
                scaler=self.scaler.state_dict() if self.scaler is not None else None,
                rngs=rngs,
                config=self.config.to_dict(),
            )
        barrier(self.info)


class _Levels(nn.Module):
    """The FPSM seen through ``forward_levels``, so that DDP's hooks see the training pass."""

    def __init__(self, model: FPSM) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, synthetic: torch.Tensor) -> list[torch.Tensor]:
        return self.model.forward_levels(x, synthetic)


def check_config_for_fit(config: TrainConfig) -> None:
    """Fail early on a config that cannot train (used by the CLI before spawning work)."""
    if not config.data.train_csv:
        raise ConfigError("data.train_csv is not set; name the training label table.")

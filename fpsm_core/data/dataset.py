"""The torch side of the data: a radiograph ``Dataset``, a resumable sampler and fast loaders.

:class:`RadiographDataset` yields the single-channel [0, 1] square (not yet normalised: channel
replication and mean/std happen on the device in :func:`normalise_batch`, which moves a third of
the bytes through the loader and equals :func:`fpsm_core.preprocess.normalise` exactly).

:class:`EpochSampler` decides every epoch's order from ``(seed, epoch)`` alone, can start in the
middle of an epoch (exact resume), shards across DDP ranks and draws class-balanced samples when
given weights. It yields ``(index, epoch, position)`` keys, from which the dataset derives each
sample's augmentation seed, so augmentation is reproducible whatever the number of workers.

A file that cannot be decoded does not stop training: its item comes back with ``valid=False`` and
the error, the trainer drops it from the batch and reports all such files once per epoch.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fpsm_core.data.records import RecordSet
from fpsm_core.data.transforms import AugmentConfig, ImageCache, augment, load_square

SampleKey = tuple[int, int, int]


class RadiographDataset(Dataset[dict[str, Any]]):
    """Images of a :class:`RecordSet` as training or evaluation items.

    Args:
        records: the images and targets.
        input_size: side of the square model input.
        resize: ``"letterbox"`` or ``"stretch"`` (the checkpoint's preprocessing policy).
        augment_config: augmentation (``enabled=False`` for evaluation).
        cache_dir: folder for cached resized copies (None: decode every time).
        seed: base seed of the per-sample augmentation.

    Items are dicts: ``image`` (1, S, S) float32 in [0, 1], ``target`` (C,) float32,
    ``synthetic`` int64, ``valid`` bool, ``index`` int64 and ``error`` (str, empty when valid).
    """

    def __init__(
        self,
        records: RecordSet,
        input_size: int,
        resize: str = "letterbox",
        augment_config: AugmentConfig | None = None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ) -> None:
        self.records = records
        self.input_size = int(input_size)
        self.resize = resize
        self.augment_config = augment_config or AugmentConfig(enabled=False)
        self.cache = ImageCache(cache_dir) if cache_dir else None
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: int | SampleKey) -> dict[str, Any]:
        index, epoch, position = (int(key), 0, 0) if isinstance(key, (int, np.integer)) else key
        path = self.records.paths[index]
        error = ""
        try:
            square = load_square(path, self.input_size, self.resize, self.cache)
        except (ValueError, OSError, cv2.error) as exc:  # ImageLoadError is a ValueError
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if path not in error:
                error = f"{path}: {error}"
            square = np.zeros((self.input_size, self.input_size), dtype=np.float32)
        if self.augment_config.enabled and not error:
            rng = np.random.default_rng([self.seed, epoch, position, index])
            square = augment(square, rng, self.augment_config)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(square, dtype=np.float32)[None]),
            "target": torch.from_numpy(self.records.targets[index]),
            "synthetic": torch.tensor(int(self.records.synthetic[index]), dtype=torch.int64),
            "valid": torch.tensor(not error),
            "index": torch.tensor(index, dtype=torch.int64),
            "error": error,
        }


class EpochSampler(Sampler[SampleKey]):
    """Deterministic per-epoch order, sharded over ranks, resumable mid-epoch.

    Args:
        n: dataset size.
        shuffle: permute each epoch (False: dataset order, for evaluation).
        seed: base seed; epoch ``e`` uses ``(seed, e)``.
        weights: per-sample draw weights for class-balanced sampling (with replacement).
        num_samples: draws per epoch over all ranks (default ``n``).
        rank, world_size: DDP shard; every rank gets the same number of keys (the list is padded
            by wrapping around).
    """

    def __init__(
        self,
        n: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        weights: np.ndarray | None = None,
        num_samples: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.n = int(n)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.weights = None if weights is None else np.asarray(weights, dtype=np.float64)
        self.num_samples = int(num_samples) if num_samples is not None else self.n
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch and skip its first ``start`` keys of this rank (for resume)."""
        self.epoch = int(epoch)
        self.start = int(start)

    def per_rank(self) -> int:
        return math.ceil(self.num_samples / self.world_size)

    def order(self) -> np.ndarray:
        """All ranks' indices of the current epoch, before sharding."""
        rng = np.random.default_rng([self.seed, self.epoch])
        if self.weights is not None:
            p = self.weights / self.weights.sum()
            return rng.choice(self.n, size=self.num_samples, replace=True, p=p)
        if self.shuffle:
            return rng.permutation(self.n)[: self.num_samples]
        return np.arange(self.n)[: self.num_samples]

    def __iter__(self) -> Iterator[SampleKey]:
        order = self.order()
        total = self.per_rank() * self.world_size
        if total > order.size:
            order = np.resize(order, total)  # wrap around so every rank gets as many
        positions = np.arange(self.rank, total, self.world_size)
        for position in positions[self.start :]:
            yield int(order[position]), self.epoch, int(position)

    def __len__(self) -> int:
        return max(0, self.per_rank() - self.start)


def class_balanced_weights(
    targets: np.ndarray, known: np.ndarray | None = None, power: float = 0.5
) -> np.ndarray:
    """Per-image draw weights that lift rare classes (repeat-factor sampling).

    An image weighs ``max over its positive classes of (N / count_c) ** power``, an image without
    positives weighs 1; ``power=0.5`` is the square-root balancing LVIS uses, ``1`` equalises
    classes fully (and overfits the tail sooner).
    """
    pos = np.asarray(targets) >= 0.5
    if known is not None:
        pos = pos & np.asarray(known, dtype=bool)[None]
    counts = np.maximum(pos.sum(axis=0), 1)
    factor = (pos.shape[0] / counts) ** power
    per_image = np.where(pos, factor[None], 0.0).max(axis=1)
    return np.maximum(per_image, 1.0)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)
    # Ctrl-C is the trainer's to handle (finish the step, save, stop); workers must outlive it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def collate(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Stack tensors; keep ``error`` as a list of strings."""
    out: dict[str, Any] = {
        key: torch.stack([item[key] for item in items]) for key in items[0] if key != "error"
    }
    out["error"] = [item["error"] for item in items]
    return out


def make_loader(
    dataset: RadiographDataset,
    batch_size: int,
    sampler: Sampler[Any],
    *,
    num_workers: int = 4,
    pin_memory: bool = False,
    drop_last: bool = False,
    prefetch_factor: int = 4,
    seed: int = 0,
) -> DataLoader[dict[str, Any]]:
    """A DataLoader tuned to keep a GPU busy: persistent workers, prefetching, single-threaded
    OpenCV per worker, pinned memory on CUDA.

    The loader draws its worker seeds from its own generator, never from torch's global one, so
    creating a loader does not shift the random stream that dropout uses (exact resume needs that).
    """
    kwargs: dict[str, Any] = {}
    if num_workers > 0:
        import cv2

        # The loader's parallelism is its workers. OpenCV's own thread pool must be idle before
        # they fork: a child that inherits a pool mutex held by a parent thread hangs forever in
        # its first OpenCV call. One thread in this (the training) process avoids both problems.
        cv2.setNumThreads(1)
        kwargs.update(
            persistent_workers=True, prefetch_factor=prefetch_factor, worker_init_fn=_worker_init
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=drop_last,
        collate_fn=collate,
        generator=torch.Generator().manual_seed(seed),
        **kwargs,
    )


def normalise_batch(
    images: torch.Tensor, mean: Sequence[float], std: Sequence[float], channels: int
) -> torch.Tensor:
    """(B, 1, S, S) [0, 1] to (B, channels, S, S) normalised, as ``preprocess.normalise`` does."""
    m = torch.as_tensor(np.resize(np.asarray(mean, dtype=np.float32), channels)).to(images.device)
    s = torch.as_tensor(np.resize(np.asarray(std, dtype=np.float32), channels)).to(images.device)
    return (images.expand(-1, channels, -1, -1) - m[None, :, None, None]) / s[None, :, None, None]


def warm_cache(
    records: RecordSet,
    input_size: int,
    resize: str,
    cache_dir: str | Path,
    *,
    num_workers: int = 0,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[int, list[str]]:
    """Decode every image once into the resized-copy cache, with many workers.

    Training's first epoch fills the cache anyway, but at the pace of its few loader workers per
    GPU; run this beforehand on all CPU cores so that every epoch reads small cached copies.

    Returns:
        (images cached, errors of the images that could not be read).
    """
    dataset = RadiographDataset(records, input_size, resize, cache_dir=cache_dir)
    loader = make_loader(
        dataset, batch_size, EpochSampler(len(records), shuffle=False), num_workers=num_workers
    )
    done = 0
    errors: list[str] = []
    for batch in loader:
        errors.extend(e for e in batch["error"] if e)
        done += len(batch["error"])
        if progress is not None:
            progress(done, len(records))
    return done - len(errors), errors

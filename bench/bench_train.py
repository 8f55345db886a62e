"""Training throughput: FPSM 4+3+2 against the same timm backbone with its plain classifier, and
DataLoader images/s per worker at the training size, side by side in one run.

(a) Model: full training steps (forward, loss, backward, AdamW step; AMP and channels_last on CUDA)
on random tensors, so data loading does not enter. FPSM sums a per-level loss over levels 4+3+2;
the plain model is ``timm.create_model(backbone, num_classes=26)`` with one BCE loss. Steps of the
two alternate one by one and the median step times are compared (robust to other load on the
machine); the target is FPSM/plain >= 0.95 (the pyramid heads are a pooling and a linear layer per
level).

(b) Data: ``RadiographDataset`` in training mode (decode with the inference windowing, letterbox to
the input size, augment) over JPEGs of MIMIC-CXR-JPG's typical size, through ``make_loader`` with
0, 1, 2... workers, first decoding every file, then from the resized-copy cache.

    python bench/bench_train.py [--backbone tresnet_m] [--size 512] [--batch 16] [--steps 20]
        [--workers 0 1 2] [--images 48] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import timm  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fpsm_core.data import (  # noqa: E402
    AugmentConfig,
    EpochSampler,
    RadiographDataset,
    make_loader,
    read_generic,
)
from fpsm_core.device import pick_device  # noqa: E402
from fpsm_core.model import create_fpsm  # noqa: E402
from fpsm_core.training.losses import per_level_loss  # noqa: E402


def _step_seconds(step, x, y, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    step(x, y)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def bench_models(args: argparse.Namespace, device: torch.device) -> tuple[float, float]:
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    fpsm = create_fpsm(args.backbone, levels=(4, 3, 2)).to(device)
    plain = timm.create_model(args.backbone, pretrained=False, num_classes=26).to(device)
    if cuda:
        fpsm.to(memory_format=torch.channels_last)
        plain.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    if cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    y = (torch.rand(args.batch, 26, device=device) < 0.1).float()

    def stepper(model, loss_fn):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

        def step(x, y):
            with torch.autocast(device.type, dtype=dtype, enabled=cuda):
                loss = loss_fn(model, x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    steps = {
        "fpsm": stepper(fpsm, lambda m, x, y: per_level_loss(m.forward_levels(x), y, loss="bce")),
        "plain": stepper(
            plain, lambda m, x, y: F.binary_cross_entropy_with_logits(m(x).float(), y)
        ),
    }
    for step in steps.values():  # warm-up (cuDNN autotuning, allocator)
        for _ in range(2):
            step(x, y)
    # alternate single steps, so that load from other processes hits both models alike
    seconds: dict[str, list[float]] = {"fpsm": [], "plain": []}
    for _ in range(args.steps):
        for name in ("fpsm", "plain"):
            seconds[name].append(_step_seconds(steps[name], x, y, device))
    return tuple(args.batch / statistics.median(seconds[n]) for n in ("fpsm", "plain"))  # type: ignore[return-value]


def _make_jpegs(folder: Path, n: int, h: int, w: int) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 120 + 60 * np.sin(xx / 97.0) * np.cos(yy / 131.0)
    rows = []
    for i in range(n):
        img = np.clip(base + rng.normal(0, 12, (h, w)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append(f"{i:04d}.jpg,{i % 2}")
    (folder / "labels.csv").write_text("path,Cardiomegaly\n" + "\n".join(rows) + "\n")
    return folder / "labels.csv"


def _loader_rate(records, size: int, workers: int, batch: int, cache: Path | None) -> float:
    """Images/s of the second epoch: the workers are up (persistent), and with a cache the first
    epoch has filled it."""
    ds = RadiographDataset(records, size, augment_config=AugmentConfig(), cache_dir=cache)
    sampler = EpochSampler(len(records), seed=0)
    loader = make_loader(ds, batch, sampler, num_workers=workers)
    for _ in loader:
        pass
    sampler.set_epoch(1)
    t0 = time.perf_counter()
    n = sum(items["image"].shape[0] for items in loader)
    rate = n / (time.perf_counter() - t0)
    del loader
    return rate


def bench_loader(args: argparse.Namespace) -> list[tuple[int, float, float]]:
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        csv_path = _make_jpegs(folder, args.images, args.jpeg_h, args.jpeg_w)
        records = read_generic(csv_path)
        for workers in args.workers:
            cache = folder / f"cache_{workers}"
            cold = _loader_rate(records, args.size, workers, args.loader_batch, None)
            warm = _loader_rate(records, args.size, workers, args.loader_batch, cache)
            out.append((workers, cold, warm))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backbone", default="tresnet_m")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=20, help="measured steps per model (alternating)")
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--images", type=int, default=48, help="JPEGs for the loader benchmark")
    p.add_argument("--jpeg-h", type=int, default=3056)
    p.add_argument("--jpeg-w", type=int, default=2544)
    p.add_argument("--loader-batch", type=int, default=8)
    p.add_argument("--skip-model", action="store_true")
    p.add_argument("--skip-loader", action="store_true")
    args = p.parse_args()
    device = pick_device(args.device)
    print(
        f"# bench_train: {args.backbone} at {args.size} px on {device} "
        f"({torch.get_num_threads()} CPU threads, torch {torch.__version__})"
    )
    if not args.skip_model:
        fpsm, plain = bench_models(args, device)
        print(
            f"train step, batch {args.batch}: FPSM 4+3+2 {fpsm:.2f} img/s | plain {plain:.2f} img/s"
            f" | ratio {fpsm / plain:.3f} (target >= 0.95)"
        )
    if not args.skip_loader:
        print(f"DataLoader, {args.jpeg_w}x{args.jpeg_h} JPEG -> {args.size} px, augmented:")
        print("| workers | decode img/s | per worker | cached img/s | per worker |")
        print("|---|---|---|---|---|")
        for workers, cold, warm in bench_loader(args):
            per = max(workers, 1)
            print(f"| {workers} | {cold:.1f} | {cold / per:.1f} | {warm:.1f} | {warm / per:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

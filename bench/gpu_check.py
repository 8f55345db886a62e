"""GPU readiness check: one prepared script for the first CUDA machine the project is lent.

Runs in a few minutes and prints one markdown table (paste it into ``docs/benchmarks.md`` with the
device name it prints). It checks what has never run on CUDA here:

1. fp16 autocast + channels_last probabilities against float32 on the same weights (max abs diff);
2. the closed-form per-level CAMs on CUDA against the CPU (max abs diff of the normalised maps);
3. the inference service's images/s at batch 1, 16 and 64 beside the bare ensemble forward rate at
   the same batch (TResNet-M FPSM 4+3+2 at 512 px by default), with and without CAMs;
4. one AMP training step (per-level loss, GradScaler, AdamW): finite loss, step time;
5. a 1-GPU NCCL ``torchrun`` smoke test (all_reduce through the NCCL backend).

Random-init weights (nothing is downloaded). Without CUDA it refuses unless ``--allow-cpu`` is
given, which runs the same code on the CPU at a small size so the script itself stays tested:

    python bench/gpu_check.py                                  # on the CUDA machine
    python bench/gpu_check.py --allow-cpu --backbone mobilenetv3_large_100 --size 128 --batches 1,4
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fpsm_core.explain import raw_level_cams  # noqa: E402
from fpsm_core.model import Preprocessing, create_fpsm, load_model, save_checkpoint, write_ensemble  # noqa: E402

Row = tuple[str, str, str]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _rate(fn: Callable[[], None], images: int, device: torch.device, repeats: int) -> float:
    """Images per second of ``fn`` (one warm-up call, then the median of ``repeats``)."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return images / float(np.median(times))


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    flat = maps.flatten(2)
    lo = flat.min(dim=2, keepdim=True).values
    hi = flat.max(dim=2, keepdim=True).values
    return ((flat - lo) / (hi - lo).clamp_min(1e-7)).view_as(maps)


def check_precision(args: argparse.Namespace, device: torch.device) -> list[Row]:
    torch.manual_seed(0)
    model = create_fpsm(args.backbone, levels=(4, 3, 2), aggregation="sum").eval()
    x = torch.randn(4, 3, args.size, args.size)
    with torch.inference_mode():
        ref_out = model.forward_all(x)
        ref_probs = torch.sigmoid(ref_out.logits.float())
        ref_cams = [_normalise(m) for m in raw_level_cams(model, ref_out)]
    model = model.to(device)
    xd = x.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
        xd = xd.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        out32 = model.forward_all(xd)
        cams = [_normalise(m).cpu() for m in raw_level_cams(model, out32)]
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            out16 = model.forward_all(xd)
        probs16 = torch.sigmoid(out16.logits.float()).cpu()
        probs32 = torch.sigmoid(out32.logits.float()).cpu()
    fp16_diff = float((probs16 - ref_probs).abs().max())
    dev_diff = float((probs32 - ref_probs).abs().max())
    cam_diff = max(float((a - b).abs().max()) for a, b in zip(cams, ref_cams, strict=True))
    return [
        (
            "fp16 + channels_last vs fp32 CPU probabilities",
            f"{fp16_diff:.2e}",
            "max abs diff, 4 images",
        ),
        (f"fp32 {device.type} vs fp32 CPU probabilities", f"{dev_diff:.2e}", "max abs diff"),
        (
            f"closed-form CAMs {device.type} vs CPU",
            f"{cam_diff:.2e}",
            "max abs diff, maps in [0, 1]",
        ),
    ]


class _Film:
    """The two attributes the inference service reads from a loaded image."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels
        self.window = (float(pixels.mean()), float(pixels.max() - pixels.min()))
        self.path = None


def check_throughput(args: argparse.Namespace, device: torch.device) -> list[Row]:
    from fpsm_core.inference import InferenceService

    rows: list[Row] = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        names = []
        for i in range(3):
            torch.manual_seed(i)
            model = create_fpsm(args.backbone, levels=(4, 3, 2), aggregation="sum")
            name = f"member{i}"
            save_checkpoint(
                model,
                Path(tmp) / name,
                preprocessing=Preprocessing(input_size=args.size),
                untrained=True,
            )
            names.append(name)
        write_ensemble(tmp, names, name="gpu-check")
        ensemble = load_model(tmp)
        for batch in args.batches:
            service = InferenceService(ensemble, device=str(device), batch_size=batch)
            films = [
                _Film(rng.integers(0, 4096, (args.film, args.film)).astype(np.uint16))
                for _ in range(batch)
            ]
            models = [m.model for m in service.ensemble.members]
            x = torch.randn(batch, 3, args.size, args.size, device=device)
            if device.type == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)

            def bare(models: list[Any] = models, x: torch.Tensor = x) -> None:
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, torch.float16, enabled=device.type == "cuda"),
                ):
                    for model in models:
                        torch.sigmoid(model(x)).cpu()

            def service_rate(cams: bool, service: Any = service, films: list[Any] = films) -> None:
                service.predict(films, cams=cams)

            r_bare = _rate(bare, batch, device, args.repeats)
            r_plain = _rate(lambda: service_rate(False), batch, device, args.repeats)
            r_cams = _rate(lambda: service_rate(True), batch, device, args.repeats)
            rows.append(
                (
                    f"ensemble images/s, batch {batch}",
                    f"{r_plain:.1f}",
                    f"bare forwards {r_bare:.1f}/s (ratio {r_plain / r_bare:.2f}); "
                    f"with CAMs {r_cams:.1f}/s (CAM overhead {r_plain / r_cams - 1:+.1%})",
                )
            )
    return rows


def check_training_step(args: argparse.Namespace, device: torch.device) -> list[Row]:
    from fpsm_core.training.losses import per_level_loss

    torch.manual_seed(0)
    model = create_fpsm(args.backbone, levels=(4, 3, 2), aggregation="sum").to(device).train()
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    batch = min(16, max(args.batches))
    x = torch.randn(batch, 3, args.size, args.size, device=device)
    y = (torch.rand(batch, model.num_classes, device=device) < 0.1).float()
    losses = []

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.float16, enabled=cuda):
            loss = per_level_loss(model.forward_levels(x), y, "asl")
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        losses.append(float(loss.detach()))

    rate = _rate(step, batch, device, max(2, args.repeats // 2))
    finite = all(np.isfinite(losses))
    return [
        (
            f"AMP training step, batch {batch}",
            f"{rate:.1f} img/s",
            f"loss {losses[0]:.4f} -> {losses[-1]:.4f}, finite: {finite}",
        )
    ]


_NCCL_SCRIPT = textwrap.dedent(
    """
    import os, torch, torch.distributed as dist
    backend = os.environ["GPU_CHECK_BACKEND"]
    dist.init_process_group(backend)
    rank = dist.get_rank()
    device = torch.device("cuda", rank) if backend == "nccl" else torch.device("cpu")
    t = torch.full((4,), float(rank + 1), device=device)
    dist.all_reduce(t)
    expected = sum(range(1, dist.get_world_size() + 1))
    assert torch.allclose(t.cpu(), torch.full((4,), float(expected))), t
    print(f"rank {rank}: all_reduce ok on {backend}")
    dist.destroy_process_group()
    """
)


def check_torchrun(device: torch.device) -> list[Row]:
    backend = "nccl" if device.type == "cuda" else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "smoke.py"
        script.write_text(_NCCL_SCRIPT)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        cmd += ["--nproc_per_node", "1", str(script)]
        env = {**os.environ, "GPU_CHECK_BACKEND": backend}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
        seconds = time.perf_counter() - t0
    ok = proc.returncode == 0 and "all_reduce ok" in proc.stdout
    detail = f"{seconds:.1f} s" if ok else (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return [(f"torchrun 1 process, {backend} all_reduce", "pass" if ok else "FAIL", detail)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tresnet_m", help="timm architecture name")
    parser.add_argument("--size", type=int, default=512, help="model input side in pixels")
    parser.add_argument("--film", type=int, default=2048, help="side of the synthetic films")
    parser.add_argument(
        "--batches", default="1,16,64", help="comma-separated batch sizes for throughput"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per figure")
    parser.add_argument("--allow-cpu", action="store_true", help="run on the CPU (dry run)")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",") if b.strip()]
    if torch.cuda.is_available():
        device = torch.device("cuda")
        name = torch.cuda.get_device_name(0)
    elif args.allow_cpu:
        device = torch.device("cpu")
        name = f"CPU, {torch.get_num_threads()} threads (dry run)"
    else:
        print("gpu_check: no CUDA device is available; use --allow-cpu for a dry run.")
        return 2
    print(f"## GPU check: {name}")
    print(
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, {args.backbone} FPSM 4+3+2, "
        f"{args.size} px, films {args.film}^2, {time.strftime('%Y-%m-%d')}\n"
    )
    rows: list[Row] = []
    for check in (check_precision, check_throughput, check_training_step):
        try:
            rows += check(args, device)
        except Exception as exc:  # a check that breaks must not hide the others' figures
            rows.append((check.__name__, "FAIL", f"{type(exc).__name__}: {exc}"[:200]))
    rows += check_torchrun(device)
    print("| check | value | detail |")
    print("| --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0 if all(r[1] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())

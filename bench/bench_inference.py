"""Inference service overhead: bare forward passes vs end-to-end ``Result`` per image.

Side by side in one run, on the same random-init models: (a) one FPSM forward, (b) the forwards of a
3-member ensemble, (c) ``InferenceService.predict`` on a loaded radiograph (preprocessing, forwards,
ranking, result assembly), (d) the same from a DICOM file on disk (decoding included). Prints the
ratio (c)/(b); the target is at most 1.10.

    python bench/bench_inference.py [--backbone tresnet_m] [--size 512] [--repeats 5] [--device auto]
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

import torch  # noqa: E402

from fpsm_core.device import pick_device  # noqa: E402
from fpsm_core.inference import InferenceService  # noqa: E402
from fpsm_core.model import Preprocessing, create_fpsm, load_model, save_checkpoint, write_ensemble  # noqa: E402


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="tresnet_m")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--image", default=None, help="a DICOM to use (default: pydicom's RG1_UNCR chest CR)"
    )
    args = parser.parse_args()
    device = pick_device(args.device)
    cuda = device.type == "cuda"

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        names = []
        for i in range(3):
            torch.manual_seed(i)
            m = create_fpsm(args.backbone, levels=(4, 3, 2))
            save_checkpoint(m, d / f"m{i}", preprocessing=Preprocessing(input_size=args.size))
            names.append(f"m{i}.json")
        write_ensemble(d, names, name="bench")
        ensemble = load_model(d)
        service = InferenceService(ensemble, device=args.device, batch_size=1)

        if args.image:
            image_path = Path(args.image)
        else:
            from pydicom.data import get_testdata_file

            image_path = Path(get_testdata_file("RG1_UNCR.dcm"))
        from fpsm_core.io import load_image

        image = load_image(image_path)
        x = torch.randn(1, 3, args.size, args.size, device=device)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        models = [mem.model for mem in service.ensemble.members]

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize()

        def one_forward() -> None:
            with torch.inference_mode(), torch.autocast(device.type, torch.float16, enabled=cuda):
                models[0](x)
            sync()

        def ensemble_forward() -> None:
            with torch.inference_mode(), torch.autocast(device.type, torch.float16, enabled=cuda):
                for model in models:
                    torch.sigmoid(model(x)).cpu()
            sync()

        def end_to_end() -> None:
            service.predict([image])

        def from_file() -> None:
            list(service.predict_paths([image_path]))

        for fn in (one_forward, ensemble_forward, end_to_end, from_file):
            fn()  # warm-up (allocations, cuDNN autotuning)
        rows = {name: [] for name in ("forward", "ensemble", "result", "file")}
        for _ in range(args.repeats):  # interleaved so drift hits every column alike
            rows["forward"].append(_median_ms(one_forward, 1))
            rows["ensemble"].append(_median_ms(ensemble_forward, 1))
            rows["result"].append(_median_ms(end_to_end, 1))
            rows["file"].append(_median_ms(from_file, 1))
        med = {k: statistics.median(v) for k, v in rows.items()}

    name = torch.cuda.get_device_name() if cuda else f"CPU x{torch.get_num_threads()} threads"
    print(f"FPSM {args.backbone} levels 4+3+2, {args.size} px, batch 1, device {device} ({name})")
    print(
        f"image: {image_path.name} {image.pixels.shape[1]}x{image.pixels.shape[0]}, repeats {args.repeats} (median ms)"
    )
    print(f"  one forward                       {med['forward']:9.1f} ms")
    print(f"  3-member ensemble forwards        {med['ensemble']:9.1f} ms")
    print(f"  end-to-end Result (loaded image)  {med['result']:9.1f} ms")
    print(f"  end-to-end Result (from file)     {med['file']:9.1f} ms")
    ratio = med["result"] / med["ensemble"]
    print(
        f"ratio end-to-end / bare ensemble forwards: {ratio:.3f} (target <= 1.10: "
        f"{'met' if ratio <= 1.10 else 'NOT met'})"
    )
    print(
        f"ratio from-file / bare ensemble forwards:  {med['file'] / med['ensemble']:.3f} (decode included)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

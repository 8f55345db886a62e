"""Trust overhead: gate + calibration (+ input checks) per image vs the bare ensemble forward.

Side by side in one run, on the bundled demo ensemble (which carries a gate and a calibration):
(a) the bare forwards of the members (``forward_all``, sigmoid of the logits), (b) the same plus
pooling the level maps, the members' gate scores, the ensemble verdict and the Platt scaling,
(c) the model-free input checks on a loaded DICOM (header re-read + pixel checks). Prints the
ratio (b)/(a) (target at most 1.05) and (a + c)/(a).

    python bench/bench_trust.py [--batch 1] [--repeats 15] [--device cpu] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fpsm_core.io import load_image  # noqa: E402
from fpsm_core.model import load_model  # noqa: E402
from fpsm_core.preprocess import prepare  # noqa: E402
from fpsm_core.resources import resources_dir  # noqa: E402
from fpsm_core.trust.calibration import sigmoid  # noqa: E402
from fpsm_core.trust.checks import check_image  # noqa: E402
from fpsm_core.trust.features import pooled  # noqa: E402
from fpsm_core.trust.runtime import load_ensemble_trust  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    demo = resources_dir() / "models" / "demo"
    ens = load_model(demo, device=device)
    trust = load_ensemble_trust(ens)
    if not (trust.has_gate and trust.calibrated):
        print(f"{demo} has no gate or calibration; run fpsm calibrate first.", file=sys.stderr)
        return 2
    sample = resources_dir() / "samples" / "case2_Nodule.dcm"
    image = load_image(sample)
    x = np.stack([prepare(image.pixels, image.window, ens.members[0].meta.preprocessing, 3)[0]])
    batch = torch.from_numpy(np.repeat(x, args.batch, axis=0)).to(device)

    def bare() -> None:
        with torch.inference_mode():
            for member in ens.members:
                out = member.model.forward_all(batch)
                sigmoid(out.logits.float().cpu().numpy())

    def gated() -> None:
        scores = []
        with torch.inference_mode():
            for m, member in enumerate(ens.members):
                out = member.model.forward_all(batch)
                trust.member_probabilities(m, out.logits.float().cpu().numpy())
                scores.append(trust.member_score(m, pooled(out.features)))
        for b in range(args.batch):
            trust.verdict([float(s[b]) for s in scores if s is not None], ())

    def checks() -> None:
        check_image(image)

    def trust_only() -> None:
        with torch.inference_mode():
            outs = [member.model.forward_all(batch) for member in ens.members]
        t0 = time.perf_counter()
        for m, out in enumerate(outs):
            trust.member_probabilities(m, out.logits.float().cpu().numpy())
            trust.member_score(m, pooled(out.features))
        extra.append((time.perf_counter() - t0) * 1e3)

    for fn in (bare, gated, checks):  # warm-up
        fn()
    # Interleaved, so that load from other processes hits both sides alike.
    t_bare, t_gated, t_checks, extra = [], [], [], []
    for _ in range(args.repeats):
        for fn, sink in ((bare, t_bare), (gated, t_gated), (checks, t_checks)):
            t0 = time.perf_counter()
            fn()
            sink.append((time.perf_counter() - t0) * 1e3)
        trust_only()
    b, g, c, e = (statistics.median(v) for v in (t_bare, t_gated, t_checks, extra))
    n = args.batch
    print(f"demo ensemble, {len(ens.members)} members, {ens.members[0].meta.preprocessing.input_size} px, "
          f"batch {n}, {device}, torch threads {torch.get_num_threads()}, {args.repeats} repeats")  # fmt: skip
    print(f"  bare forwards            {b / n:8.2f} ms/image")
    print(f"  forwards + gate + Platt  {g / n:8.2f} ms/image   ratio {g / b:.3f}")
    print(f"  gate + Platt alone       {e / n:8.2f} ms/image   = {e / b:.2%} of the bare forwards")
    print(f"  input checks (DICOM)     {c:8.2f} ms/image   (bare + checks) / bare {(b / n + c) / (b / n):.3f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

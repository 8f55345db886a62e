"""Write the bundled sample study: a few simulated chest DICOMs with known findings.

The viewer opens it when started without a path; the README and docs screenshots use it. Each case
forces a set of findings (simulated, with exact ground truth in ``ground_truth.csv``) so the
sample shows small and large lesions, pleural findings and a normal film. Deterministic.

    python -m train.make_samples --out resources/samples
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from fpsm_core.sim import SimConfig, simulate_case
from fpsm_core.sim.writer import case_ids, write_dicom

SEED = 2026
CASES: tuple[tuple[str, ...], ...] = (
    ("Pneumothorax",),
    ("Nodule",),
    ("Pleural Effusion", "Cardiomegaly"),
    ("Mass",),
    ("Support Devices", "Consolidation"),
    ("No Finding",),
)


def _compress_lossless(path: Path) -> None:
    """Re-encode as JPEG-LS lossless: a third of the size, and a compressed syntax to exercise."""
    import pydicom
    from pydicom.uid import JPEGLSLossless

    ds = pydicom.dcmread(path)
    ds.compress(JPEGLSLossless)
    ds.save_as(path, enforce_file_format=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("resources/samples"))
    parser.add_argument("--size", type=int, default=1024)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    config = SimConfig(size=args.size)
    rows = []
    for index, labels in enumerate(CASES):
        case = simulate_case((SEED, index), config, labels=list(labels))
        ids = case_ids(SEED, index)
        name = f"case{index + 1}_{'_'.join(lbl.replace(' ', '') for lbl in labels)}.dcm"
        write_dicom(args.out / name, case, ids, SEED, index)
        _compress_lossless(args.out / name)
        for box in case.boxes:
            rows.append([name, box.label, box.x0, box.y0, box.x1, box.y1])
        if not case.boxes:
            rows.append([name, "No Finding", "", "", "", ""])
    with open(args.out / "ground_truth.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "class_name", "x_min", "y_min", "x_max", "y_max"])
        writer.writerows(rows)
    (args.out / "README.md").write_text(
        "# Sample study\n\nSimulated chest radiographs (`fpsm_core.sim`), not real patients. "
        "`ground_truth.csv` gives each simulated finding's box in pixels. Regenerate with "
        "`python -m train.make_samples --out resources/samples`.\n",
        encoding="utf-8",
    )
    print(f"wrote {len(CASES)} cases to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

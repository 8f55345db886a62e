"""Write the no-paste control of a DADAM output, for a fair with/without-DADAM comparison.

    python -m train.dadam_control data/dadam --out data/dadam/control_labels.csv

Every synthetic row of ``DIR/labels.csv`` is pointed at the image its lesions were pasted into
(``dest`` in ``DIR/manifest.jsonl``), with that image's original labels; real rows are kept as they
are. A run trained on the control sees the same images, in the same number of steps, under the same
patient split (the ``synthetic`` flag is kept, so validation still leaves those rows out) as a run on
the DADAM output, minus the pasted lesions and their labels. Any gain of DADAM over more training
on the same data shows up as the difference between the two.

``python -m train.dadam_control efficacy ...`` runs the three-arm comparison "efficacy-filtered
DADAM vs all patches vs no paste" in one command (:mod:`train.dadam_efficacy`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fpsm_core.errors import FpsmError
from fpsm_core.labels import CXRLT_META_COLUMNS
from fpsm_core.labels_table import LabelsTableError, read_labels_table, write_labels_table


class ControlError(FpsmError):
    """A DADAM folder the control cannot be made from."""


def write_control(dadam_dir: Path, out: Path) -> tuple[int, int]:
    """Write the control CSV; returns (rows, synthetic rows replaced)."""
    labels_csv, manifest = dadam_dir / "labels.csv", dadam_dir / "manifest.jsonl"
    for file in (labels_csv, manifest):
        if not file.is_file():
            raise ControlError(
                f"{file} does not exist; name a folder written by `fpsm dadam generate`."
            )
    header, items = None, {}
    with manifest.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ControlError(f"{manifest} line {n} is not JSON ({exc.msg}).") from exc
            if entry.get("kind") == "dadam-manifest":
                header = entry
            elif entry.get("kind") in ("record", "item"):
                items[entry["id"]] = entry
    if header is None or "images_root" not in header:
        raise ControlError(f"{manifest} has no header naming the source images_root.")
    source = Path(header["images_root"])
    if not source.is_absolute() and not source.is_dir():
        source = dadam_dir.parent / source.name
    try:
        table = read_labels_table(labels_csv, require=("dicom_id", "path"), require_synthetic=True)
    except LabelsTableError as exc:
        raise ControlError(str(exc)) from None
    meta = [dict(m) for m in table.meta]
    values = table.values.copy()
    synthetic = table.synthetic.astype(bool)
    # the original rows of the destination images, by their path relative to the source folder
    originals = {
        os.path.normpath(os.path.join(dadam_dir, meta[r]["path"])): int(r)
        for r in np.flatnonzero(~synthetic)
    }
    replaced = 0
    for r, row in enumerate(meta):
        if not synthetic[r]:
            # paths are relative to the CSV's folder: re-root them at the control's
            row["path"] = os.path.relpath(os.path.join(dadam_dir, row["path"]), out.parent)
            continue
        item = items.get(row["dicom_id"])
        if item is None:
            raise ControlError(
                f"{labels_csv}: synthetic row {row['dicom_id']} is not in {manifest}."
            )
        dest = os.path.normpath(source / item["dest"]["path"])
        original = originals.get(dest)
        if original is None:
            raise ControlError(
                f"{labels_csv}: the destination {dest} of {row['dicom_id']} has no original row."
            )
        row["path"] = os.path.relpath(dest, out.parent)
        values[r] = table.values[original]
        replaced += 1
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = [c for c in table.columns if c not in CXRLT_META_COLUMNS]
    rows = zip(meta, values, table.synthetic_values.tolist(), strict=True)
    write_labels_table(out, rows, synthetic=True, extra_columns=extra)
    return len(meta), replaced


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["efficacy"]:
        from train.dadam_efficacy import main as efficacy_main

        return efficacy_main(args_list[1:])
    p = argparse.ArgumentParser(
        prog="python -m train.dadam_control",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    p.add_argument("dadam_dir", type=Path, help="folder written by `fpsm dadam generate`")
    p.add_argument("--out", type=Path, required=True, help="the control labels CSV to write")
    args = p.parse_args(args_list)
    try:
        n, replaced = write_control(args.dadam_dir, args.out)
    except (FpsmError, OSError, KeyError) as exc:
        print(f"train.dadam_control: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {args.out}: {n} rows, {replaced} synthetic rows pointed at their unpasted images."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

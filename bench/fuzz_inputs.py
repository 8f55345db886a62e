"""Fuzz the readers that take user files: any exception but the project's own is a finding.

Not in CI (it runs for minutes). Mutates a valid checkpoint JSON (a random field set to random
JSON, random bytes, truncation, deep nesting), random ensemble descriptions, random DADAM plans and
manifests, and the table readers (the CXR-LT labels CSV; NIH, VinDr, ChestX-Det and fpsm box
files: cells replaced, dropped or added, rows cut, bytes that are not UTF-8), and reports every
exception that is not the project's own ``FpsmError``, with the input that caused it saved under
``--keep``. Usage::

    PYTHONPATH=. python bench/fuzz_inputs.py --seconds 180 --keep /tmp/fuzz
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
import traceback
from functools import partial
from pathlib import Path
from typing import Any

import torch

from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.generator import _read_checked_plan, _read_manifest
from fpsm_core.errors import FpsmError  # noqa: E402
from fpsm_core.labels import CXRLT_META_COLUMNS, LABELS  # noqa: E402
from fpsm_core.labels_table import read_labels_table  # noqa: E402
from fpsm_core.model import CheckpointError, create_fpsm, read_checkpoint_meta
from fpsm_core.model.checkpoint import save_checkpoint
from fpsm_core.model.validate import check_ensemble_json, read_json_bounded

EXPECTED = (CheckpointError, FpsmError)
TOKENS = ("", "x", "-1", "0.7", "nan", "inf", "1e400", "true", '"', ",", "\u00e9", "9" * 400)

TABLES = {
    "labels": ",".join([*CXRLT_META_COLUMNS, *LABELS])
    + "\n"
    + ",".join(["a", "1", "2", "PA", "postero-anterior", "a.png", *("0" * 26)])
    + "\n",
    "nih": "Image Index,Finding Label,Bbox [x,y,w,h],,,\na.png,Nodule,10,20,30,40\n",
    "vindr": "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\nabc,R1,Nodule/Mass,1,2,30,40\n",
    "chestxdet": json.dumps([{"file_name": "a.png", "syms": ["Nodule"], "boxes": [[1, 2, 3, 4]]}]),
    "coco": json.dumps(
        {
            "images": [{"id": 1, "file_name": "a.png", "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "Nodule"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]}],
        }
    ),
}


def table_variant(rng: random.Random, text: str) -> bytes:
    """A CSV with a few cells replaced, dropped or added, rows cut, or bytes that are not text."""
    if rng.random() < 0.1:
        return text.encode()[: rng.randrange(len(text) + 1)] + bytes([0xFF, 0xFE])
    rows = [line.split(",") for line in text.splitlines()]
    for _ in range(rng.randrange(1, 4)):
        row = rng.choice(rows)
        r = rng.random()
        if r < 0.6 and row:
            row[rng.randrange(len(row))] = rng.choice(TOKENS)
        elif r < 0.8 and row:
            row.pop(rng.randrange(len(row)))
        else:
            row.append(rng.choice(TOKENS))
    return ("\n".join(",".join(row) for row in rows) + "\n").encode("utf-8", "replace")


def _ensemble(path: Path) -> Any:
    return check_ensemble_json(read_json_bounded(path), path)


def rand_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return None
    if kind == 1:
        return rng.choice([True, False])
    if kind == 2:
        return rng.choice([0, -1, 1, 2, 5, 32, 2048, 10**9, 10**30, -(10**12)])
    if kind == 3:
        return rng.choice([0.0, 1.5, -0.5, 1e300, -1e-300, 0.5])
    if kind == 4:
        return rng.choice(["", "x", "../x", "/etc/passwd", "hf-hub:a/b", "resnet18", "é" * 50])
    if kind == 5:
        return "".join(chr(rng.randrange(32, 0x3000)) for _ in range(rng.randrange(20)))
    if kind in (6, 7):
        return [rand_json(rng, depth + 1) for _ in range(rng.randrange(5))]
    return {str(rand_json(rng, 3)): rand_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def mutate(rng: random.Random, data: Any) -> Any:
    if isinstance(data, dict) and data and rng.random() < 0.8:
        key = rng.choice(list(data))
        if rng.random() < 0.15:
            data.pop(key)
        else:
            data[key] = mutate(rng, data[key]) if rng.random() < 0.5 else rand_json(rng)
        return data
    if isinstance(data, list) and data and rng.random() < 0.8:
        i = rng.randrange(len(data))
        data[i] = mutate(rng, data[i]) if rng.random() < 0.5 else rand_json(rng)
        return data
    return rand_json(rng)


def text_variant(rng: random.Random, text: str) -> bytes:
    r = rng.random()
    if r < 0.1:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(2000)))
    if r < 0.2:
        return text.encode()[: rng.randrange(len(text) + 1)]
    if r < 0.25:
        n = rng.choice([40, 1000, 100_000])
        return ("[" * n + "]" * n).encode()
    if r < 0.3:
        return text.replace("0.5", rng.choice(["NaN", "Infinity", "-Infinity", "1e999"])).encode()
    return text.encode()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=180.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "fpsm_fuzz")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="fuzz_"))
    args.keep.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(create_fpsm("resnet18", levels=(4, 3)).eval(), work / "m")
    base = json.loads((work / "m.json").read_text())
    plan_header = {"kind": "dadam-plan", "n_items": 2, "seed": 1}
    item = {"id": "dadam_000001", "index": 0, "seed": 1, "mode": "cutmix", "target": "Nodule",
            "dest_row": 0, "dest": {"path": "a.png"}, "dest_labels": [], "labels": ["Nodule"],
            "patches": []}  # fmt: skip
    counts = {"checkpoint": 0, "ensemble": 0, "plan": 0, "manifest": 0}
    counts |= dict.fromkeys(TABLES, 0)
    findings: list[str] = []
    t_end = time.monotonic() + args.seconds
    n = 0
    while time.monotonic() < t_end:
        n += 1
        target = rng.choice(list(counts))
        counts[target] += 1
        path = work / f"input_{target}"
        if target == "checkpoint":
            data = mutate(rng, json.loads(json.dumps(base)))
            raw = text_variant(rng, json.dumps(data))
            path = path.with_suffix(".json")
            call = partial(read_checkpoint_meta, path)
        elif target == "ensemble":
            data = mutate(rng, {"format": "fpsm-ensemble", "members": [{"checkpoint": "m.json"}]})
            raw = text_variant(rng, json.dumps(data))
            call = partial(_ensemble, path)
        elif target in TABLES:
            if target in ("chestxdet", "coco"):
                raw = text_variant(rng, json.dumps(mutate(rng, json.loads(TABLES[target]))))
            else:
                raw = table_variant(rng, TABLES[target])
            path = path.with_suffix(".json" if target in ("chestxdet", "coco") else ".csv")
            call = (
                partial(read_labels_table, path)
                if target == "labels"
                else partial(read_boxes, path, target)
            )
        elif target == "plan":
            lines = [mutate(rng, dict(plan_header)) if rng.random() < 0.3 else plan_header]
            lines += [mutate(rng, json.loads(json.dumps(item))) for _ in range(rng.randrange(3))]
            raw = text_variant(rng, "\n".join(json.dumps(x) for x in lines) + "\n")
            call = partial(_read_checked_plan, path)
        else:
            lines = [{"kind": "dadam-manifest"}, *(mutate(rng, {"kind": "record", "id": "a"})
                     for _ in range(rng.randrange(4)))]  # fmt: skip
            raw = text_variant(rng, "\n".join(json.dumps(x) for x in lines) + "\n")
            call = partial(_read_manifest, path)
        path.write_bytes(raw)
        try:
            call()
        except EXPECTED as exc:
            assert "\n" not in str(exc), str(exc)
        except Exception as exc:  # noqa: BLE001 - collecting what escapes is the point
            kept = args.keep / f"finding_{len(findings)}_{target}"
            kept.write_bytes(raw)
            findings.append(f"{target}: {type(exc).__name__}: {str(exc)[:200]} -> {kept}")
            findings.append("".join(traceback.format_exception(exc)[-3:]))
    print(f"{n} inputs in {args.seconds:.0f} s: {counts}")
    print(f"{len(findings) // 2} finding(s)")
    for line in findings:
        print(line)


if __name__ == "__main__":
    main()

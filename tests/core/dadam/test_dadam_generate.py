"""The generator: the augmented data set, its tables and manifest; determinism; kill and resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dadam_support import write_dataset

from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.generator import generate
from fpsm_core.dadam.importer import import_boxes
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.dadam.planner import make_plan, read_plan, write_plan
from fpsm_core.dadam.table import read_labels_csv
from fpsm_core.labels import LABELS

ROOT = Path(__file__).resolve().parents[3]
LESIONS = {
    0: ["Nodule"],
    1: ["Nodule", "Mass"],
    2: ["Pneumothorax"],
    3: ["Mass"],
    4: ["Cardiomegaly"],
    5: ["Nodule", "Pleural Effusion"],
}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    base = tmp_path / "base"
    images, labels, boxes = write_dataset(base, n=16, size=96, lesions=LESIONS)
    lib = tmp_path / "lib"
    with PatchLibrary(lib) as library:
        import_boxes(library, read_boxes(boxes, "fpsm"), images)
        table = read_labels_csv(labels)
        plan = make_plan(
            table, library, targets={"Nodule": 8, "Mass": 6, "Pneumothorax": 4}, budget=40, seed=5,
            sources={"labels_csv": str(labels), "library": str(lib)},
        )  # fmt: skip
    plan_path = write_plan(plan, tmp_path / "plan.jsonl")
    return {"base": base, "labels": labels, "boxes": boxes, "lib": lib, "plan": plan_path}


def _manifest(out: Path) -> tuple[dict, list[dict]]:
    lines = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    return lines[0], lines[1:]


def test_generate_writes_images_tables_and_manifest(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "aug"
    plan = read_plan(setup["plan"])
    rep = generate(
        setup["plan"], setup["lib"], setup["base"], out, workers=1, base_boxes=setup["boxes"]
    )
    assert (rep.generated, rep.resumed, rep.failed) == (len(plan.items), 0, ())
    header, records = _manifest(out)
    assert header["kind"] == "dadam-manifest" and header["plan_header"]["seed"] == 5
    assert sorted(r["id"] for r in records) == sorted(i.id for i in plan.items)

    table = read_labels_csv(rep.labels_csv)
    base = read_labels_csv(setup["labels"])
    assert len(table) == len(base) + len(plan.items)
    assert table.synthetic.tolist() == [0] * len(base) + [1] * len(plan.items)
    for meta in table.meta[: len(base)]:  # originals point back at their images
        assert (out / meta["path"]).resolve().is_file()
    by_id = {r["id"]: r for r in records}
    for meta, y, item in zip(
        table.meta[len(base) :], table.y[len(base) :], plan.items, strict=True
    ):
        assert meta["dicom_id"] == item.id and meta["path"] == f"images/{item.id}.png"
        assert meta["subject_id"] == item.dest["subject_id"]  # patient-wise splits keep it together
        assert {LABELS[c] for c in np.flatnonzero(y)} == set(item.labels)
        img = cv2.imread(str(out / meta["path"]), cv2.IMREAD_GRAYSCALE)
        dest = cv2.imread(str(setup["base"] / item.dest["path"]), cv2.IMREAD_GRAYSCALE)
        assert img.shape == dest.shape
        rec = by_id[item.id]
        untouched = np.ones(img.shape, bool)
        for p in rec["patches"]:
            x0, y0, x1, y1 = p["region"]
            untouched[y0:y1, x0:x1] = False
            bx0, by0, bx1, by1 = p["box"]
            assert 0 <= bx0 < bx1 <= img.shape[1] and 0 <= by0 < by1 <= img.shape[0]
            assert p["alpha"] == (1.0 if item.mode == "cutmix" else 0.6)
        assert np.array_equal(img[untouched], dest[untouched])  # pixels change only under patches
        assert not np.array_equal(img, dest)

    boxes = read_boxes(rep.boxes_csv, "fpsm", readers="keep")
    pasted = [b for b in boxes.boxes if b.reader == "dadam"]
    assert len(pasted) == sum(len(r["patches"]) for r in records)
    carried = [b for b in boxes.boxes if b.image_id.startswith("dadam") and b.reader != "dadam"]
    original_boxes = read_boxes(setup["boxes"], "fpsm", readers="keep").boxes
    for item in plan.items:  # MixUp keeps the destination's own lesions and their boxes
        own = [b for b in original_boxes if b.image_id == item.dest["dicom_id"]]
        assert len([b for b in carried if b.image_id == item.id]) == len(own)
    assert {b.image_id for b in boxes.boxes if not b.image_id.startswith("dadam")} == {
        b.image_id for b in original_boxes
    }


def test_workers_and_reruns_give_identical_images(setup: dict[str, Path], tmp_path: Path) -> None:
    one = generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "one", workers=1)
    two = generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "two", workers=2)
    assert two.generated == one.generated
    for f in sorted((tmp_path / "one" / "images").glob("*.png")):
        assert f.read_bytes() == (tmp_path / "two" / "images" / f.name).read_bytes()
    assert (tmp_path / "one" / "labels.csv").read_text() == (
        tmp_path / "two" / "labels.csv"
    ).read_text()
    again = generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "one", workers=1)
    assert (again.generated, again.resumed) == (0, one.generated)


def test_killed_generator_resumes_without_loss_or_duplicates(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    ref = tmp_path / "ref"
    generate(setup["plan"], setup["lib"], setup["base"], ref, workers=1)
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os
        from fpsm_core.dadam.generator import generate
        def progress(done, total):
            if done == 7:
                os._exit(9)  # killed mid-run
        generate({str(setup["plan"])!r}, {str(setup["lib"])!r}, {str(setup["base"])!r},
                 {str(out)!r}, workers=2, progress=progress)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, timeout=300)
    assert proc.returncode == 9
    _, records = _manifest(out)
    assert len(records) == 7
    assert not (out / "labels.csv").exists()
    # A torn last line, as a kill during a write leaves it.
    with (out / "manifest.jsonl").open("a") as fh:
        fh.write('{"kind": "record", "id": "dadam-5-00')
    rep = generate(setup["plan"], setup["lib"], setup["base"], out, workers=2)
    n = len(read_plan(setup["plan"]).items)
    assert (rep.resumed, rep.generated) == (7, n - 7)
    _, records = _manifest(out)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == n
    for f in sorted((ref / "images").glob("*.png")):
        assert f.read_bytes() == (out / "images" / f.name).read_bytes()
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        p.name for p in (ref / "images").iterdir()
    )
    assert (out / "labels.csv").read_text() == (ref / "labels.csv").read_text()
    assert (out / "boxes.csv").read_text() == (ref / "boxes.csv").read_text()


def test_missing_destination_fails_alone_and_is_retried(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    plan = read_plan(setup["plan"])
    victim = setup["base"] / plan.items[0].dest["path"]
    hidden = victim.with_suffix(".hidden")
    victim.rename(hidden)
    out = tmp_path / "aug"
    rep = generate(setup["plan"], setup["lib"], setup["base"], out, workers=1)
    lost = [i for i in plan.items if i.dest["path"] == plan.items[0].dest["path"]]
    assert len(rep.failed) == len(lost) and plan.items[0].id in rep.failed[0]
    assert rep.generated == len(plan.items) - len(lost)
    hidden.rename(victim)
    rep = generate(setup["plan"], setup["lib"], setup["base"], out, workers=1)
    assert (rep.generated, rep.failed) == (len(lost), ())


def test_output_of_another_plan_is_refused(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "aug"
    generate(setup["plan"], setup["lib"], setup["base"], out, workers=1, limit=2)
    other = tmp_path / "other.jsonl"
    with PatchLibrary(setup["lib"]) as lib:
        write_plan(make_plan(read_labels_csv(setup["labels"]), lib, targets={"Nodule": 9}, budget=3, seed=99,
                             sources={"labels_csv": str(setup["labels"])}), other)  # fmt: skip
    with pytest.raises(DadamError, match="another plan"):
        generate(other, setup["lib"], setup["base"], out, workers=1)


def test_pseudonymize_and_synthetic_only(setup: dict[str, Path], tmp_path: Path) -> None:
    rep = generate(
        setup["plan"],
        setup["lib"],
        setup["base"],
        tmp_path / "p",
        workers=1,
        pseudonymize=True,
        salt="s3cret",
    )
    table = read_labels_csv(rep.labels_csv)
    plan = read_plan(setup["plan"])
    assert len(table) == len(plan.items) and set(table.synthetic.tolist()) == {1}
    by_dest: dict[str, set[str]] = {}
    for meta, item in zip(table.meta, plan.items, strict=True):
        assert meta["subject_id"] != item.dest["subject_id"] and meta["study_id"].startswith(
            "2.25."
        )
        by_dest.setdefault(item.dest["subject_id"], set()).add(meta["subject_id"])
    assert all(len(v) == 1 for v in by_dest.values())  # one pseudonym per patient
    assert "ids pseudonymized" in _manifest(tmp_path / "p")[0]["deidentification"]


def test_lung_mask_folder(setup: dict[str, Path], tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    masks.mkdir()
    plan = read_plan(setup["plan"])
    for item in plan.items:
        m = np.zeros((96, 96), np.uint8)
        m[10:60, 5:45] = 255  # only the upper right lung of the patient
        cv2.imwrite(str(masks / f"{item.dest['dicom_id']}.png"), m)
    rep = generate(
        setup["plan"], setup["lib"], setup["base"], tmp_path / "aug", workers=1, lung=masks
    )
    assert rep.generated == len(plan.items)
    _, records = _manifest(tmp_path / "aug")
    lung = [p for r in records for p in r["patches"] if p["placed_in"] == "lung_mask"]
    assert lung
    for p in lung:
        x0, y0, x1, y1 = p["box"]
        assert 5 <= x0 and x1 <= 46 and 10 <= y0 and y1 <= 61
    with pytest.raises(DadamError, match="lung mask folder"):
        generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "x", lung=tmp_path / "none")


def test_jpeg_destinations_give_jpeg_images(tmp_path: Path) -> None:
    base = tmp_path / "base"
    images, labels, boxes = write_dataset(base, n=8, size=96, lesions={0: ["Nodule"], 1: ["Mass"]})
    text = labels.read_text()
    for png in sorted(images.glob("*.png")):
        cv2.imwrite(
            str(png.with_suffix(".jpg")),
            cv2.imread(str(png), cv2.IMREAD_GRAYSCALE),
            [cv2.IMWRITE_JPEG_QUALITY, 95],
        )
        png.unlink()
    labels.write_text(text.replace(".png", ".jpg"))
    boxes_set = read_boxes(boxes, "fpsm")
    with PatchLibrary(tmp_path / "lib") as lib:
        assert import_boxes(lib, boxes_set, images).added == 2
        plan = make_plan(read_labels_csv(labels), lib, targets={"Nodule": 4}, budget=4, seed=0,
                         sources={"labels_csv": str(labels)})  # fmt: skip
    plan_path = write_plan(plan, tmp_path / "plan.jsonl")
    rep = generate(plan_path, tmp_path / "lib", base, tmp_path / "auto", workers=1)
    out = read_labels_csv(rep.labels_csv)
    synthetic = [m["path"] for m, s in zip(out.meta, out.synthetic, strict=True) if s]
    assert synthetic and all(p.endswith(".jpg") for p in synthetic)
    assert all(
        cv2.imread(str(tmp_path / "auto" / p), cv2.IMREAD_GRAYSCALE) is not None for p in synthetic
    )
    forced = generate(
        plan_path, tmp_path / "lib", base, tmp_path / "png", workers=1, image_format="png"
    )
    assert all(p.suffix == ".png" for p in (tmp_path / "png" / "images").iterdir())
    assert forced.generated == len(plan.items)
    with pytest.raises(DadamError, match="image format"):
        generate(plan_path, tmp_path / "lib", base, tmp_path / "x", image_format="webp")

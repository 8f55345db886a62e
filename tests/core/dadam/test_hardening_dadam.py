"""DADAM stays inside the folders the user named, and survives junk (issue 22, classes 5 and 10).

A plan item id ``../../x`` made ``generate`` write above ``--out``; a box row's absolute or ``../``
``image_id`` made ``import`` cut from files outside ``--images``; a junk manifest line or a random
plan file crashed ``generate``; a truncated plan was generated without comment; two runs shared one
temporary name; killed imports left ``.tmp`` files; 1,200-level folders hit the recursion limit.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_dadam_support import write_dataset

from fpsm_core.dadam.boxes import Box, read_boxes
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.generator import generate
from fpsm_core.dadam.importer import ImageFinder, import_boxes
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.dadam.paths import confined, id_problem, remove_stale_temps, temp_name, walk_files
from fpsm_core.dadam.planner import make_plan, write_plan
from fpsm_core.dadam.table import read_labels_csv

LESIONS = {0: ["Nodule"], 1: ["Nodule", "Mass"], 2: ["Mass"], 3: ["Nodule"]}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    base = tmp_path / "base"
    images, labels, boxes = write_dataset(base, n=8, size=96, lesions=LESIONS)
    lib = tmp_path / "lib"
    with PatchLibrary(lib) as library:
        import_boxes(library, read_boxes(boxes, "fpsm"), images)
        plan = make_plan(
            read_labels_csv(labels), library, targets={"Nodule": 5, "Mass": 4}, budget=6, seed=1,
            sources={"labels_csv": str(labels), "library": str(lib)},
        )  # fmt: skip
    plan_path = write_plan(plan, tmp_path / "plan.jsonl")
    return {"base": base, "images": images, "boxes": boxes, "lib": lib, "plan": plan_path}


def _edit_plan(plan: Path, change) -> None:  # type: ignore[no-untyped-def]
    lines = plan.read_text().splitlines()
    header, items = json.loads(lines[0]), [json.loads(x) for x in lines[1:]]
    header, items = change(header, items)
    plan.write_text("\n".join(json.dumps(x) for x in [header, *items]) + "\n")


@pytest.mark.parametrize("bad_id", ["../../x", "/tmp/evil", "..", "a/b", ".hidden", "C:\\x"])
def test_plan_item_id_cannot_write_above_out(
    setup: dict[str, Path], tmp_path: Path, bad_id: str
) -> None:
    def change(h, items):  # type: ignore[no-untyped-def]
        items[0]["id"] = bad_id
        return h, items

    _edit_plan(setup["plan"], change)
    with pytest.raises(DadamError, match="is not a plain file name"):
        generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "a" / "out", workers=1)
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == sorted(["base", "lib", "plan.jsonl", "config"])
        or not (tmp_path / "x.png").exists()
    )
    assert not list(tmp_path.rglob("x.png")) and not list(tmp_path.rglob("evil*"))


@pytest.mark.parametrize("dest", ["../../etc/passwd", "/etc/passwd"])
def test_plan_destination_outside_images_is_refused(
    setup: dict[str, Path], tmp_path: Path, dest: str
) -> None:
    def change(h, items):  # type: ignore[no-untyped-def]
        items[0]["dest"]["path"] = dest
        return h, items

    _edit_plan(setup["plan"], change)
    with pytest.raises(DadamError, match="is not inside --images"):
        generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "out", workers=1)


def test_truncated_plan_is_refused(setup: dict[str, Path], tmp_path: Path) -> None:
    _edit_plan(setup["plan"], lambda h, items: (h, items[:1]))
    with pytest.raises(DadamError, match=r"header says \d+ items but it holds 1"):
        generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "out", workers=1)


def test_random_plan_file_is_one_sentence(setup: dict[str, Path], tmp_path: Path) -> None:
    setup["plan"].write_bytes(os.urandom(4096))
    with pytest.raises(DadamError, match="is not a DADAM plan"):
        generate(setup["plan"], setup["lib"], setup["base"], tmp_path / "out", workers=1)


def test_junk_manifest_line_is_one_sentence_and_nothing_is_lost(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    generate(setup["plan"], setup["lib"], setup["base"], out, workers=1, limit=2)
    manifest = out / "manifest.jsonl"
    before = manifest.read_bytes()
    manifest.write_bytes(before + b"{not json}\n")
    with pytest.raises(DadamError, match="line 4 is not a manifest record"):
        generate(setup["plan"], setup["lib"], setup["base"], out, workers=1)
    assert manifest.read_bytes() == before + b"{not json}\n"


def test_box_image_id_outside_images_is_not_read(setup: dict[str, Path], tmp_path: Path) -> None:
    outside = tmp_path / "secret.png"
    cv2.imwrite(str(outside), np.full((96, 96), 200, np.uint8))
    rel = os.path.relpath(outside, setup["images"])
    (setup["images"] / "link.png").symlink_to(outside)
    boxes = [Box(i, "Nodule", 10, 10, 40, 40, "fpsm") for i in (str(outside), rel, "link.png")]
    with PatchLibrary(tmp_path / "lib2") as library:
        rep = import_boxes(library, boxes, setup["images"])
        assert rep.added == 0 and len(library) == 0
    assert sorted(rep.missing_images) == sorted([str(outside), rel, "link.png"])


def test_killed_import_temporaries_are_cleaned_and_live_ones_kept(tmp_path: Path) -> None:
    folder = tmp_path / "lib" / "patches" / "ab"
    folder.mkdir(parents=True)
    dead = folder / ".abc.png.999999999.tmp"  # no such process
    dead.write_bytes(b"half")
    live = temp_name(folder / "def.png")
    live.write_bytes(b"writing")
    assert remove_stale_temps(tmp_path / "lib", recursive=True) == 1
    assert not dead.exists() and live.exists()
    assert temp_name(folder / "x.png") != temp_name(folder / "x.png")


def test_deep_folders_are_walked_without_recursion(tmp_path: Path) -> None:
    deep = tmp_path
    for _ in range(1200):  # one level at a time: os.makedirs itself recurses
        deep = deep / "d"
        deep.mkdir()
    try:
        cv2.imwrite(str(deep / "img.png"), np.zeros((8, 8), np.uint8))
        assert [p.name for p in walk_files(tmp_path)] == ["img.png"]
        assert ImageFinder(tmp_path).find("img") == deep / "img.png"
    finally:  # bottom-up: shutil.rmtree (pytest's tmp cleanup) recurses per level
        (deep / "img.png").unlink(missing_ok=True)
        while deep != tmp_path:
            deep.rmdir()
            deep = deep.parent


@settings(max_examples=200, deadline=None)
@given(rel=st.text(max_size=30))
def test_property_confined_never_leaves_the_root(rel: str) -> None:
    root = Path("/srv/data/images")
    path = confined(root, rel)
    if path is not None:
        assert path.resolve().is_relative_to(root)
    if id_problem(rel) is None:
        assert "/" not in rel and "\\" not in rel and ".." not in rel


def test_huge_coordinate_is_not_echoed_in_300_digits(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    image_id = sorted(p.stem for p in setup["images"].iterdir())[0]
    boxes = [Box(image_id, "Nodule", 1e299, 10, 1e300, 40, "fpsm")]
    with PatchLibrary(tmp_path / "lib3") as library:
        rep = import_boxes(library, boxes, setup["images"])
    assert rep.outside and "1e+300" in rep.outside[0] and len(rep.outside[0]) < 200


@pytest.mark.parametrize("bad", ["inf", "-inf", "nan", "1e400"])
def test_a_coordinate_that_is_not_finite_is_an_invalid_row_in_every_reader(
    tmp_path: Path, bad: str
) -> None:
    nih = tmp_path / "BBox_List_2017.csv"
    nih.write_text(
        "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
        f"a.png,Nodule,10,20,{bad},30\n"
        "b.png,Nodule,10,20,30,30\n"
    )
    boxes = read_boxes(nih, "nih")
    assert [b.image_id for b in boxes.boxes] == ["b.png"]
    assert len(boxes.invalid) == 1 and "not finite" in boxes.invalid[0]
    coco = tmp_path / "annotations.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100}],
                "categories": [{"id": 1, "name": "Nodule"}],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4]},
                    {"id": 2, "image_id": 1, "category_id": 1, "bbox": [1, 2, bad, 4]},
                ],
            }
        ).replace(f'"{bad}"', {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}.get(bad, bad))
    )
    boxes = read_boxes(coco, "coco")
    assert len(boxes.boxes) == 1
    assert len(boxes.invalid) == 1 and "not finite" in boxes.invalid[0]


def test_two_writers_of_one_labels_csv_use_different_temporary_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fpsm_core.labels_table as table

    names: list[str] = []
    real_replace = os.replace

    def spy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        names.append(Path(src).name)
        real_replace(src, dst)

    monkeypatch.setattr(table.os, "replace", spy)
    meta = {c: "x" for c in table.META_COLUMNS} if hasattr(table, "META_COLUMNS") else {}
    from fpsm_core.dadam.table import write_labels_csv

    for _ in range(2):
        write_labels_csv(tmp_path / "labels.csv", [(meta, np.zeros(26, np.float32), 0.0)])
    assert len(names) == 2 and names[0] != names[1]


def test_malformed_rows_of_each_box_format_are_invalid_rows_not_crashes(tmp_path: Path) -> None:
    from fpsm_core.dadam.boxes import nih_spacing

    chestxdet = tmp_path / "chestxdet.json"
    chestxdet.write_text(
        json.dumps(
            [
                {"file_name": "a.png", "syms": ["Nodule"], "boxes": 5},
                {"file_name": "b.png", "syms": ["Nodule"], "boxes": [[1, 2, 30, 40]]},
            ]
        )
    )
    got = read_boxes(chestxdet, "chestxdet")
    assert [b.image_id for b in got.boxes] == ["b.png"]
    assert len(got.invalid) == 1 and "not lists" in got.invalid[0]
    vindr = tmp_path / "vindr.csv"
    vindr.write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        "abc,R1,Nodule/Mass,1,2,30,40,EXTRA\n"
        "def,R1,Cardiomegaly,1,2,30,40\n"
    )
    got = read_boxes(vindr, "vindr")
    assert [b.image_id for b in got.boxes] == ["def"]
    assert got.invalid == ("row 2 has 1 cell(s) more than the header",)
    entry = tmp_path / "Data_Entry_2017.csv"
    entry.write_bytes(
        b"Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,"
        b"View Position,OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y]\n"
        b"a\xff.png,Nodule,0,1,50,M,PA,1024,1024,0.14,0.14\n"
    )
    with pytest.raises(DadamError, match="cannot be read as NIH Data_Entry_2017.csv"):
        nih_spacing(entry)


def test_what_the_fuzz_run_found_is_one_sentence(tmp_path: Path) -> None:
    """Inputs bench/fuzz_inputs.py found escaping as tracebacks (2026-12-01), one per reader."""
    from fpsm_core.dadam.generator import _read_manifest
    from fpsm_core.dadam.planner import read_plan

    manifest = tmp_path / "manifest.jsonl"
    manifest.write_bytes(b'\n{"kind": "record", "id": "a"}\n')  # a blank first line
    with pytest.raises(DadamError, match="line 1"):
        _read_manifest(manifest)
    plan = tmp_path / "plan.jsonl"
    plan.write_text('{"kind": "dadam-plan", "n_items": 1, "seed": 1}\n{"index": Infinity}\n')
    with pytest.raises(DadamError, match="line 2 is not a valid plan item"):
        read_plan(plan)
    deep = tmp_path / "chestxdet.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(DadamError, match="too deeply"):
        read_boxes(deep, "chestxdet")
    coco = tmp_path / "annotations.json"
    coco.write_text(
        json.dumps(
            {
                "images": [{"id": [1], "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                "categories": [{"id": {"x": 1}, "name": "Nodule"}, {"id": 1, "name": "Mass"}],
                "annotations": [
                    {"id": 1, "image_id": [1], "category_id": 1, "bbox": [1, 2, 3, 4]},
                    {"id": 2, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]},
                ],
            }
        )
    )
    got = read_boxes(coco, "coco")
    assert [(b.image_id, b.label) for b in got.boxes] == [("b.png", "Mass")]
    assert got.invalid == ("annotation 1 names no image of the file",)

"""Exchange: COCO / YOLO / VOC export and import round trips, and ``library --list --json``."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from test_dadam_support import write_dataset

from fpsm_core.cli.main import main
from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.exchange import export_boxes
from fpsm_core.dadam.importer import import_boxes
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.labels import LABELS

LESIONS = {0: ["Nodule"], 1: ["Mass", "Pneumothorax"], 2: ["Nodule", "Edema", "Mass"]}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def curated(tmp_path: Path) -> tuple[Path, Path]:
    """A library of 6 sim patches: 1 accepted and edited (box and class), 2 rejected."""
    images, _, boxes_csv = write_dataset(tmp_path / "data", n=4, size=96, lesions=LESIONS)
    with PatchLibrary(tmp_path / "lib") as lib:
        import_boxes(lib, read_boxes(boxes_csv, "fpsm"), images, dataset="sim")
        lib.set_state([1, 3], "accepted")
        lib.set_state([2], "rejected")
        lib.set_rating([1], 4)
        lib.add_tags([1], ["sharp"])
        b = lib.get(3).source_box
        lib.update_box(3, (b[0] - 1.5, b[1], b[2] + 2, b[3] + 0.25), "Nodule")
    return tmp_path / "lib", images


def _boxes(lib: PatchLibrary, states: tuple[str, ...] = ("unreviewed", "accepted")) -> list:
    return sorted(
        (p.image_id, p.label, *(round(v, 3) for v in p.source_box))
        for p in lib.query(states=states)
    )


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_export_then_import_keeps_every_box(
    tmp_path: Path, curated: tuple[Path, Path], fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    lib_path, images = curated
    out = tmp_path / f"exp_{fmt}"
    assert main(["dadam", "export", str(lib_path), "--format", fmt, "--out", str(out)]) == 0
    assert "5 boxes on 3 images" in capsys.readouterr().out
    boxes_path = out / "annotations.json" if fmt == "coco" else out
    args = ["--library", str(tmp_path / "back"), "--boxes", str(boxes_path), "--images"]
    assert main(["dadam", "import", "--format", fmt, *args, str(images)]) == 0
    with PatchLibrary(lib_path) as a, PatchLibrary(tmp_path / "back") as b:
        assert _boxes(b) == _boxes(a)
        assert len(_boxes(a)) == 5
        edited = a.get(3)
        back = b.query(image_id=edited.image_id, labels=["Nodule"])
        assert any(p.source_box == pytest.approx(edited.source_box, abs=1e-3) for p in back)
        # The imported patch is the same crop as the edited one.
        same = [p for p in back if p.source_box == pytest.approx(edited.source_box, abs=1e-3)]
        assert (b.load_pixels(same[0]) == a.load_pixels(edited)).all()
    # Importing the same export again adds nothing (resumable).
    assert main(["dadam", "import", "--format", fmt, *args, str(images)]) == 0
    assert "0 new patches" in capsys.readouterr().out


def test_coco_export_loads_with_pycocotools(tmp_path: Path, curated: tuple[Path, Path]) -> None:
    from pycocotools.coco import COCO

    lib_path, _ = curated
    with PatchLibrary(lib_path) as lib:
        report = export_boxes(lib, "coco", tmp_path / "coco", states=("accepted",))
        accepted = lib.query(states=("accepted",))
    coco = COCO(str(report.files[0]))
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) == len(accepted) == 2
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(LABELS)
    for ann in anns:
        p = next(q for q in accepted if q.id == ann["attributes"]["patch_id"])
        x, y, w, h = ann["bbox"]
        assert (x, y, x + w, y + h) == pytest.approx(p.source_box)
        assert coco.loadCats(ann["category_id"])[0]["name"] == p.label
        img = coco.loadImgs(ann["image_id"])[0]
        assert (img["width"], img["height"]) == p.image_size == (96, 96)
        assert img["file_name"] == f"{p.image_id}.png"
    assert {a["attributes"]["state"] for a in anns} == {"accepted"}
    rated = next(a for a in anns if a["attributes"]["patch_id"] == 1)["attributes"]
    assert (rated["rating"], rated["tags"]) == (4, ["sharp"])


def test_yolo_and_voc_files_are_what_tools_expect(
    tmp_path: Path, curated: tuple[Path, Path]
) -> None:
    lib_path, _ = curated
    with PatchLibrary(lib_path) as lib:
        export_boxes(lib, "yolo", tmp_path / "yolo", states=None)
        export_boxes(lib, "voc", tmp_path / "voc", states=None)
        p = lib.get(1)
    assert (tmp_path / "yolo" / "classes.txt").read_text().splitlines() == list(LABELS)
    lines = (tmp_path / "yolo" / "labels" / f"{p.image_id}.txt").read_text().splitlines()
    cls, cx, cy, w, h = lines[0].split()
    x0, y0, x1, y1 = p.source_box
    assert LABELS[int(cls)] == p.label
    assert [float(v) for v in (cx, cy, w, h)] == pytest.approx(
        [(x0 + x1) / 192, (y0 + y1) / 192, (x1 - x0) / 96, (y1 - y0) / 96], abs=1e-7
    )
    assert all(0.0 <= float(v) <= 1.0 for line in lines for v in line.split()[1:])
    root = ET.parse(tmp_path / "voc" / "Annotations" / f"{p.image_id}.xml").getroot()
    assert root.findtext("filename") == f"{p.image_id}.png"
    assert (root.findtext("size/width"), root.findtext("size/height")) == ("96", "96")
    obj = root.find("object")
    assert obj is not None and obj.findtext("name") == p.label
    assert [
        float(obj.findtext(f"bndbox/{t}") or "nan") for t in ("xmin", "ymin", "xmax", "ymax")
    ] == (pytest.approx(list(p.source_box)))
    # All states with states=None: the rejected patch is there too.
    total = sum(len(f.read_text().splitlines()) for f in (tmp_path / "yolo" / "labels").glob("*"))
    assert total == 6


def test_foreign_files_map_names_and_report_what_is_unusable(tmp_path: Path) -> None:
    doc = {
        "images": [{"id": 7, "file_name": "x.png", "width": 100, "height": 80}],
        "categories": [{"id": 1, "name": "nodule"}, {"id": 2, "name": "Effusion"},
                       {"id": 3, "name": "Aortic enlargement"}, {"id": 4, "name": "Car"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 5, 5]},
            {"id": 2, "image_id": 7, "category_id": 2, "bbox": [1, 2, 30, 40]},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4]},
            {"id": 4, "image_id": 7, "category_id": 4, "bbox": [1, 2, 3, 4]},
            {"id": 5, "image_id": 8, "category_id": 1, "bbox": [1, 2, 3, 4]},
            {"id": 6, "image_id": 7, "category_id": 1, "bbox": [1, 2, 0, 4]},
        ],
    }  # fmt: skip
    (tmp_path / "c.json").write_text(json.dumps(doc))
    got = read_boxes(tmp_path / "c.json", "coco")
    assert [(b.image_id, b.label, b.x1, b.y1) for b in got.boxes] == [
        ("x.png", "Nodule", 15.0, 15.0),
        ("x.png", "Pleural Effusion", 31.0, 42.0),
    ]
    assert got.unmapped == {"Aortic enlargement": 1} and got.unknown == {"Car": 1}
    assert len(got.invalid) == 2 and "annotation 5 names no image" in got.invalid[0]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DadamError, match="is not valid JSON"):
        read_boxes(tmp_path / "bad.json", "coco")
    with pytest.raises(DadamError, match="not a YOLO folder"):
        read_boxes(tmp_path, "yolo")
    with pytest.raises(DadamError, match="not a VOC folder"):
        read_boxes(tmp_path, "voc")
    with pytest.raises(DadamError, match="not found"):
        read_boxes(tmp_path / "nothing.json", "coco")


def test_yolo_folder_without_sizes_reads_them_from_the_images(
    tmp_path: Path, curated: tuple[Path, Path]
) -> None:
    lib_path, images = curated
    with PatchLibrary(lib_path) as lib:
        export_boxes(lib, "yolo", tmp_path / "y")
        expected = _boxes(lib)
    (tmp_path / "y" / "images.csv").unlink()  # as a YOLO folder from another tool
    assert main(["dadam", "import", "--format", "yolo", "--library", str(tmp_path / "b"),
                 "--boxes", str(tmp_path / "y"), "--images", str(images)]) == 0  # fmt: skip
    with PatchLibrary(tmp_path / "b") as back:
        assert _boxes(back) == expected


def test_list_json_is_one_object_per_patch(
    tmp_path: Path, curated: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lib_path, _ = curated
    assert main(["dadam", "library", str(lib_path), "--list", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["id"] for r in records] == [1, 2, 3, 4, 5, 6]
    first = records[0]
    assert {k: first[k] for k in ("label", "state", "rating", "tags", "dataset", "image_id")} == {
        "label": "Nodule", "state": "accepted", "rating": 4, "tags": ["sharp"],
        "dataset": "sim", "image_id": "img000",
    }  # fmt: skip
    with PatchLibrary(lib_path) as lib:
        p = lib.get(1)
        assert first["box"] == list(p.source_box) and first["size_px"] == list(p.size_px)
        assert first["image"] == p.image_path and first["size_mm"] is None
    assert records[2]["edited"] is True
    args = ["dadam", "library", str(lib_path), "--list", "--json"]
    assert main([*args, "--state", "rejected"]) == 0
    assert [json.loads(x)["id"] for x in capsys.readouterr().out.splitlines()] == [2]
    assert main([*args, "--label", "mass", "--label", "Edema"]) == 0
    got = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["label"] for r in got} == {"Mass", "Edema"}
    assert main(["dadam", "library", str(lib_path), "--list", "--accept", "4", "99"]) == 0
    captured = capsys.readouterr()
    assert "6 patches" in captured.out and "img000" in captured.out
    assert "1 patches accepted" in captured.err and "no patch 99" in captured.err


def test_cli_errors_are_one_line(
    tmp_path: Path, curated: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    lib_path, _ = curated
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "library.sqlite").write_bytes(b"")
    for argv in (
        ["dadam", "library", str(tmp_path / "empty"), "--list"],
        [
            "dadam",
            "export",
            str(tmp_path / "empty"),
            "--format",
            "coco",
            "--out",
            str(tmp_path / "o"),
        ],
        ["dadam", "library", str(lib_path), "--list", "--label", "Lump"],
    ):
        assert main(argv) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()

"""Box parsers on real rows (NIH, VinDr extracts from torchxrayvision) and hand-made fixtures."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from test_dadam_support import DATA, full_txv_file, gz_rows

from fpsm_core.dadam.boxes import Box, merge_readers, nih_spacing, read_boxes
from fpsm_core.dadam.errors import DadamError

NIH = DATA / "nih_bbox_list_2017_extract.csv.gz"
VINDR = DATA / "vinbigdata_train_extract.csv.gz"
NIH_ENTRY = DATA / "nih_data_entry_2017_v2020_extract.csv.gz"
NIH_NAMES = {"Infiltrate": "Infiltration", "Effusion": "Pleural Effusion"}


def test_nih_extract_every_row_is_a_box_with_corners_and_cxrlt_names() -> None:
    rows = gz_rows(NIH)
    assert rows[0][:3] == ["Image Index", "Finding Label", "Bbox [x"]  # the malformed header
    got = read_boxes(NIH, "nih")
    assert len(got.boxes) == len(rows) - 1 == 304
    assert not got.invalid and not got.unmapped and not got.unknown
    for row, box in zip(rows[1:], got.boxes, strict=True):
        x, y, w, h = map(float, row[2:6])
        assert box.image_id == row[0]
        assert box.label == NIH_NAMES.get(row[1], row[1])
        assert box.source_label == row[1]
        assert (box.x0, box.y0, box.x1, box.y1) == pytest.approx((x, y, x + w, y + h))
        assert 0 <= box.x0 < box.x1 <= 1024.5 and 0 <= box.y0 < box.y1 <= 1024.5
    assert {b.label for b in got.boxes} >= {"Infiltration", "Pleural Effusion", "Nodule", "Mass"}


def test_nih_full_file_when_available(tmp_path: Path) -> None:
    path = full_txv_file("BBox_List_2017.csv.gz", tmp_path)
    if path is None:
        pytest.skip(
            "torchxrayvision's BBox_List_2017.csv.gz not found (pip download --no-deps torchxrayvision -d /tmp/txv)"
        )
    got = read_boxes(path, "nih")
    assert len(got.boxes) == 984
    assert got.label_counts() == {
        "Atelectasis": 180, "Cardiomegaly": 146, "Pleural Effusion": 153, "Infiltration": 123,
        "Mass": 85, "Nodule": 79, "Pneumonia": 120, "Pneumothorax": 98,
    }  # fmt: skip


def test_vindr_kaggle_extract_keep_reports_every_row() -> None:
    rows = gz_rows(VINDR)
    header, body = rows[0], rows[1:]
    cls = header.index("class_name")
    counts = Counter(r[cls] for r in body)
    got = read_boxes(VINDR, "vindr", readers="keep")
    unmappable = {"Aortic enlargement", "Calcification", "ILD", "Other lesion"}
    assert got.no_box_rows == counts["No finding"]
    assert dict(got.unmapped) == {k: v for k, v in counts.items() if k in unmappable}
    assert len(got.boxes) + got.no_box_rows + sum(got.unmapped.values()) == len(body)
    assert {b.reader for b in got.boxes} <= {r[header.index("rad_id")] for r in body}
    assert all(b.label in ("Nodule", "Mass") for b in got.boxes if b.source_label == "Nodule/Mass")
    assert Counter(b.label for b in got.boxes)["Fibrosis"] == counts["Pulmonary fibrosis"]
    assert "Aortic enlargement" in got.summary() and "no CXR-LT counterpart" in got.summary()


def test_vindr_mean_merge_averages_readers_of_one_lesion() -> None:
    kept = read_boxes(VINDR, "vindr", readers="keep")
    merged = read_boxes(VINDR, "vindr", readers="mean", iou=0.4)
    assert merged.reader_boxes == len(kept.boxes)
    assert len(merged.boxes) < len(kept.boxes)
    multi = [b for b in merged.boxes if b.readers > 1]
    assert multi, "the extract has lesions marked by several readers"
    b = multi[0]
    members = [
        k
        for k in kept.boxes
        if k.image_id == b.image_id and k.source_label == b.source_label and k.reader in b.reader.split("+")
        and k.iou(b) > 0.2
    ]  # fmt: skip
    assert len({m.reader for m in members}) == b.readers
    assert b.x0 == pytest.approx(sum(m.x0 for m in members) / len(members))
    assert b.y1 == pytest.approx(sum(m.y1 for m in members) / len(members))
    # Two readers agreeing is a stricter policy: never more lesions than with one.
    strict = read_boxes(VINDR, "vindr", readers="mean", min_readers=2)
    assert 0 < len(strict.boxes) < len(merged.boxes)
    assert all(x.readers >= 2 for x in strict.boxes)


def test_vindr_full_file_when_available(tmp_path: Path) -> None:
    path = full_txv_file("vinbigdata-train.csv.gz", tmp_path)
    if path is None:
        pytest.skip("torchxrayvision's vinbigdata-train.csv.gz not found")
    got = read_boxes(path, "vindr", readers="keep")
    assert got.no_box_rows == 31818
    assert dict(got.unmapped) == {
        "Aortic enlargement": 7162,
        "Calcification": 960,
        "ILD": 1000,
        "Other lesion": 2203,
    }
    assert len(got.boxes) == 24771
    assert len(got.boxes) + got.no_box_rows + sum(got.unmapped.values()) == 67914


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_vindr_physionet_layout_and_nodule_mass_split_by_spacing(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "annotations_train.csv",
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        "a1,R8,Nodule/Mass,100,100,200,200\n"  # 100 px: 14 mm at 0.14 mm -> Nodule
        "a1,R9,Nodule/Mass,102,98,204,203\n"
        "a2,R8,Nodule/Mass,100,100,400,400\n"  # 300 px: 42 mm -> Mass
        "a2,R8,Other diseases,0,0,10,10\n"
        "a3,R1,Lung tumor,10,10,50,50\n"
        "a3,R1,Rib fracture,60,60,80,90\n"
        "a4,R2,No finding,,,,\n"
        "a5,R2,Alien,1,1,5,5\n"
        "a6,R3,Pneumothorax,50,50,40,60\n",
    )
    got = read_boxes(f, "vindr", readers="mean")
    labels = {(b.image_id, b.label) for b in got.boxes}
    assert labels == {("a1", "Nodule"), ("a2", "Mass"), ("a3", "Lung Lesion"), ("a3", "Fracture")}
    a1 = next(b for b in got.boxes if b.image_id == "a1")
    assert a1.readers == 2 and a1.reader == "R8+R9" and a1.x0 == 101.0 and a1.y1 == 201.5
    assert got.unmapped == {"Other diseases": 1}
    assert got.unknown == {"Alien": 1}
    assert got.no_box_rows == 1
    assert len(got.invalid) == 1 and "a6" in got.invalid[0] and "row 10" in got.invalid[0]
    # With a coarse spacing the same 100 px lesion is a mass (40 mm).
    coarse = read_boxes(f, "vindr", spacing_mm={"a1": 0.4})
    assert next(b for b in coarse.boxes if b.image_id == "a1").label == "Mass"


def test_fpsm_format_takes_cxrlt_names(tmp_path: Path) -> None:
    f = _write(
        tmp_path / "boxes.csv",
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        "s1,sim,Pneumoperitoneum,1,2,30,40\n"
        "s1,sim,Support Devices,5,5,9,60\n"
        "s2,sim,Calcification of the Aorta,3,3,8,8\n",
    )
    got = read_boxes(f, "fpsm")
    assert [(b.label, b.x1) for b in got.boxes] == [
        ("Pneumoperitoneum", 30.0), ("Support Devices", 9.0), ("Calcification of the Aorta", 8.0),
    ]  # fmt: skip
    # "vindr" accepts CXR-LT names too, so simulated boxes read either way.
    assert [b.label for b in read_boxes(f, "vindr").boxes] == [b.label for b in got.boxes]


def test_chestxdet_json(tmp_path: Path) -> None:
    f = tmp_path / "ChestX_Det_train.json"
    f.write_text(
        json.dumps(
            [
                {"file_name": "36199.png", "syms": [], "boxes": [], "polygons": []},
                {
                    "file_name": "36204.png",
                    "syms": ["Effusion", "Diffuse Nodule", "Calcification"],
                    "boxes": [[10, 20, 110, 220], [300, 300, 340, 330], [1, 1, 9, 9]],
                    "polygons": [],
                },
                {"file_name": "36205.png", "syms": ["Mass"], "boxes": []},
                {"file_name": "36206.png", "syms": ["Fracture"], "boxes": [[5, 5, 20]]},
            ]
        )
    )
    got = read_boxes(f, "chestxdet")
    assert [(b.image_id, b.label, b.x0, b.y1) for b in got.boxes] == [
        ("36204.png", "Pleural Effusion", 10.0, 220.0),
        ("36204.png", "Nodule", 300.0, 330.0),
    ]
    assert got.unmapped == {"Calcification": 1}
    assert len(got.invalid) == 2
    gz = tmp_path / "det.json.gz"
    gz.write_bytes(gzip.compress(f.read_bytes()))
    assert len(read_boxes(gz, "chestxdet").boxes) == 2


@pytest.mark.parametrize(
    ("fmt", "text", "needle"),
    [
        ("nih", "a,b,c\n1,2,3\n", "Image Index"),
        ("vindr", "image_id,class_name\nx,y\n", "x_min"),
        ("chestxdet", "{not json", "valid JSON"),
        ("chestxdet", '{"a": 1}', "JSON list"),
        ("bogus", "", "unknown box format"),
    ],
)
def test_wrong_files_give_one_sentence_naming_the_file(
    tmp_path: Path, fmt: str, text: str, needle: str
) -> None:
    f = _write(tmp_path / "boxes.txt", text)
    with pytest.raises(DadamError) as err:
        read_boxes(f, fmt)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    if fmt != "bogus":
        assert str(f) in msg


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DadamError, match="not found"):
        read_boxes(tmp_path / "nope.csv", "nih")


def test_union_policy_and_unrelated_boxes_stay_apart() -> None:
    boxes = [
        Box("i", "Nodule", 0, 0, 10, 10, "vindr", "R1"),
        Box("i", "Nodule", 2, 1, 12, 11, "vindr", "R2"),
        Box("i", "Nodule", 50, 50, 60, 60, "vindr", "R2"),
        Box("i", "Mass", 0, 0, 10, 10, "vindr", "R3"),
    ]
    out = merge_readers(boxes, "union")
    assert [(b.label, b.x0, b.y0, b.x1, b.y1, b.readers) for b in out] == [
        ("Nodule", 0, 0, 12, 11, 2),
        ("Nodule", 50, 50, 60, 60, 1),
        ("Mass", 0, 0, 10, 10, 1),
    ]
    assert merge_readers(boxes, "keep") == boxes


def test_nih_spacing_from_data_entry() -> None:
    spacing = nih_spacing(NIH_ENTRY)
    rows = gz_rows(NIH_ENTRY)
    assert len(spacing) == len(rows) - 1
    r = rows[1]
    w, h, sx, sy = float(r[7]), float(r[8]), float(r[9]), float(r[10])
    assert spacing[r[0]] == pytest.approx((sy * h / 1024, sx * w / 1024))
    # Every NIH box image of the extract has its spacing.
    assert {b.image_id for b in read_boxes(NIH, "nih").boxes} <= set(spacing)

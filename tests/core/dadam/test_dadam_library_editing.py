"""Box editing (re-cut from the displayed image), drawn boxes, soft delete, duplicates and merge."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dadam_support import add_lesion, chest, write_dataset

from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.importer import crop_box, import_boxes, load_display
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.io import load_image


@pytest.fixture
def imported(tmp_path: Path) -> tuple[PatchLibrary, Path]:
    images, _, boxes_csv = write_dataset(
        tmp_path, n=3, size=96, lesions={0: ["Nodule"], 1: ["Mass", "Pneumothorax"]}
    )
    lib = PatchLibrary(tmp_path / "lib", user="editor1")
    import_boxes(lib, read_boxes(boxes_csv, "fpsm"), images, dataset="sim")
    yield lib, images
    lib.close()


def test_update_box_recut_equals_a_fresh_cut_and_records_the_edit(
    imported: tuple[PatchLibrary, Path],
) -> None:
    lib, images = imported
    p = lib.get(1)
    old_pixels = lib.load_pixels(p)
    new_box = (p.source_box[0] - 3, p.source_box[1] - 2, p.source_box[2] + 4, p.source_box[3] + 1)
    cs = lib.update_box(1, new_box, "Mass")
    assert cs.patch_ids == (1,) and cs.changes == 2
    q = lib.get(1)
    display, _ = load_display(images / "img000.png")
    crop, inner, _rect = crop_box(display, new_box)
    assert np.array_equal(lib.load_pixels(q), crop) and q.box == inner
    assert q.source_box == new_box and q.label == "Mass" and q.edited
    assert q.size_px == (int(new_box[2] - new_box[0]), int(new_box[3] - new_box[1]))
    assert q.file != p.file and p.file.is_file()  # the old crop stays for undo
    (edit,) = lib.edits(1)
    assert (edit.user, edit.old_box, edit.new_box) == ("editor1", p.source_box, new_box)
    assert (edit.old_label, edit.new_label) == ("Nodule", "Mass")
    assert {h.field for h in lib.history(1) if h.action == "update_box"} == {"geometry", "label"}
    # The reader's box is still the provenance, so re-importing does not undo the edit.
    assert lib.provenance(1)[0].box == p.source_box
    # The same edit through the XRayImage the viewer holds gives the same crop.
    lib.undo()
    r = lib.get(1)
    assert (r.label, r.source_box, r.box, r.edited) == ("Nodule", p.source_box, p.box, False)
    assert np.array_equal(lib.load_pixels(r), old_pixels)
    lib.update_box(1, new_box, image=load_image(images / "img000.png"))
    assert np.array_equal(lib.load_pixels(lib.get(1)), crop)
    lib.undo()
    lib.redo()
    assert lib.get(1).source_box == new_box


def test_update_box_from_displayed_pixels_and_its_mistakes(
    imported: tuple[PatchLibrary, Path],
) -> None:
    lib, _ = imported
    shown = np.full((96, 96), 77, np.uint8)  # the viewer's own window of the image
    lib.update_box(2, (20, 20, 40, 40), image=shown)
    assert (lib.load_pixels(lib.get(2)) == 77).all()
    with pytest.raises(DadamError, match="the image given is 50x96 pixels but the patch was cut"):
        lib.update_box(2, (20, 20, 40, 40), image=np.zeros((96, 50), np.uint8))
    with pytest.raises(DadamError, match="lies mostly outside the 96x96 image"):
        lib.update_box(2, (90, 90, 200, 200))
    with pytest.raises(DadamError, match="not one of the 26 CXR-LT labels"):
        lib.update_box(2, (20, 20, 40, 40), "Lesion")
    with pytest.raises(DadamError, match="has no patch 42"):
        lib.update_box(42, (20, 20, 40, 40))
    lib.add_box("unused.png", "sim", (50, 50, 60, 60), "Edema", image=shown)
    with pytest.raises(DadamError, match="same crop as patch"):
        lib.update_box(2, (50, 50, 60, 60), "Edema", image=shown)


def test_update_box_when_the_source_image_moved(
    imported: tuple[PatchLibrary, Path],
) -> None:
    lib, images = imported
    (images / "img001.png").rename(images / "moved.png")
    with pytest.raises(DadamError, match="source image of patch 2 is not found"):
        lib.update_box(2, (20, 20, 40, 40))
    assert lib.get(2).edited is False and lib.query_count() == 3


def test_add_box_on_any_image_delete_and_undo(tmp_path: Path) -> None:
    img, _ = chest(128)
    box = add_lesion(img, 60, 70, 8)
    cv2.imwrite(str(tmp_path / "viewer.png"), img)
    with PatchLibrary(tmp_path / "lib") as lib:
        cs = lib.add_box(tmp_path / "viewer.png", "viewer", box, "Nodule", spacing_mm=(0.2, 0.2))
        (pid,) = cs.patch_ids
        p = lib.get(pid)
        crop, inner, _ = crop_box(img, tuple(float(v) for v in box))
        assert np.array_equal(lib.load_pixels(p), crop) and p.box == inner
        assert (p.dataset, p.image_id, p.label, p.edited) == ("viewer", "viewer", "Nodule", True)
        assert p.size_mm == pytest.approx((17 * 0.2, 17 * 0.2))
        assert lib.provenance(pid)[0].reader == "editor"
        again = lib.add_box(tmp_path / "viewer.png", "viewer", box, "Nodule")
        assert again.batch is None and again.patch_ids == (pid,) and len(lib) == 1
        lib.undo()  # the drawn box goes away ...
        assert len(lib) == 0 and lib.query_ids() == [] and lib.counts() == {}
        lib.redo()  # ... and comes back
        assert lib.query_ids() == [pid]
        lib.delete_patch(pid)
        assert lib.query_ids() == [] and lib.query_ids(include_deleted=True) == [pid]
        assert lib.patches(states=("unreviewed", "accepted", "rejected")) == []
        lib.undo()
        assert lib.query_ids() == [pid]
        # Split VinDr's "Nodule/Mass" by hand: a change of label.
        lib.set_label([pid], "Mass")
        assert lib.get(pid).label == "Mass"


def test_source_boxes_gives_every_readers_box_of_an_image(tmp_path: Path) -> None:
    img, _ = chest(128)
    add_lesion(img, 60, 60, 10)
    (tmp_path / "imgs").mkdir()
    cv2.imwrite(str(tmp_path / "imgs" / "v1.png"), img)
    rows = [
        ("v1", "R8", "Nodule", 50, 50, 71, 71),
        ("v1", "R9", "Nodule", 51, 50, 71, 72),
        ("v1", "R10", "Nodule", 49, 49, 70, 70),
        ("v1", "R8", "Pleural effusion", 5, 90, 40, 120),
    ]
    boxes_csv = tmp_path / "boxes.csv"
    with boxes_csv.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
        w.writerows(rows)
    with PatchLibrary(tmp_path / "lib") as lib:
        import_boxes(lib, read_boxes(boxes_csv, "vindr", readers="keep"), tmp_path / "imgs")
        drawn = lib.source_boxes("vindr", "v1")
        readers = sorted((b.reader, b.label, b.box) for b in drawn if b.kind == "reader")
        assert readers == sorted(
            (r, "Pleural Effusion" if "ffusion" in n else n, tuple(map(float, c)))
            for _, r, n, *c in rows
        )
        assert sum(b.kind == "patch" for b in drawn) == 4
        assert {(b.dataset, b.image_id) for b in drawn} == {("vindr", "v1")}
        same = lib.source_boxes(image_path=str(tmp_path / "imgs" / "v1.png"))
        assert sorted(b.box for b in same) == sorted(b.box for b in drawn)

        # The three readers' Nodule boxes are one lesion: a same-box group; merge keeps one.
        groups = lib.duplicate_groups()
        box_groups = [g for g in groups if g.kind == "same-box"]
        assert [(g.label, g.ids) for g in box_groups] == [("Nodule", (1, 2, 3))]
        assert box_groups[0].score >= 0.5
        lib.set_rating([2], 5)
        assert list(box_groups[0]) == [1, 2, 3] and len(box_groups[0]) == 3
        cs = lib.merge(box_groups[0])
        assert cs.kept == 2
        kept = lib.get(2)  # the best rated
        assert kept.state == "unreviewed" and kept.readers == 3
        assert sorted(p.reader for p in lib.provenance(2)) == ["R10", "R8", "R9"]
        assert [lib.get(i).state for i in (1, 3)] == ["rejected", "rejected"]
        assert lib.provenance(1) == [] and cs.changed == 3
        assert [g for g in lib.duplicate_groups() if g.kind == "same-box"] == []
        lib.undo()
        assert [len(lib.provenance(i)) for i in (1, 2, 3)] == [1, 1, 1]
        assert [lib.get(i).state for i in (1, 2, 3)] == ["unreviewed"] * 3
        assert lib.get(2).readers == 1


def test_near_identical_crops_are_grouped_and_rejected_in_one_step(tmp_path: Path) -> None:
    img, _ = chest(128, seed=3)
    box = add_lesion(img, 64, 64, 12)
    other, _ = chest(128, seed=9)
    add_lesion(other, 30, 30, 12)
    twin = img.copy()
    twin[64, 64] = np.uint8(img[64, 64] ^ 1)  # one pixel re-encoded differently
    (tmp_path / "imgs").mkdir()
    for name, pix in (("a", img), ("b", twin), ("c", other)):
        cv2.imwrite(str(tmp_path / "imgs" / f"{name}.png"), pix)
    with PatchLibrary(tmp_path / "lib") as lib:
        for name in ("a", "b"):
            lib.add_box(tmp_path / "imgs" / f"{name}.png", "nih", box, "Mass")
        lib.add_box(tmp_path / "imgs" / "c.png", "nih", (18, 18, 43, 43), "Mass")
        assert len(lib) == 3 and lib.get(1).sha256 != lib.get(2).sha256
        groups = [g for g in lib.duplicate_groups() if g.kind == "same-pixels"]
        assert [(g.label, g.ids) for g in groups] == [("Mass", (1, 2))]
        assert groups[0].score <= 4
        lib.set_state(groups[0].ids[1:], "rejected")
        assert lib.duplicate_groups() == []


def test_undo_of_an_edit_whose_old_crop_was_added_again_is_a_conflict(
    imported: tuple[PatchLibrary, Path],
) -> None:
    lib, images = imported
    p = lib.get(1)
    lib.update_box(1, (10, 10, 40, 40))
    # Someone draws the original box again: the old crop is now another patch.
    cs = lib.add_box(images / "img000.png", "sim", p.source_box, "Nodule", image_id="img000")
    assert cs.batch is not None
    lib.undo()  # undoes the add_box (soft delete), the crop is still held by that row
    undone = lib.undo()
    assert undone is not None and undone.changes == 0
    assert undone.conflicts == (
        f"patch 1 geometry: its crop is now patch {cs.patch_ids[0]}; left as it is",
    )
    assert lib.get(1).source_box == (10.0, 10.0, 40.0, 40.0)

"""The patch library: provenance, de-duplication, curation, transactions; importing patches."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
from test_dadam_support import add_lesion, chest, write_dataset

from fpsm_core.dadam.boxes import Box, read_boxes
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.importer import ImportReport, crop_box, import_boxes
from fpsm_core.dadam.library import PatchLibrary

ROOT = Path(__file__).resolve().parents[3]


def _add(
    lib: PatchLibrary,
    pix: np.ndarray,
    label: str = "Nodule",
    image_id: str = "a",
    reader: str | None = None,
    spacing=None,
):
    return lib.add_patch(
        pix, (2, 2, pix.shape[1] - 2, pix.shape[0] - 2), label,
        dataset="test", image_id=image_id, source_box=(10, 10, 20, 20), image_size=(100, 100),
        rel_center=(0.15, 0.15), spacing_mm=spacing, reader=reader, source_label=label,
    )  # fmt: skip


def test_add_query_dedupe_and_curate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (12, 14), dtype=np.uint8)
    b = rng.integers(0, 255, (20, 10), dtype=np.uint8)
    with PatchLibrary(tmp_path / "lib") as lib:
        ida, new_a = _add(lib, a, spacing=(0.5, 0.25))
        idb, new_b = _add(lib, b, label="Mass")
        again, new_again = _add(lib, a.copy(), image_id="other", reader="R2", spacing=(0.5, 0.25))
        assert (new_a, new_b, new_again) == (True, True, False)
        assert again == ida and len(lib) == 2 and lib.provenance_count() == 3
        assert [p.image_id for p in lib.provenance(ida)] == ["a", "other"]
        p = lib.get(ida)
        assert np.array_equal(lib.load_pixels(p), a)
        assert p.box == (2, 2, 12, 10) and p.size_mm == (10 * 0.25, 8 * 0.5)
        assert p.file.is_file() and p.file.name == f"{p.sha256}.png"
        assert lib.get(idb).size_mm is None
        assert [x.id for x in lib.patches("Nodule")] == [ida]
        assert [x.id for x in lib.patches(min_mm=3.0)] == [ida]
        assert lib.patches(max_mm=3.0) == []
        assert lib.counts() == {"Mass": 1, "Nodule": 1}
        assert lib.set_state([idb], "rejected").changed == 1
        assert lib.counts() == {"Nodule": 1}
        assert lib.state_counts()["Mass"] == {"unreviewed": 0, "accepted": 0, "rejected": 1}
        assert [x.id for x in lib.patches(states=("rejected",))] == [idb]
        with pytest.raises(ValueError, match="curation state"):
            lib.set_state([ida], "maybe")
    # Committed rows survive reopening, also read-only.
    with PatchLibrary(tmp_path / "lib", readonly=True) as lib:
        assert len(lib) == 2 and lib.get(idb).state == "rejected"


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with PatchLibrary(tmp_path / "lib") as lib:
        _add(lib, np.zeros((8, 8), np.uint8))
        with pytest.raises(RuntimeError), lib.transaction():
            _add(lib, np.ones((8, 8), np.uint8))
            raise RuntimeError("crash in the middle of an image")
        assert len(lib) == 1 and lib.provenance_count() == 1


def test_not_a_library(tmp_path: Path) -> None:
    with pytest.raises(DadamError, match="not a DADAM patch library"):
        PatchLibrary(tmp_path / "nothing", create=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "library.sqlite").write_text("this is not sqlite " * 100)
    with pytest.raises(DadamError, match="not a usable patch library"):
        PatchLibrary(tmp_path / "bad")


def test_crop_box_margin_and_border() -> None:
    img = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    crop, inner, rect = crop_box(img, (20, 30, 40, 50), margin=0.25, min_margin_px=2)
    assert rect == (15, 25, 45, 55) and inner == (5, 5, 25, 25)
    assert np.array_equal(crop, img[25:55, 15:45])
    crop, inner, rect = crop_box(img, (0, 0, 10, 10), margin=0.5)  # margin cut by the border
    assert rect[:2] == (0, 0) and inner[:2] == (0, 0)
    assert crop_box(img, (70, 90, 200, 300)) is None  # mostly outside


def test_import_png_patches_equal_image_crops_and_resume(tmp_path: Path) -> None:
    images, _, boxes_csv = write_dataset(
        tmp_path, n=4, size=96, lesions={0: ["Nodule"], 1: ["Mass", "Pneumothorax"]}
    )
    boxes = read_boxes(boxes_csv, "fpsm")
    with PatchLibrary(tmp_path / "lib") as lib:
        rep = import_boxes(lib, boxes, images, dataset="sim")
        assert (rep.boxes, rep.added, rep.duplicates, rep.skipped) == (3, 3, 0, 0)
        for patch in lib.patches():
            prov = lib.provenance(patch.id)[0]
            img = cv2.imread(str(images / f"{prov.image_id}.png"), cv2.IMREAD_GRAYSCALE)
            x0, y0, x1, y1 = (int(v) for v in prov.box)
            pix = lib.load_pixels(patch)
            bx = patch.box
            assert np.array_equal(pix[bx[1] : bx[3], bx[0] : bx[2]], img[y0:y1, x0:x1])
            assert patch.image_size == (96, 96) and patch.spacing_mm is None
            assert patch.rel_center == pytest.approx(((x0 + x1) / 2 / 96, (y0 + y1) / 2 / 96))
        again = import_boxes(lib, boxes, images, dataset="sim")
        assert (again.added, again.skipped) == (0, 3) and len(lib) == 3


def test_import_reports_missing_and_unreadable_images(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    boxes = [Box("gone", "Nodule", 1, 1, 5, 5, "fpsm"), Box("broken", "Nodule", 1, 1, 5, 5, "fpsm")]
    img, _ = chest(64)
    cv2.imwrite(str(tmp_path / "imgs" / "small.png"), img)
    boxes.append(Box("small", "Mass", 500, 500, 600, 600, "fpsm"))
    with PatchLibrary(tmp_path / "lib") as lib:
        rep = import_boxes(lib, boxes, tmp_path / "imgs")
    assert rep.missing_images == ("gone",)
    assert len(rep.load_errors) == 1 and "broken.png" in rep.load_errors[0]
    assert len(rep.outside) == 1 and "small" in rep.outside[0]
    assert rep.added == 0 and "1 images not found" in rep.summary()


def test_import_finds_nested_images_and_uses_spacing(tmp_path: Path) -> None:
    nested = tmp_path / "images_001" / "images"
    nested.mkdir(parents=True)
    img, _ = chest(128)
    box = add_lesion(img, 40, 50, 6)
    cv2.imwrite(str(nested / "00000001_000.png"), img)
    boxes = [Box("00000001_000.png", "Nodule", *map(float, box), "nih")]
    with PatchLibrary(tmp_path / "lib") as lib:
        rep = import_boxes(lib, boxes, tmp_path, spacing_mm={"00000001_000.png": (0.4, 0.5)})
        assert rep.added == 1
        p = lib.patches()[0]
        assert p.spacing_mm == (0.4, 0.5)
        assert p.size_mm == pytest.approx((13 * 0.5, 13 * 0.4))


def _dicom(path: Path, pixels: np.ndarray, *, mono1: bool, burned_in: bool = False) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.PatientID, ds.PatientName = "DX", "P1", "Doe^Jane"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 1, 16, 12, 11
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME1" if mono1 else "MONOCHROME2"
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelSpacing = [0.2, 0.2]
    if burned_in:
        ds.BurnedInAnnotation = "YES"
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_import_dicom_monochrome1_cuts_the_displayed_image(tmp_path: Path) -> None:
    disp, _ = chest(96)
    box = add_lesion(disp, 30, 40, 6, value=230)  # bright lesion as displayed
    stored = (4095 - disp.astype(np.uint16) * 16).astype(np.uint16)  # MONOCHROME1: inverted values
    (tmp_path / "dcm").mkdir()
    _dicom(tmp_path / "dcm" / "m1.dcm", stored, mono1=True)
    _dicom(tmp_path / "dcm" / "burn.dcm", stored, mono1=True, burned_in=True)
    boxes = [
        Box("m1", "Nodule", *map(float, box), "vindr"),
        Box("burn", "Nodule", *map(float, box), "vindr"),
    ]
    with PatchLibrary(tmp_path / "lib") as lib:
        rep = import_boxes(lib, boxes, tmp_path / "dcm")
        assert rep.added == 1
        assert len(rep.load_errors) == 1 and "BurnedInAnnotation" in rep.load_errors[0]
        p = lib.patches()[0]
        pix = lib.load_pixels(p).astype(int)
        lesion = pix[p.box[1] + 4 : p.box[3] - 4, p.box[0] + 4 : p.box[2] - 4]
        assert lesion.mean() > pix[:3, :3].mean() + 80  # the lesion is bright, as displayed
        assert p.spacing_mm == (0.2, 0.2)
        from fpsm_core.io import load_image

        expected = load_image(tmp_path / "dcm" / "m1.dcm").display_uint8()
        x0, y0, x1, y1 = box
        assert np.array_equal(pix[p.box[1] : p.box[3], p.box[0] : p.box[2]], expected[y0:y1, x0:x1])
        rep2 = import_boxes(lib, boxes[1:], tmp_path / "dcm", allow_burned_in=True)
        # Same pixels as m1: one crop, a second provenance row.
        assert (rep2.added, rep2.duplicates) == (0, 1) and lib.provenance_count() == 2


def test_killed_import_keeps_committed_images_and_resumes(tmp_path: Path) -> None:
    """A process killed mid-import loses nothing committed; re-running finishes without duplicates."""
    lesions = {i: ["Nodule", "Mass"] for i in range(6)}
    images, _, boxes_csv = write_dataset(tmp_path, n=6, size=96, lesions=lesions)
    script = textwrap.dedent(
        f"""
        import os
        from fpsm_core.dadam.boxes import read_boxes
        from fpsm_core.dadam.importer import import_boxes
        from fpsm_core.dadam.library import PatchLibrary
        lib = PatchLibrary({str(tmp_path / "lib")!r})
        def progress(done, total):
            if done == 3:
                os._exit(9)  # killed after the third image committed
        import_boxes(lib, read_boxes({str(boxes_csv)!r}, "fpsm"), {str(images)!r}, progress=progress)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 9
    with PatchLibrary(tmp_path / "lib") as lib:
        assert len(lib) == 6 and lib.provenance_count() == 6
        rep = import_boxes(lib, read_boxes(boxes_csv, "fpsm"), images)
        assert (rep.skipped, rep.added, rep.duplicates) == (6, 6, 0)
        assert len(lib) == 12 and lib.provenance_count() == 12
        assert len({p.sha256 for p in lib.patches()}) == 12
        assert all(p.file.is_file() for p in lib.patches())
    # Only the files the library names are left (no temporary files).
    files = {p.name for p in (tmp_path / "lib" / "patches").rglob("*") if p.is_file()}
    assert all(f.endswith(".png") and not f.startswith(".") for f in files) and len(files) == 12


def test_import_from_a_worker_cancels_between_images_and_resumes(tmp_path: Path) -> None:
    import threading

    lesions = {i: ["Nodule"] for i in range(5)}
    images, _, boxes_csv = write_dataset(tmp_path, n=5, size=96, lesions=lesions)
    boxes = read_boxes(boxes_csv, "fpsm")
    stop = threading.Event()
    seen: list[tuple[int, int]] = []

    def progress(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 2:
            stop.set()  # the user pressed Cancel while the second image was cut

    result: dict[str, object] = {}

    def work() -> None:  # the import runs in a worker thread, with its own connection
        with PatchLibrary(tmp_path / "lib") as lib:
            result["report"] = import_boxes(lib, boxes, images, progress=progress, cancel=stop)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    rep = result["report"]
    assert isinstance(rep, ImportReport)
    assert rep.cancelled and rep.images_done == 2 and rep.added == 2
    assert seen == [(1, 5), (2, 5)] and "run it again to resume" in rep.summary()
    with PatchLibrary(tmp_path / "lib") as lib:
        again = import_boxes(lib, boxes, images, cancel=lambda: False)
        assert (again.cancelled, again.skipped, again.added, len(lib)) == (False, 2, 3, 5)

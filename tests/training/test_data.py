"""Dataset readers, splits, the training input pipeline and the sampler."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from fpsm_core.data import (
    AugmentConfig,
    DatasetError,
    EpochSampler,
    RadiographDataset,
    class_balanced_weights,
    detect_format,
    load_square,
    normalise_batch,
    read_cxrlt,
    read_dataset,
    read_generic,
    read_mura,
    read_nih,
    split_records,
)
from fpsm_core.data.transforms import ImageCache
from fpsm_core.io import load_image
from fpsm_core.labels import LABEL_INDEX, LABELS
from fpsm_core.model import Preprocessing
from fpsm_core.preprocess import normalise, prepare
from tests.training.helpers import make_dataset


def _write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_cxrlt_reader_parses_by_name_and_summarises_missing(tmp_path: Path) -> None:
    csv_path = make_dataset(tmp_path, n=12, missing=2)
    # shuffle the column order: the reader must not care
    with open(csv_path, encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    order = list(reversed(range(len(rows[0]))))
    _write_csv(csv_path, [rows[0][i] for i in order], [[r[i] for i in order] for r in rows[1:]])
    records = read_cxrlt(csv_path)
    assert len(records) == 10
    assert records.missing_summary() is not None
    assert "2 of 12 images" in records.missing_summary()
    assert str(csv_path) in records.missing_summary()
    assert records.labels == LABELS
    assert records.known.all()
    assert records.patient_ids[0] == "10000001"  # subject_id column
    assert records.image_ids[0] == "img0_0002"
    # targets match the CSV row by name
    src = {r[rows[0].index("dicom_id")]: r for r in rows[1:]}
    for i, image_id in enumerate(records.image_ids):
        row = src[image_id]
        expected = [float(row[rows[0].index(label)]) for label in LABELS]
        np.testing.assert_array_equal(records.targets[i], expected)


def test_cxrlt_2024_fpath_and_patient_from_mimic_path(tmp_path: Path) -> None:
    rel = "files/p10/p10000032/s50414267/02aa804e-bde0afdd.jpg"
    header = ["fpath", *LABELS]
    _write_csv(tmp_path / "train.csv", header, [[rel, *([0] * 26)]])
    records = read_cxrlt(tmp_path / "train.csv", "/mimic", check_files=False)
    assert records.paths == (str(Path("/mimic") / rel),)
    assert records.patient_ids == ("10000032",)
    assert records.image_ids == ("02aa804e-bde0afdd",)


def test_bad_tables_fail_with_one_sentence_naming_the_file(tmp_path: Path) -> None:
    no_labels = _write_csv(tmp_path / "a.csv", ["path", "Atelectasis"], [["x.png", 1]])
    with pytest.raises(DatasetError, match=r"a\.csv lacks CXR-LT label columns"):
        read_cxrlt(no_labels)
    no_path = _write_csv(tmp_path / "b.csv", list(LABELS), [[0] * 26])
    with pytest.raises(DatasetError, match=r"b\.csv has no 'path'"):
        read_cxrlt(no_path)
    uncertain = _write_csv(tmp_path / "c.csv", ["path", *LABELS], [["x.png", -1, *([0] * 25)]])
    with pytest.raises(DatasetError, match=r"c\.csv row 2: column 'Atelectasis' holds '-1'"):
        read_cxrlt(uncertain, check_files=False)
    with pytest.raises(DatasetError, match="does not exist"):
        read_cxrlt(tmp_path / "nope.csv")
    nih = _write_csv(tmp_path / "d.csv", ["Image Index", "Labels"], [["1.png", "x"]])
    with pytest.raises(DatasetError, match="'Image Index' and 'Finding Labels'"):
        read_nih(nih)
    generic = _write_csv(tmp_path / "e.csv", ["file", "abnormal"], [["1.png", 1]])
    with pytest.raises(DatasetError, match="no column named like a CXR-LT label"):
        read_generic(generic)
    with pytest.raises(DatasetError, match="none of the 1 images"):
        read_generic(generic, label_columns=["abnormal"])
    for err in (DatasetError("x"),):
        assert "\n" not in str(err)


def test_nih_reader_maps_names_and_marks_known_classes(tmp_path: Path) -> None:
    (tmp_path / "images_001" / "images").mkdir(parents=True)
    for name in ("00000001_000.png", "00000001_001.png", "00000002_000.png"):
        cv2.imwrite(str(tmp_path / "images_001" / "images" / name), np.zeros((8, 8), np.uint8))
    header = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age"]
    rows = [
        ["00000001_000.png", "Effusion|Infiltration", 0, 1, 58],
        ["00000001_001.png", "No Finding", 1, 1, 58],
        ["00000002_000.png", "Pleural_Thickening|Hernia", 0, 2, 81],
    ]
    records = read_nih(_write_csv(tmp_path / "Data_Entry_2017.csv", header, rows))
    assert len(records) == 3 and not records.missing
    t = records.targets
    assert t[0, LABEL_INDEX["Pleural Effusion"]] == 1 and t[0, LABEL_INDEX["Infiltration"]] == 1
    assert t[1, LABEL_INDEX["No Finding"]] == 1
    assert t[2, LABEL_INDEX["Pleural Thickening"]] == 1 and t[2, LABEL_INDEX["Hernia"]] == 1
    assert t.sum() == 5
    assert records.patient_ids == ("1", "1", "2")
    assert not records.known[LABEL_INDEX["Support Devices"]]
    assert records.known[LABEL_INDEX["Pleural Effusion"]]
    assert records.known.sum() == 15
    assert detect_format(tmp_path / "Data_Entry_2017.csv") == "nih"


def test_generic_dadam_and_mura_readers(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / name), np.zeros((8, 8), np.uint8))
    custom = _write_csv(
        tmp_path / "custom.csv",
        ["image", "patient_id", "abnormal"],
        [["a.png", "p1", 1], ["b.png", "p2", 0]],
    )
    records = read_generic(custom, label_columns=["abnormal"])
    assert records.labels == ("abnormal",)
    np.testing.assert_array_equal(records.targets[:, 0], [1, 0])
    assert records.patient_ids == ("p1", "p2")
    subset = _write_csv(
        tmp_path / "subset.csv",
        ["path", "cardiomegaly", "synthetic"],
        [["a.png", 1, 1], ["b.png", 0, 0]],
    )
    records = read_generic(subset)
    assert records.labels == LABELS
    assert records.known.sum() == 1 and records.known[LABEL_INDEX["Cardiomegaly"]]
    assert records.synthetic.tolist() == [True, False]

    dadam_csv = make_dataset(tmp_path / "dadam", n=6, synthetic=True)
    assert detect_format(dadam_csv) == "dadam"
    records = read_dataset("dadam", dadam_csv)
    assert records.synthetic.tolist() == [False, True] * 3
    plain = make_dataset(tmp_path / "plain", n=4)
    with pytest.raises(DatasetError, match="no 'synthetic' column"):
        read_dataset("dadam", plain)

    mura_root = tmp_path / "mura"
    paths = [
        "MURA-v1.1/valid/XR_WRIST/patient11185/study1_positive/image1.png",
        "MURA-v1.1/valid/XR_WRIST/patient11186/study1_negative/image1.png",
    ]
    for rel in paths:
        (mura_root / rel).parent.mkdir(parents=True)
        cv2.imwrite(str(mura_root / rel), np.zeros((8, 8), np.uint8))
    listing = mura_root / "MURA-v1.1" / "valid_image_paths.csv"
    listing.write_text("\n".join(paths) + "\n", encoding="utf-8")
    records = read_mura(listing)
    assert records.labels == ("Abnormal",)
    assert records.targets[:, 0].tolist() == [1.0, 0.0]
    assert records.patient_ids == ("patient11185", "patient11186")
    assert not records.missing


def test_patient_split_keeps_patients_together(tmp_path: Path) -> None:
    records = read_cxrlt(make_dataset(tmp_path, n=40), check_files=False)
    train, val = split_records(records, 0.25, "patient", seed=3)
    assert len(train) + len(val) == 40
    assert not set(train.patient_ids) & set(val.patient_ids)
    assert len(set(val.patient_ids)) == 5  # 25% of 20 patients
    again = split_records(records, 0.25, "patient", seed=3)
    assert again[1].image_ids == val.image_ids
    rtrain, rval = split_records(records, 0.2, "random", seed=0)
    assert len(rval) == 8 and len(rtrain) == 32
    with pytest.raises(DatasetError, match="val_fraction"):
        split_records(records, 1.5)


def test_eval_items_equal_the_inference_preprocessing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    img = (rng.random((90, 70)) * 65535).astype(np.uint16)  # 16-bit: percentile window
    cv2.imwrite(str(tmp_path / "a.png"), img)
    records = read_generic(
        _write_csv(tmp_path / "l.csv", ["path", "Cardiomegaly"], [["a.png", 1], ["gone.png", 0]]),
        check_files=False,
    )
    pre = Preprocessing(input_size=64)
    ds = RadiographDataset(records, 64, "letterbox")
    item = ds[0]
    x = normalise_batch(item["image"][None], pre.mean, pre.std, 3)[0].numpy()
    loaded = load_image(tmp_path / "a.png")
    expected, _ = prepare(loaded.pixels, loaded.window, pre, 3)
    np.testing.assert_array_equal(x, expected)
    assert item["valid"] and item["error"] == ""
    assert item["target"][LABEL_INDEX["Cardiomegaly"]] == 1
    broken = ds[1]
    assert not broken["valid"] and "gone.png" in broken["error"]
    assert broken["image"].shape == (1, 64, 64)


def test_normalise_batch_matches_numpy_normalise() -> None:
    square = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    pre = Preprocessing(input_size=16)
    ours = normalise_batch(torch.from_numpy(square)[None, None], pre.mean, pre.std, 3)[0].numpy()
    np.testing.assert_array_equal(ours, normalise(square, pre.mean, pre.std, 3))


def test_augmentation_is_mild_reproducible_and_keeps_padding_black(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "wide.png"), np.full((40, 80), 200, np.uint8))
    records = read_generic(_write_csv(tmp_path / "l.csv", ["path", "Edema"], [["wide.png", 0]]))
    assert AugmentConfig().hflip is False  # anatomy is lateralised: no flips by default
    intensity_only = AugmentConfig(degrees=0, translate=0, scale=(1.0, 1.0))
    ds = RadiographDataset(records, 64, augment_config=intensity_only, seed=5)
    a = ds[(0, 1, 7)]["image"][0].numpy()
    assert np.array_equal(a, ds[(0, 1, 7)]["image"][0].numpy())  # same key, same image
    assert not np.array_equal(a, ds[(0, 2, 7)]["image"][0].numpy())  # next epoch differs
    assert np.all(a[:16] == 0) and np.all(a[-16:] == 0)  # letterbox bands untouched
    plain = RadiographDataset(records, 64)[0]["image"][0].numpy()
    body = a[20:44]
    assert 0 < np.abs(body - plain[20:44]).mean() < 0.2
    full = RadiographDataset(records, 64, augment_config=AugmentConfig(), seed=5)[(0, 3, 1)]
    assert full["image"].shape == (1, 64, 64) and float(full["image"].max()) <= 1.0


def test_cache_gives_the_same_square_every_time(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    cv2.imwrite(str(tmp_path / "a.png"), (rng.random((50, 60)) * 255).astype(np.uint8))
    cache = ImageCache(tmp_path / "cache")
    uncached = load_square(tmp_path / "a.png", 32)
    first = load_square(tmp_path / "a.png", 32, cache=cache)
    second = load_square(tmp_path / "a.png", 32, cache=cache)
    assert np.array_equal(first, second)
    assert np.abs(first - uncached).max() <= 0.5 / 65535 + 1e-7
    assert len(list((tmp_path / "cache").rglob("*.png"))) == 1


def test_sampler_resumes_mid_epoch_and_shards_ranks() -> None:
    full = list(EpochSampler(10, seed=1))
    s = EpochSampler(10, seed=1)
    s.set_epoch(0, start=4)
    assert list(s) == full[4:] and len(s) == 6
    s.set_epoch(1)
    assert [k[0] for k in s] != [k[0] for k in full]
    assert sorted(k[0] for k in full) == list(range(10))
    ranks = [list(EpochSampler(10, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert all(len(r) == 4 for r in ranks)
    positions = sorted(k[2] for r in ranks for k in r)
    assert positions == list(range(12))
    assert {k[0] for r in ranks for k in r} == set(range(10))


def test_class_balanced_weights_lift_rare_classes() -> None:
    targets = np.zeros((100, 3), np.float32)
    targets[:90, 0] = 1
    targets[90:, 1] = 1
    w = class_balanced_weights(targets, power=0.5)
    assert w[95] > w[0] >= 1.0
    draws = EpochSampler(100, seed=0, weights=w, num_samples=5000).order()
    rare_share = np.isin(draws, np.arange(90, 100)).mean()
    assert rare_share > 0.2  # 10% of images, drawn far more often

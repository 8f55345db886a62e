"""train.compare (side-by-side held-out comparison) and train.dadam_control (the no-paste control)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from fpsm_core.data import read_cxrlt
from fpsm_core.labels import LABELS
from tests.core.helpers import tiny_checkpoint
from tests.training.helpers import make_dataset
from train import compare as compare_script
from train import dadam_control

NAMES = ("A", "B", "C", "D", "E", "F")


def _scored(name: str, prob: np.ndarray) -> compare_script.Scored:
    return compare_script.Scored(name, f"{name}.json", prob, {})


@pytest.fixture
def toy() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = (rng.random((300, len(NAMES))) < 0.3).astype(np.int64)
    good = np.clip(0.35 * y + 0.65 * rng.random(y.shape), 0, 1)
    noise = rng.random(y.shape)
    return y, good, noise


def test_a_better_model_is_ahead_with_an_interval_above_zero(toy) -> None:
    y, good, noise = toy
    groups = {"size": {"A": "small", "B": "small", "C": "large", "D": "large", "E": "large"}}
    report = compare_script.compare(
        [_scored("chance", noise), _scored("good", good), _scored("same", noise.copy())],
        y, NAMES, "chance", groups, n_boot=200,
    )  # fmt: skip
    whole = report["subsets"]["all"]
    assert "d_mAP" not in whole["chance"]
    good_row = whole["good"]
    assert good_row["d_mAP"] > 0.1 and good_row["d_mAP_ci"][0] > 0
    assert good_row["d_AUC_ci"][0] > 0 and good_row["d_AUC_ahead"] == 1.0
    # a model identical to the reference differs by exactly nothing on every resample
    same = whole["same"]
    assert same["d_mAP"] == 0 and same["d_mAP_ci"] == [0.0, 0.0] and same["d_mAP_ahead"] == 0.0
    # chance-level AUC sits near 0.5 and its interval covers it
    lo, hi = whole["chance"]["AUC_ci"]
    assert lo < 0.5 < hi
    # groups: only the named classes, in their own subsets; F has no group
    assert report["subsets"]["size:small"]["good"]["classes"] == 2
    assert report["subsets"]["size:large"]["good"]["classes"] == 3
    per_class = report["per_class"]["good"]
    assert report["subsets"]["size:small"]["good"]["mAP"] == pytest.approx(
        (per_class["A"]["AP"] + per_class["B"]["AP"]) / 2
    )
    assert report["positives"]["A"] == int(y[:, 0].sum())


def test_the_bootstrap_is_reproducible_for_a_seed(toy) -> None:
    y, good, noise = toy
    models = [_scored("a", noise), _scored("b", good)]
    first = compare_script.compare(models, y, NAMES, "a", {}, n_boot=50, seed=3)
    again = compare_script.compare(models, y, NAMES, "a", {}, n_boot=50, seed=3)
    assert first == again


def test_an_unknown_reference_is_refused(toy) -> None:
    y, good, _ = toy
    with pytest.raises(compare_script.CompareError, match="--ref 'x'"):
        compare_script.compare([_scored("a", good)], y, NAMES, "x", {}, n_boot=5)


def test_frequency_groups_split_the_classes_in_thirds() -> None:
    counts = {name: 100 - 10 * i for i, name in enumerate(NAMES)}
    groups = compare_script.frequency_groups(counts, NAMES)
    assert [groups[n] for n in NAMES] == ["head", "head", "medium", "medium", "tail", "tail"]


def test_size_groups_use_the_median_box_side(tmp_path: Path) -> None:
    csv_path = make_dataset(tmp_path / "data", n=6)
    records = read_cxrlt(csv_path)
    boxes = tmp_path / "boxes.csv"
    rows = [
        (records.image_ids[0], "Nodule", 10, 10, 14, 14),  # 4 px of 64: small
        (records.image_ids[1], "Nodule", 10, 10, 15, 15),
        (records.image_ids[2], "Cardiomegaly", 10, 20, 50, 60),  # 40 px: large
        (records.image_ids[3], "No Finding", "", "", "", ""),  # a row without a box
    ]
    with boxes.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"])
        writer.writerows((i, "R1", c, *xy) for i, c, *xy in rows)
    groups = compare_script.size_groups(boxes, records, LABELS)
    assert groups["Nodule"] == "small"
    assert groups["Cardiomegaly"] == "large"
    assert groups["No Finding"] == "diffuse" and groups["Mass"] == "diffuse"


def test_command_compares_checkpoints_and_reuses_predictions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = make_dataset(tmp_path / "data", n=24)
    a = tiny_checkpoint(tmp_path / "a", seed=0)
    b = tiny_checkpoint(tmp_path / "b", seed=1, levels=(4,))
    out = tmp_path / "cmp"
    argv = [
        "--csv", str(csv_path), "--format", "cxrlt", "--model", f"deep={b}", "--model", f"sum={a}",
        "--ref", "sum", "--out", str(out), "--bootstrap", "20", "--device", "cpu",
    ]  # fmt: skip
    assert compare_script.main(argv) == 0
    md = (out / "compare.md").read_text()
    assert "| **sum** (ref) |" in md and "| deep |" in md and "## Per-class AP" in md
    report = json.loads((out / "compare.json").read_text())
    assert report["n_images"] == 24 and set(report["models"]) == {"deep", "sum"}
    cached = out / "predictions" / "deep.npz"
    stamp = cached.stat().st_mtime_ns
    assert compare_script.main(argv) == 0
    assert cached.stat().st_mtime_ns == stamp  # same weights, same images: predicted once
    assert json.loads((out / "compare.json").read_text()) == report
    # a second run (another seed) under the same name: the reference becomes the mean of two runs
    c = tiny_checkpoint(tmp_path / "c", seed=2)
    assert compare_script.main([*argv, "--model", f"sum={c}"]) == 0
    two = json.loads((out / "compare.json").read_text())
    assert two["subsets"]["all"]["sum"]["runs"] == 2 and len(two["runs"]["sum"]) == 2
    assert (out / "predictions" / "sum.run2.npz").is_file()
    assert "runs mAP" in (out / "compare.md").read_text()
    capsys.readouterr()
    # one checkpoint given twice, and a path that is not a checkpoint, each fail in one line
    assert compare_script.main([*argv, "--model", f"again={a}"]) == 2
    assert f"{a} is given twice" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert compare_script.main([*argv[:-4], "--model", f"bad={bad}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train.compare: --model bad=") and len(err.splitlines()) == 1


def _dadam_folder(tmp_path: Path) -> Path:
    """A source folder of 4 films and a DADAM output that pasted Nodule into two of them."""
    source = make_dataset(tmp_path / "sim", n=4).parent
    originals = list(csv.DictReader((source / "labels.csv").open()))
    out = tmp_path / "dadam"
    (out / "images").mkdir(parents=True)
    fields = [*originals[0].keys(), "synthetic"]
    rows = [{**r, "path": f"../sim/{r['path']}", "synthetic": "0"} for r in originals]
    manifest = [{"kind": "dadam-manifest", "images_root": str(source)}]
    for k, dest in enumerate(originals[:2]):
        ident = f"dadam-0-{k:07d}"
        rows.append(
            {**dest, "dicom_id": ident, "path": f"images/{ident}.png", "Nodule": "1",
             "No Finding": "0", "synthetic": "1"}
        )  # fmt: skip
        manifest.append(
            {"kind": "record", "id": ident, "dest": {"path": dest["path"]}, "labels": ["Nodule"]}
        )
    with (out / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (out / "manifest.jsonl").write_text("".join(json.dumps(m) + "\n" for m in manifest))
    return out


def test_control_points_synthetic_rows_at_their_unpasted_films(tmp_path: Path) -> None:
    out = _dadam_folder(tmp_path)
    control = tmp_path / "control" / "labels.csv"
    assert dadam_control.main([str(out), "--out", str(control)]) == 0
    rows = list(csv.DictReader(control.open()))
    originals = list(csv.DictReader((tmp_path / "sim" / "labels.csv").open()))
    assert len(rows) == 6
    for row, dest in zip(rows[4:], originals[:2], strict=True):
        assert row["synthetic"] == "1" and row["dicom_id"].startswith("dadam-")
        assert (control.parent / row["path"]).resolve() == (
            tmp_path / "sim" / dest["path"]
        ).resolve()
        assert {k: row[k] for k in LABELS} == {k: dest[k] for k in LABELS}
    # real rows are unchanged apart from their path, re-rooted at the control CSV
    assert (control.parent / rows[0]["path"]).resolve() == (
        tmp_path / "sim" / originals[0]["path"]
    ).resolve()


def test_control_names_a_synthetic_row_missing_from_the_manifest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _dadam_folder(tmp_path)
    lines = (out / "manifest.jsonl").read_text().splitlines()
    (out / "manifest.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    assert dadam_control.main([str(out), "--out", str(tmp_path / "c.csv")]) == 2
    err = capsys.readouterr().err
    assert "dadam-0-0000001 is not in" in err and "manifest.jsonl" in err
    assert not (tmp_path / "c.csv").exists()


def test_runs_of_one_model_are_scored_by_their_mean_and_listed(toy) -> None:
    y, good, noise = toy
    rng = np.random.default_rng(1)
    other_seed = np.clip(good + 0.2 * rng.random(good.shape), 0, 1)
    report = compare_script.compare(
        [_scored("base", noise), _scored("good", good), _scored("good", other_seed)],
        y, NAMES, "base", {}, n_boot=100,
    )  # fmt: skip
    row = report["subsets"]["all"]["good"]
    single = [
        compare_script.compare([_scored("g", p)], y, NAMES, "g", {}, n_boot=5)["subsets"]["all"][
            "g"
        ]
        for p in (good, other_seed)
    ]
    assert row["runs"] == 2 and report["subsets"]["all"]["base"]["runs"] == 1
    assert row["mAP_runs"] == pytest.approx([s["mAP"] for s in single])
    assert row["mAP"] == pytest.approx(np.mean(row["mAP_runs"]))
    assert row["AUC"] == pytest.approx(np.mean([s["AUC"] for s in single]))
    assert row["d_mAP_ci"][0] > 0 and "mAP_runs" not in report["subsets"]["all"]["base"]
    assert report["runs"]["good"] == ["good.json", "good.json"]
    md = compare_script.markdown(report)
    assert "runs mAP" in md
    assert f"{100 * row['mAP_runs'][0]:.2f} / {100 * row['mAP_runs'][1]:.2f}" in md


def test_the_intervals_of_a_model_with_several_runs_hold_the_spread_between_them(toy) -> None:
    y, good, noise = toy
    # two runs of one recipe that ended far apart: one good, one at chance
    models = [_scored("ref", noise), _scored("seeds", good), _scored("seeds", noise.copy())]
    report = compare_script.compare(models, y, NAMES, "ref", {}, n_boot=400, seed=1)
    row = report["subsets"]["all"]["seeds"]
    spread = (row["mAP_runs"][0] - row["mAP_runs"][1]) / 2
    assert spread > 0.05
    # a quarter of the resamples draw the chance run twice, a quarter the good run twice: the
    # paired interval reaches (nearly) both, where an image-only bootstrap would sit near the mean
    lo, hi = row["d_mAP_ci"]
    assert lo < row["d_mAP"] - 0.8 * spread and hi > row["d_mAP"] + 0.8 * spread
    assert lo < 0.01
    # --keep-runs: the same means with the runs fixed; only the test images' spread is left
    fixed = compare_script.compare(
        models, y, NAMES, "ref", {}, n_boot=400, seed=1, resample_runs=False
    )
    kept = fixed["subsets"]["all"]["seeds"]
    assert kept["d_mAP"] == row["d_mAP"]
    assert kept["d_mAP_ci"][1] - kept["d_mAP_ci"][0] < (hi - lo) / 2
    assert "kept fixed" in compare_script.markdown(fixed)
    assert "draws its runs with replacement" in compare_script.markdown(report)

"""Patch efficacy: deterministic, resumable after a kill, stored per model, used by plan and list."""

from __future__ import annotations

import csv
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from test_dadam_support import write_dataset

from fpsm_core.dadam import schema
from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.efficacy import (
    bootstrap_interval,
    latest_scores,
    score_patches,
    scored_models,
    stored_scores,
)
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.importer import import_boxes
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.resources import resources_dir
from tests.core.helpers import tiny_ensemble

ROOT = Path(__file__).resolve().parents[3]
DEMO = resources_dir() / "models" / "demo"
LESIONS = {0: ["Nodule"], 1: ["Mass"], 2: ["Nodule", "Mass"], 3: ["Cardiomegaly"], 4: ["Mass"]}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("models")
    a = tiny_ensemble(base / "a", n=2, size=64)
    b = tiny_ensemble(base / "b", n=1, size=64)
    return a, b


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    base = tmp_path / "base"
    images, labels, boxes = write_dataset(base, n=12, size=96, lesions=LESIONS)
    lib = tmp_path / "lib"
    with PatchLibrary(lib) as library:
        import_boxes(library, read_boxes(boxes, "fpsm"), images)
    return {"base": base, "labels": labels, "lib": lib}


def _values(lib: Path) -> dict[int, tuple]:
    with PatchLibrary(lib, create=False) as library:
        return {
            pid: (s.efficacy, s.lo, s.hi, s.energy, s.best_level, s.n_images)
            for pid, ss in stored_scores(library).items()
            for s in ss
        }


def test_scores_are_deterministic_skip_what_is_stored_and_keep_other_models(
    setup: dict[str, Path], tmp_path: Path, models: tuple[Path, Path]
) -> None:
    copy = tmp_path / "lib2"
    shutil.copytree(setup["lib"], copy)
    rep = score_patches(setup["lib"], models[0], labels_csv=setup["labels"], per_patch=3, seed=4,
                        device="cpu")  # fmt: skip
    with PatchLibrary(setup["lib"], create=False) as library:
        n_patches = len(library.patches(None))
    assert len(rep.scored) == n_patches and rep.failed == () and not rep.cancelled
    for s in rep.scored:
        assert s.lo <= s.efficacy <= s.hi and s.n_images == 3 and s.best_level in (4, 3, 2)
        assert s.energy is not None and 0.0 <= s.energy <= 1.0
    # the same seed in another library copy, patches in another grouping: the same numbers
    with PatchLibrary(copy, create=False) as library:
        ids = sorted(p.id for p in library.patches(None))
    score_patches(copy, models[0], labels_csv=setup["labels"], per_patch=3, seed=4,
                  patch_ids=ids[::-1][:2], device="cpu")  # fmt: skip
    score_patches(copy, models[0], labels_csv=setup["labels"], per_patch=3, seed=4, device="cpu")
    assert _values(copy) == _values(setup["lib"])
    # a rerun skips everything; another seed differs
    again = score_patches(setup["lib"], models[0], labels_csv=setup["labels"], per_patch=3, seed=4,
                          device="cpu")  # fmt: skip
    assert again.scored == () and len(again.skipped) == n_patches
    other = score_patches(setup["lib"], models[1], labels_csv=setup["labels"], per_patch=3, seed=4,
                          device="cpu")  # fmt: skip
    assert len(other.scored) == n_patches
    with PatchLibrary(setup["lib"], create=False) as library:
        models_seen = scored_models(library)
        assert len(models_seen) == 2
        assert all(len(ss) == 2 for ss in stored_scores(library).values())
        with pytest.raises(DadamError, match="several models"):
            latest_scores(library)
        assert set(latest_scores(library, other.model.id[:8])) == {p.id for p in library.patches()}


def test_patches_are_never_pasted_onto_images_with_their_finding(
    setup: dict[str, Path], models: tuple[Path, Path]
) -> None:
    rows = list(csv.DictReader(setup["labels"].open()))
    # only images with a nodule, plus one normal image: nodule patches have one target at most
    keep = [r for r in rows if r["Nodule"] == "1"] + [r for r in rows if r["No Finding"] == "1"][:1]
    small = setup["labels"].with_name("nodules.csv")
    with small.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(keep)
    with PatchLibrary(setup["lib"], create=False) as library:
        nodules = [p.id for p in library.patches("Nodule")]
    rep = score_patches(setup["lib"], models[0], labels_csv=small, images=setup["base"],
                        per_patch=4, patch_ids=nodules, device="cpu")  # fmt: skip
    assert rep.scored and all(s.n_images == 1 for s in rep.scored)  # the normal image, alone


@pytest.mark.slow
def test_scoring_resumes_after_a_kill(
    setup: dict[str, Path], tmp_path: Path, models: tuple[Path, Path]
) -> None:
    copy = tmp_path / "whole"
    shutil.copytree(setup["lib"], copy)
    script = textwrap.dedent(
        f"""
        import os, signal
        from fpsm_core.dadam.efficacy import score_patches
        def progress(done, total):
            if done == 2:
                os.kill(os.getpid(), signal.SIGKILL)
        score_patches({str(setup["lib"])!r}, {str(models[0])!r}, labels_csv={str(setup["labels"])!r},
                      per_patch=3, seed=9, device="cpu", progress=progress)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=600)
    assert proc.returncode == -9, proc.stderr.decode()[-2000:]
    assert len(_values(setup["lib"])) == 2  # what finished before the kill is stored
    rep = score_patches(setup["lib"], models[0], labels_csv=setup["labels"], per_patch=3, seed=9,
                        device="cpu")  # fmt: skip
    assert len(rep.skipped) == 2 and len(rep.scored) == len(_values(setup["lib"])) - 2
    score_patches(copy, models[0], labels_csv=setup["labels"], per_patch=3, seed=9, device="cpu")
    assert _values(copy) == _values(setup["lib"])


def test_cancel_and_progress_for_the_studio_button(
    setup: dict[str, Path], models: tuple[Path, Path]
) -> None:
    seen: list[tuple[int, int]] = []
    rep = score_patches(setup["lib"], models[0], labels_csv=setup["labels"], per_patch=2,
                        progress=lambda d, t: seen.append((d, t)), cancel=lambda: len(seen) >= 2,
                        device="cpu")  # fmt: skip
    assert rep.cancelled and len(rep.scored) == 2 and seen[-1][0] == 2


def test_schema_2_library_gains_the_efficacy_table_with_a_backup(setup: dict[str, Path]) -> None:
    db_path = setup["lib"] / "library.sqlite"
    db = sqlite3.connect(db_path)
    db.execute("DROP TABLE efficacy")
    db.execute("UPDATE meta SET value='2' WHERE key='schema'")
    db.commit()
    db.close()
    with PatchLibrary(setup["lib"], create=False) as library:
        assert stored_scores(library) == {}
        assert library.connection.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[
            0
        ] == str(schema.SCHEMA_VERSION)
    backup = setup["lib"] / "library.sqlite.schema2.bak"
    with sqlite3.connect(backup) as old:
        assert old.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0] == "2"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "fpsm_core.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_cli_score_list_plan_and_report(
    setup: dict[str, Path], tmp_path: Path, models: tuple[Path, Path]
) -> None:
    lib = str(setup["lib"])
    bad = _cli("dadam", "score", lib, "--model", str(tmp_path / "nope"), "--labels",
               str(setup["labels"]))  # fmt: skip
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and "model not found" in bad.stderr
    ok = _cli("dadam", "score", lib, "--model", str(models[0]), "--labels", str(setup["labels"]),
              "--per-patch", "2", "--seed", "1", "--json", "--device", "cpu")  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    scored = [json.loads(line) for line in ok.stdout.splitlines()]
    assert scored and all(len(s["interval"]) == 2 and s["seed"] == 1 for s in scored)
    listed = _cli("dadam", "library", lib, "--list", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert all(r["efficacy"] and r["efficacy"][0]["model"] == "tiny" for r in rows)
    by_id = {r["id"]: r["efficacy"][0]["efficacy"] for r in rows}
    threshold = sorted(by_id.values())[len(by_id) // 2]
    plan = tmp_path / "plan.jsonl"
    made = _cli("dadam", "plan", "--labels", str(setup["labels"]), "--library", lib, "--out",
                str(plan), "--target", "6", "--budget", "20", "--min-efficacy", str(threshold),
                "--efficacy-model", "tiny")  # fmt: skip
    assert made.returncode == 0, made.stderr
    assert "patches kept" in made.stderr
    used = {
        p["patch_id"]
        for line in plan.read_text().splitlines()[1:]
        for p in json.loads(line)["patches"]
    }
    assert used and all(by_id[i] >= threshold for i in used)
    report = _cli("dadam", "report", "--original", str(setup["labels"]), "--augmented",
                  str(setup["labels"]), "--out", str(tmp_path / "rep"), "--library", lib)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert "Patch efficacy" in (tmp_path / "rep" / "report.md").read_text()
    assert json.loads((tmp_path / "rep" / "efficacy.json").read_text())


def test_bootstrap_interval_brackets_the_mean() -> None:
    import numpy as np

    lo, hi = bootstrap_interval([0.1, 0.2, 0.3, 0.4], np.random.default_rng(0))
    assert lo < 0.25 < hi
    assert bootstrap_interval([0.5], np.random.default_rng(0)) == (0.5, 0.5)


@pytest.mark.slow
@pytest.mark.skipif(not (DEMO / "ensemble.json").is_file(), reason="no demo ensemble")
def test_demo_ensemble_scores_cardiomegaly_patches_above_decoys(tmp_path: Path) -> None:
    """Heart patches of simulated cardiomegaly raise the demo's probability; the same boxes cut
    from normal films (decoys) do not."""
    sim = pytest.importorskip("fpsm_core.sim", reason="the simulator is not in this build")
    src, dst = tmp_path / "src", tmp_path / "dst"
    sim.write_dataset(src, n=40, seed=2, format="png", size=256)
    dst_labels = sim.write_dataset(dst, n=10, seed=3, format="png", size=256)
    rows = list(csv.DictReader((src / "labels.csv").open()))
    normal = [r["dicom_id"] for r in rows if r["No Finding"] == "1"]
    heart = [b for b in csv.DictReader((src / "boxes.csv").open())
             if b["class_name"] == "Cardiomegaly"][:4]  # fmt: skip
    assert heart and normal
    cols = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
    for name, image_of in (("real", lambda i, b: b["image_id"]),
                           ("decoy", lambda i, b: normal[i % len(normal)])):  # fmt: skip
        with (tmp_path / f"{name}.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for i, b in enumerate(heart):
                w.writerow([image_of(i, b), "SIM", b["class_name"], *(b[c] for c in cols[3:])])
    with PatchLibrary(tmp_path / "lib") as lib:
        for name in ("real", "decoy"):
            import_boxes(lib, read_boxes(tmp_path / f"{name}.csv", "fpsm"), src, dataset=name)
        kind = {p.id: p.dataset for p in lib.patches(None)}
        rep = score_patches(lib, DEMO, labels_csv=dst_labels, per_patch=4, seed=0, device="cpu")
    real = [s.efficacy for s in rep.scored if kind[s.patch_id] == "real"]
    decoy = [s.efficacy for s in rep.scored if kind[s.patch_id] == "decoy"]
    assert real and decoy
    assert min(real) > max(decoy)
    assert sum(real) / len(real) > 0.2 > sum(decoy) / len(decoy)


def test_an_image_that_fails_to_load_is_one_sentence_and_scoring_goes_on(
    setup: dict[str, Path], models: tuple[Path, Path]
) -> None:
    broken = sorted((setup["base"] / "images").glob("*.png"))[-1]
    broken.write_bytes(b"not a png")
    with PatchLibrary(setup["lib"], create=False) as library:
        first = min(p.id for p in library.patches(None))
    rep = score_patches(setup["lib"], models[0], labels_csv=setup["labels"], per_patch=20,
                        patch_ids=[first], device="cpu")  # fmt: skip
    assert len(rep.scored) == 1 and rep.scored[0].n_images >= 1
    (line,) = [f for f in rep.failed if broken.name in f]
    assert "\n" not in line and "Traceback" not in line

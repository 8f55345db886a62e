"""The lead's pipeline: simulate -> import patches from simulated boxes -> plan -> generate.

Runs on simulated DICOMs (MONOCHROME1/2, with spacing) so the mm scaling and the display path of
``fpsm_core.io`` are exercised; skipped when the simulator is not part of the build.
"""

from __future__ import annotations

from pathlib import Path

import pytest

sim = pytest.importorskip("fpsm_core.sim", reason="the simulator is not in this build")

from fpsm_core.dadam import (  # noqa: E402
    PatchLibrary,
    generate,
    import_boxes,
    make_plan,
    read_boxes,
    read_labels_csv,
    write_plan,
)


@pytest.mark.slow
def test_simulated_dicoms_through_dadam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))
    base = tmp_path / "sim"
    labels = sim.write_dataset(base, n=16, seed=3, format="dicom", size=128)
    boxes = read_boxes(base / "boxes.csv", "fpsm")
    assert boxes.boxes and not boxes.unknown and not boxes.invalid
    with PatchLibrary(tmp_path / "lib") as lib:
        rep = import_boxes(lib, boxes, base, dataset="sim")
        assert rep.added > 0 and not rep.missing_images and not rep.load_errors
        patches = lib.patches()
        assert all(p.spacing_mm is not None and p.size_mm is not None for p in patches)
        table = read_labels_csv(labels)
        counts = table.counts()
        label = max(lib.counts(), key=lambda k: lib.counts()[k])
        plan = make_plan(table, lib, targets={label: counts[label] + 5}, budget=10, seed=0,
                         sources={"labels_csv": str(labels)})  # fmt: skip
    assert plan.counts_after[label] >= counts[label] + 5
    plan_path = write_plan(plan, tmp_path / "plan.jsonl")
    out = generate(
        plan_path,
        tmp_path / "lib",
        base,
        tmp_path / "aug",
        workers=1,
        base_boxes=base / "boxes.csv",
    )
    assert out.failed == () and out.generated == len(plan.items)
    aug = read_labels_csv(out.labels_csv)
    assert len(aug) == len(table) + len(plan.items)
    assert aug.counts()[label] == plan.counts_after[label]

"""Ground-truth box files for the viewer: the sample's and the simulator's layouts, matching, scores."""

from __future__ import annotations

from pathlib import Path

import pytest

from fpsm_core.explain.ground_truth import GroundTruthError, load_ground_truth
from fpsm_core.resources import sample_study_dir


def test_the_bundled_sample_ground_truth_matches_its_films() -> None:
    gt = load_ground_truth(sample_study_dir() / "ground_truth.csv")
    assert gt.format == "sample" and gt.skipped == ()  # "No Finding" rows carry no box
    boxes = gt.boxes_for("/anywhere/case3_PleuralEffusion_Cardiomegaly.dcm")
    assert sorted(b.label for b in boxes) == [
        "Cardiomegaly",
        "Pleural Effusion",
        "Pleural Effusion",
    ]
    assert boxes[0].corners == (355.0, 385.0, 775.0, 758.0)
    assert gt.boxes_for("case6_NoFinding.dcm") == []


def test_the_simulators_boxes_csv_is_read_and_matched_by_stem(tmp_path: Path) -> None:
    path = tmp_path / "boxes.csv"
    path.write_text(
        "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
        "sim_000001,R1,Pneumothorax,10,20,110,220\n"
        "sim_000002,R1,Nodule,5,5,25,25\n"
    )
    gt = load_ground_truth(path)
    assert gt.format == "fpsm"
    (box,) = gt.boxes_for(tmp_path / "images" / "sim_000001.dcm")
    assert (box.label, box.corners) == ("Pneumothorax", (10.0, 20.0, 110.0, 220.0))


def test_box_file_errors_are_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(GroundTruthError, match="no such box file"):
        load_ground_truth(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(GroundTruthError, match="bad.csv"):
        load_ground_truth(bad)
    with pytest.raises(GroundTruthError, match="unknown box format"):
        load_ground_truth(bad, "pdf")

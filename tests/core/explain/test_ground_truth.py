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


def test_level_scores_are_the_metrics_on_the_maps_and_tiny_boxes_still_count(
    tmp_path: Path,
) -> None:
    from fpsm_core.explain import ENSEMBLE, FUSED, ResultCams, energy_in_box, pointing_game
    from fpsm_core.explain.ground_truth import GroundTruthBox, level_scores
    from fpsm_core.inference import InferenceService
    from tests.core.helpers import chest_like, tiny_checkpoint, write_dicom

    model = tiny_checkpoint(tmp_path / "m", untrained=True)
    image = write_dicom(tmp_path / "chest.dcm", chest_like(96, 80, seed=3))
    result = next(iter(InferenceService(model, device="cpu").predict_paths([image], cams=True)))
    cams = ResultCams(result)
    k = result.findings[0].index
    grid = (24, 20)  # a quarter of the 96 x 80 film
    box = GroundTruthBox("chest.dcm", result.findings[0].label, 8, 12, 40, 60)
    scores = level_scores(cams, k, [box], ENSEMBLE, grid)
    assert [s.level for s in scores] == [FUSED, *cams.levels_of(ENSEMBLE)]
    for s in scores:
        values = cams.map(k, s.level, grid)
        region = [(2.0, 3.0, 10.0, 15.0)]  # the box on the quarter grid
        assert s.hit == bool(pointing_game(values, region))
        assert s.energy == pytest.approx(float(energy_in_box(values, region)))
    # A 2 px box is under one cell of the grid: it becomes the cell holding its centre.
    tiny = GroundTruthBox("chest.dcm", box.label, 41, 41, 43, 43)
    (fused, *_) = level_scores(cams, k, [tiny], ENSEMBLE, grid)
    cell = cams.map(k, FUSED, grid)[10:11, 10:11]
    assert fused.energy == pytest.approx(float(cell.sum() / cams.map(k, FUSED, grid).sum()))

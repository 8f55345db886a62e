"""CAM files: the npz archive, the PNG overlays, and a whole inference result written to disk."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from fpsm_core.explain import ExplainError, overlay, write_cam_outputs, write_result_cams
from fpsm_core.explain.caption import MIN_WIDTH, read_png_text
from fpsm_core.labels import LABELS
from fpsm_core.model import create_fpsm


def _maps(k: int, levels: int, h: int = 8, w: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((k, levels, h, w)).astype(np.float32)


def test_npz_and_overlays_of_the_top_findings(tmp_path):
    image = np.tile(np.arange(40, dtype=np.uint8)[None], (30, 1))
    maps = _maps(3, 2)
    fused = maps.mean(axis=1)
    files = write_cam_outputs(
        tmp_path / "cams",
        "study1",
        image,
        maps,
        levels=(4, 2),
        labels=["Mass", "Pleural Effusion", "Nodule"],
        fused=fused,
        scores=[0.2, 0.9, 0.5],
        top_k=2,
        arrays={"shares": np.ones((3, 2), dtype=np.float32)},
    )
    with np.load(files.npz, allow_pickle=False) as data:
        np.testing.assert_array_equal(data["maps"], maps)
        np.testing.assert_array_equal(data["fused"], fused)
        assert list(data["labels"]) == ["Mass", "Pleural Effusion", "Nodule"]
        assert list(data["levels"]) == [4, 2]
        np.testing.assert_allclose(data["scores"], [0.2, 0.9, 0.5])
        assert data["shares"].shape == (3, 2)
    names = [p.name for p in files.overlays]
    assert names == [
        "study1_01_pleural_effusion_L4.png",
        "study1_01_pleural_effusion_L2.png",
        "study1_01_pleural_effusion_fused.png",
        "study1_02_nodule_L4.png",
        "study1_02_nodule_L2.png",
        "study1_02_nodule_fused.png",
    ]
    png = cv2.imread(str(files.overlays[0]))
    assert png.shape == (30, 40, 3)
    np.testing.assert_array_equal(png, overlay(image, maps[1, 0]))


def test_overlay_alpha_blends_the_colour_map():
    image = np.full((4, 4), 100, dtype=np.uint8)
    cam = np.ones((2, 2), dtype=np.float32)
    np.testing.assert_array_equal(overlay(image, cam, alpha=0.0), np.full((4, 4, 3), 100))
    red = cv2.applyColorMap(np.full((4, 4), 255, dtype=np.uint8), cv2.COLORMAP_JET)
    np.testing.assert_array_equal(overlay(image, cam, alpha=1.0), red)


def test_writer_errors_name_the_problem(tmp_path):
    maps = _maps(1, 1)
    with pytest.raises(ExplainError, match="must be uint8"):
        write_cam_outputs(tmp_path, "a", np.zeros((4, 4)), maps, [4], ["Mass"])
    with pytest.raises(ExplainError, match="do not match 2 labels x 1 levels"):
        write_cam_outputs(tmp_path, "a", np.zeros((4, 4), np.uint8), maps, [4], ["Mass", "Nodule"])
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ExplainError, match=f"cannot create the CAM folder {blocker / 'sub'}"):
        write_cam_outputs(blocker / "sub", "a", np.zeros((4, 4), np.uint8), maps, [4], ["Mass"])
    with pytest.raises(ExplainError, match="holds Python objects"):
        write_cam_outputs(
            tmp_path,
            "a",
            np.zeros((4, 4), np.uint8),
            maps,
            [4],
            ["Mass"],
            arrays={"bad": np.array([{}], dtype=object)},
        )


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    from fpsm_core.inference import InferenceService
    from fpsm_core.model.checkpoint import save_checkpoint
    from fpsm_core.model.ensemble import write_ensemble
    from fpsm_core.preprocess import Preprocessing

    folder = tmp_path_factory.mktemp("ensemble")
    torch.manual_seed(0)
    a = create_fpsm("mobilenetv3_small_050", levels=(4, 3, 2))
    b = create_fpsm("mobilenetv3_small_050", levels=(4, 3))
    save_checkpoint(a, folder / "a", name="a", preprocessing=Preprocessing(input_size=64))
    save_checkpoint(b, folder / "b", name="b", preprocessing=Preprocessing(input_size=96))
    write_ensemble(folder, ["a.json", "b.json"], name="two members")
    return InferenceService(folder, device="cpu")


def _image():
    rng = np.random.default_rng(5)
    return SimpleNamespace(
        pixels=rng.random((80, 100)).astype(np.float32), window=(0.5, 1.0), path=None
    )


def test_closed_form_result_cams_end_to_end(service, tmp_path):
    image = _image()
    result = service.predict([image], cams=True)[0]
    record = write_result_cams(result, service, tmp_path, top_k=2, image=image)
    assert record["method"] == "closed-form"
    with np.load(record["npz"], allow_pickle=False) as data:
        maps, fused = data["maps"], data["fused"]
        assert maps.shape[:2] == (len(LABELS), 3) and list(data["levels"]) == [4, 3, 2]
        # Letterbox padding removed: the 80x100 image fills 51 x 64 of the 64 px input (rows 6..57),
        # rows 1..7 of the finest grid (level 2 of member a, 8 x 8).
        assert maps.shape[2:] == fused.shape[1:] == (6, 8)
        assert data["raw_m0_L2"].shape == (len(LABELS), 8, 8)
        assert data["raw_m1_L3"].shape == (len(LABELS), 6, 6)
        assert data["shares"].shape == (len(LABELS), 3)
        assert maps.min() >= 0 and maps.max() <= 1
    top = [LABELS[i] for i in np.argsort(-result.probabilities, kind="stable")[:2]]
    assert len(record["overlays"]) == 2 * 4
    assert record["overlays"][0].endswith(f"image_01_{top[0].lower().replace(' ', '_')}_L4.png")
    png = cv2.imread(record["overlays"][-1])
    # The film on top (at least MIN_WIDTH wide, so the caption below it stays readable).
    assert png.shape[0] > 80 and png.shape[1] == max(100, MIN_WIDTH)
    text = read_png_text(record["overlays"][-1])
    assert text["Model"] == "two members" and "not for clinical use" in text["Disclaimer"]
    lines = text["Description"].splitlines()
    assert "closed-form Grad-CAM | fused levels | ensemble mean of 2 members" in lines
    assert any(line.startswith(f"{top[1]}: probability ") for line in lines)


def test_package_method_result_cams(service, tmp_path):
    image = _image()
    result = service.predict([image], cams=False)[0]
    record = write_result_cams(result, service, tmp_path, method="gradcam", top_k=1, image=image)
    with np.load(record["npz"], allow_pickle=False) as data:
        assert data["maps"].shape[:2] == (1, 3)
        assert str(data["method"]) == "gradcam"
    assert len(record["overlays"]) == 4
    with pytest.raises(ExplainError, match="no closed-form CAMs"):
        write_result_cams(result, service, tmp_path, image=image)

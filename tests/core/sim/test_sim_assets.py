"""The asset builder keeps clean two-lung masks and summarises NIH boxes (on a tiny fake wheel)."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from fpsm_core.sim import assets, build_assets


def _two_lungs(shift: int = 0, third_blob: bool = False) -> bytes:
    mask = np.zeros((300, 300), np.uint8)
    cv2.ellipse(mask, (95 + shift, 150), (50, 100), 0, 0, 360, 255, -1)
    cv2.ellipse(mask, (205 + shift, 150), (50, 95), 0, 0, 360, 255, -1)
    if third_blob:
        cv2.circle(mask, (150, 20), 12, 255, -1)
    return cv2.imencode(".png", mask)[1].tobytes()


def _fake_wheel(path: Path) -> Path:
    masks = io.BytesIO()
    with zipfile.ZipFile(masks, "w") as z:
        z.writestr("semantic_masks_v7labs_lungs/", "")
        z.writestr("semantic_masks_v7labs_lungs/a.png", _two_lungs())
        z.writestr("semantic_masks_v7labs_lungs/b.png", _two_lungs(shift=120))  # cut by the border
        z.writestr("semantic_masks_v7labs_lungs/c.png", _two_lungs(third_blob=True))  # an arrow
    boxes = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n" + "\n".join(
        f"{i:08d}_000.png,{label},100,200,{w},{w / 2}"
        for i, (label, w) in enumerate(
            [("Nodule", 30), ("Nodule", 50), ("Effusion", 300), ("Unknown", 10)]
        )
    )
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr(build_assets.MASK_ZIP, masks.getvalue())
        wheel.writestr(build_assets.NIH_BOXES, gzip.compress(boxes.encode()))
    return path


def test_builder_keeps_only_clean_lung_pairs(tmp_path: Path) -> None:
    with zipfile.ZipFile(_fake_wheel(tmp_path / "fake.whl")) as wheel:
        templates = build_assets.lung_templates(wheel)
    assert [t["source"] for t in templates] == ["a.png"]
    right, left = (np.asarray(templates[0][k]) for k in ("right_lung", "left_lung"))
    assert right.shape == (build_assets.CONTOUR_POINTS, 2)
    assert right[:, 0].max() < left[:, 0].min()
    assert right.min() >= 0 and max(right.max(), left.max()) <= 1


def test_builder_summarises_nih_boxes_by_cxrlt_name(tmp_path: Path) -> None:
    with zipfile.ZipFile(_fake_wheel(tmp_path / "fake.whl")) as wheel:
        stats = build_assets.nih_box_stats(wheel)
    assert set(stats) == {"Nodule", "Pleural Effusion"}
    assert stats["Nodule"]["n"] == 2
    assert stats["Nodule"]["width"][2] == pytest.approx(40 / 1024, abs=1e-4)


def test_builder_writes_both_json_files(tmp_path: Path) -> None:
    wheel = _fake_wheel(tmp_path / "fake.whl")
    assert build_assets.main(["--wheel", str(wheel), "--out", str(tmp_path / "out")]) == 0
    lungs = json.loads((tmp_path / "out" / "lung_contours.json").read_text())
    assert len(lungs["templates"]) == 1 and "CC BY 4.0" in lungs["source"]
    assert "Nodule" in json.loads((tmp_path / "out" / "box_stats.json").read_text())["classes"]


def test_simulator_works_without_bundled_assets(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from fpsm_core.sim import SimConfig, simulate_case

    monkeypatch.setattr(assets, "RESOURCE_DIR", tmp_path)
    assets.lung_templates.cache_clear()
    assets.box_size_quantiles.cache_clear()
    try:
        assert len(assets.lung_templates()) == 1
        assert assets.box_size_quantiles() == {}
        case = simulate_case(0, SimConfig(size=64), labels=["Consolidation", "Nodule"])
        assert {b.label for b in case.boxes} == {"Consolidation", "Nodule"}
    finally:
        assets.lung_templates.cache_clear()
        assets.box_size_quantiles.cache_clear()


def test_committed_assets_are_small() -> None:
    total = sum(p.stat().st_size for p in assets.RESOURCE_DIR.iterdir() if p.is_file())
    assert total < 5 * 1024 * 1024

"""Recipes: a studio composition is a plan item, and generate makes the same pixels from it."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dadam_support import write_dataset

from fpsm_core.dadam.boxes import read_boxes
from fpsm_core.dadam.composition import compose
from fpsm_core.dadam.errors import DadamError
from fpsm_core.dadam.generator import generate
from fpsm_core.dadam.importer import import_boxes
from fpsm_core.dadam.library import PatchLibrary
from fpsm_core.dadam.planner import PlanItem, make_plan, read_plan, write_plan
from fpsm_core.dadam.recipe import (
    Recipe,
    RecipePatch,
    append_to_plan,
    label_vector,
    load_target,
    patch_specs,
    recipe_for_generated,
    render,
)
from fpsm_core.dadam.table import read_labels_csv
from fpsm_core.labels import LABELS

LESIONS = {0: ["Nodule"], 1: ["Nodule", "Mass"], 2: ["Cardiomegaly"], 3: ["Mass"]}


@pytest.fixture(autouse=True)
def _deid_salt_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FPSM_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    base = tmp_path / "base"
    images, labels, boxes = write_dataset(base, n=10, size=96, lesions=LESIONS)
    lib = tmp_path / "lib"
    with PatchLibrary(lib) as library:
        import_boxes(library, read_boxes(boxes, "fpsm"), images)
        plan = make_plan(
            read_labels_csv(labels), library, targets={"Nodule": 5, "Mass": 5}, budget=6, seed=3,
            sources={"labels_csv": str(labels), "library": str(lib)},
        )  # fmt: skip
    plan_path = write_plan(plan, tmp_path / "plan.jsonl")
    return {"base": base, "labels": labels, "lib": lib, "plan": plan_path}


def _png(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    assert img is not None
    return img


def _studio_recipe(library: PatchLibrary) -> Recipe:
    by_label = {p.label: p for p in library.patches(None)}
    return Recipe(
        target_path="images/img006.png",
        target_labels=("No Finding",),
        patches=(
            RecipePatch(by_label["Nodule"].id, "Nodule", (0.3, 0.5), 1.2, 1.0, 0.4, False),
            RecipePatch(by_label["Cardiomegaly"].id, "Cardiomegaly", (0.5, 0.6), 0.9, 0.6),
        ),
        seed=11,
        mode="cutmix",
        target_meta={"dicom_id": "img006", "subject_id": "1003", "study_id": "5006"},
    )


def test_plan_items_round_trip_and_plain_plans_keep_their_json(setup: dict[str, Path]) -> None:
    plan = read_plan(setup["plan"])
    for item in plan.items:
        recipe = Recipe.from_plan_item(item)
        assert recipe.to_plan_item() == item
        assert recipe.to_plan_item().to_json() == item.to_json()
        for p in item.to_json()["patches"]:  # the planner's own items carry no studio fields
            assert "feather" not in p and "match" not in p
    with PatchLibrary(setup["lib"], create=False) as library:
        studio = _studio_recipe(library)
    item = studio.to_plan_item(index=4)
    back = PlanItem.from_json(json.loads(json.dumps(item.to_json())))
    assert back == item and Recipe.from_plan_item(back).patches == studio.patches
    assert item.to_json()["patches"][0]["feather"] == 0.4
    assert item.to_json()["patches"][0]["match"] is False
    assert item.labels == ("Cardiomegaly", "Nodule") and item.dest["path"] == "images/img006.png"


def test_render_equals_generate_for_every_plan_item(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "aug"
    rep = generate(setup["plan"], setup["lib"], setup["base"], out, workers=1)
    assert rep.failed == () and rep.generated == len(read_plan(setup["plan"]).items)
    with PatchLibrary(setup["lib"], create=False) as library:
        for item in read_plan(setup["plan"]).items:
            comp = render(Recipe.from_plan_item(item), library, setup["base"])
            assert np.array_equal(comp.image, _png(out / "images" / f"{item.id}.png")), item.id


def test_saved_studio_recipe_generates_the_studio_pixels(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    plan = tmp_path / "studio.jsonl"
    with PatchLibrary(setup["lib"], create=False) as library:
        recipe = _studio_recipe(library)
        target = load_target(recipe, setup["base"])
        studio = render(recipe, library, target=target)
        moved = recipe.moved(1, (0.45, 0.55))
        studio_moved = render(moved, library, setup["base"])
        # the studio's composite is compose() of the same specs, with the recipe's seed
        direct = compose(
            target[0], patch_specs(recipe, library), dest_spacing=target[1],
            rng=np.random.default_rng(recipe.seed),
        )  # fmt: skip
    assert np.array_equal(studio.image, direct.image)
    assert not np.array_equal(studio.image, studio_moved.image)  # the drag moved the patch
    assert studio.placements[1].box != studio_moved.placements[1].box
    first = append_to_plan(plan, recipe, labels_csv=setup["labels"], library=setup["lib"])
    second = append_to_plan(plan, moved)
    assert (first.index, second.index) == (0, 1)
    with pytest.raises(DadamError, match="already holds"):
        append_to_plan(plan, recipe)
    assert read_plan(plan).header["n_items"] == 2
    out = tmp_path / "aug"
    rep = generate(plan, setup["lib"], setup["base"], out, workers=1, include_original=False)
    assert rep.failed == ()
    assert np.array_equal(_png(out / "images" / f"{first.id}.png"), studio.image)
    assert np.array_equal(_png(out / "images" / f"{second.id}.png"), studio_moved.image)
    # the label row generate writes is the studio's label vector
    table = read_labels_csv(rep.labels_csv)
    row = [i for i, m in enumerate(table.meta) if m["dicom_id"] == first.id][0]
    assert np.array_equal(table.values[row].astype(np.float32), label_vector(recipe))
    vec = label_vector(recipe)
    assert vec[LABELS.index("Nodule")] == 1 and vec[LABELS.index("No Finding")] == 0
    # a reviewer opens a generated image and reads its recipe back
    back = recipe_for_generated(out, f"images/{second.id}.png")
    assert back.to_plan_item() == read_plan(plan).items[1]
    with PatchLibrary(setup["lib"], create=False) as library:
        assert np.array_equal(render(back, library, setup["base"]).image, studio_moved.image)


def test_recipe_of_an_older_manifest_comes_from_its_plan(
    setup: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "aug"
    generate(setup["plan"], setup["lib"], setup["base"], out, workers=1)
    manifest = out / "manifest.jsonl"
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    for rec in lines[1:]:  # strip the planned fields, as an older generate wrote them
        for p in rec["patches"]:
            p.pop("center"), p.pop("planned_scale")
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    item = read_plan(setup["plan"]).items[2]
    assert recipe_for_generated(out, item.id).to_plan_item() == item
    with pytest.raises(DadamError, match="has no generated image"):
        recipe_for_generated(out, "nothing.png")
    with pytest.raises(DadamError, match="not a DADAM output folder"):
        recipe_for_generated(tmp_path, "x.png")


def test_bad_recipes_are_one_sentence(setup: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DadamError, match="alpha"):
        bad = RecipePatch(1, "Nodule", (0.5, 0.5), alpha=0.0)
        Recipe("images/img006.png", (), (bad,))
    with pytest.raises(DadamError, match="not a finding"):
        Recipe("images/img006.png", (), (RecipePatch(1, "No Finding", (0.5, 0.5)),))
    with PatchLibrary(setup["lib"], create=False) as library:
        missing = Recipe("images/img006.png", (), (RecipePatch(999, "Nodule", (0.5, 0.5)),))
        with pytest.raises(DadamError, match="has no patch 999"):
            render(missing, library, setup["base"])
        outside = Recipe("../x.png", (), (RecipePatch(1, "Nodule", (0.5, 0.5)),))
        with pytest.raises(DadamError, match="not inside the images folder"):
            render(outside, library, setup["base"])
    with pytest.raises(DadamError, match="not a path inside"):
        append_to_plan(tmp_path / "p.jsonl", outside)

"""The inference service: batching, unreadable files, and CAMs on or off, on tiny real models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpsm_core.inference import InferenceService, LoadFailure, Result
from fpsm_core.io import load_image
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("inference")
    model = tiny_ensemble(root / "model", n=2, size=64)
    paths = [
        write_dicom(root / f"film{i}.dcm", chest_like(96 + 8 * i, 80, seed=i)) for i in range(5)
    ]
    return model, paths


def _probabilities(results: list[Result]) -> np.ndarray:
    return np.stack([r.probabilities for r in results])


def test_batch_size_does_not_change_any_number(films: tuple[Path, list[Path]]) -> None:
    model, paths = films
    images = [load_image(p) for p in paths]
    one = InferenceService(model, device="cpu", batch_size=1).predict(images)
    four = InferenceService(model, device="cpu", batch_size=4).predict(images)
    assert [r.path for r in one] == [str(p) for p in paths]
    np.testing.assert_allclose(_probabilities(one), _probabilities(four), rtol=0, atol=1e-5)
    for a, b in zip(one, four, strict=True):
        assert a.image_shape == b.image_shape
        for la, lb in zip(a.level_logits, b.level_logits, strict=True):
            np.testing.assert_allclose(la, lb, rtol=0, atol=1e-4)


def test_findings_are_ranked_and_levels_add_up_to_each_members_logit(
    films: tuple[Path, list[Path]],
) -> None:
    model, paths = films
    result = InferenceService(model, device="cpu").predict([load_image(paths[0])])[0]
    probs = [f.probability for f in result.findings]
    assert probs == sorted(probs, reverse=True)
    assert len(result.findings) == len(result.labels) == 26
    np.testing.assert_allclose(result.member_probabilities.mean(axis=0), result.probabilities)
    for m, levels in enumerate(result.level_logits):
        summed = levels.sum(axis=0)  # (C,): the member's logit
        expected = 1 / (1 + np.exp(-summed.astype(np.float64)))
        np.testing.assert_allclose(result.member_probabilities[m], expected, atol=1e-4)


def test_unreadable_files_are_reported_in_order_and_the_rest_go_on(
    films: tuple[Path, list[Path]], tmp_path: Path
) -> None:
    model, paths = films
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all" * 10)
    missing = tmp_path / "missing.dcm"
    order = [paths[0], junk, paths[1], missing, paths[2]]
    progress: list[tuple[int, int]] = []
    service = InferenceService(model, device="cpu", batch_size=2)
    out = list(service.predict_paths(order, progress=lambda d, t: progress.append((d, t))))
    assert len(out) == 5
    failures = [o for o in out if isinstance(o, LoadFailure)]
    assert {f.path for f in failures} == {str(junk), str(missing)}
    for f in failures:
        assert Path(f.path).name in f.error and "\n" not in f.error
    done = [o.path for o in out if isinstance(o, Result)]
    assert done == [str(paths[0]), str(paths[1]), str(paths[2])]
    assert progress[-1] == (5, 5)


def test_cancel_stops_before_the_next_batch(films: tuple[Path, list[Path]]) -> None:
    model, paths = films
    service = InferenceService(model, device="cpu", batch_size=2)
    seen: list[Result | LoadFailure] = []
    for item in service.predict_paths(paths, cancel=lambda: len(seen) >= 2):
        seen.append(item)
    assert len(seen) == 2


def test_cams_only_when_asked_and_the_same_numbers_either_way(
    films: tuple[Path, list[Path]],
) -> None:
    model, paths = films
    service = InferenceService(model, device="cpu", batch_size=2)
    images = [load_image(p) for p in paths[:3]]
    plain = service.predict(images)
    with_cams = service.predict(images, cams=True)
    assert all(r.cams is None for r in plain)
    np.testing.assert_allclose(_probabilities(plain), _probabilities(with_cams), atol=1e-6)
    for r in with_cams:
        assert r.cams is not None and len(r.cams) == len(r.member_levels)
        for member_cams, levels in zip(r.cams, r.member_levels, strict=True):
            assert len(member_cams) == len(levels)
            for level_map in member_cams:
                assert level_map.shape[0] == 26 and level_map.ndim == 3
                assert np.isfinite(level_map).all() and (level_map >= 0).all()  # ReLU'd maps

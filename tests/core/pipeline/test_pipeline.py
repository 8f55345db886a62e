"""The batch pipeline: worker decoding gives the numbers in-process inference gives, in order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fpsm_core.inference import InferenceService, LoadFailure, Result
from fpsm_core.io import load_image
from fpsm_core.pipeline import plan_run, run_pipeline, tune_allocator
from fpsm_core.pipeline.plan import RunPlan, default_batch_size
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("pipeline")
    model = tiny_ensemble(root / "model", n=2, size=64)
    paths = [
        write_dicom(root / f"film{i}.dcm", chest_like(96 + 8 * i, 80, seed=i)) for i in range(7)
    ]
    return model, paths


@pytest.mark.parametrize("workers", [0, 2])
def test_workers_give_the_in_process_numbers_in_input_order(
    films: tuple[Path, list[Path]], tmp_path: Path, workers: int
) -> None:
    model, paths = films
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not a dicom file at all" * 10)
    order = [paths[0], junk, *paths[1:4], tmp_path / "missing.png", *paths[4:]]
    service = InferenceService(model, device="cpu")
    progress: list[tuple[int, int]] = []
    out = list(
        run_pipeline(
            service,
            order,
            RunPlan(batch_size=3, workers=workers, threads=1),
            progress=lambda d, t: progress.append((d, t)),
        )
    )
    assert [o.path for o in out] == [str(p) for p in order]
    failures = [o for o in out if isinstance(o, LoadFailure)]
    assert [Path(f.path).name for f in failures] == ["junk.dcm", "missing.png"]
    assert all(Path(f.path).name in f.error and "\n" not in f.error for f in failures)
    results = [o for o in out if isinstance(o, Result)]
    expected = service.predict([load_image(p) for p in paths])
    np.testing.assert_allclose(
        np.stack([r.probabilities for r in results]),
        np.stack([r.probabilities for r in expected]),
        rtol=0,
        atol=1e-6,
    )
    assert all(r.timing_ms["load"] > 0 for r in results)
    assert progress == [(3, 9), (6, 9), (9, 9)]


def test_cams_come_through_the_workers(films: tuple[Path, list[Path]]) -> None:
    model, paths = films
    service = InferenceService(model, device="cpu")
    out = list(run_pipeline(service, paths[:4], RunPlan(2, 1, 1), cams=True))
    direct = service.predict([load_image(p) for p in paths[:4]], cams=True)
    for a, b in zip(out, direct, strict=True):
        assert isinstance(a, Result) and a.cams is not None and b.cams is not None
        for ma, mb in zip(a.cams, b.cams, strict=True):
            for la, lb in zip(ma, mb, strict=True):
                np.testing.assert_allclose(la, lb, atol=1e-5)


def test_cancel_stops_before_the_next_batch_and_the_workers_end(
    films: tuple[Path, list[Path]],
) -> None:
    model, paths = films
    service = InferenceService(model, device="cpu")
    seen: list[object] = []
    for item in run_pipeline(service, paths, RunPlan(2, 1, 1), cancel=lambda: len(seen) >= 2):
        seen.append(item)
    assert len(seen) == 2
    import multiprocessing

    assert multiprocessing.active_children() == []


@pytest.mark.slow
def test_from_another_thread_the_workers_come_from_a_forkserver(
    films: tuple[Path, list[Path]],
) -> None:
    import threading

    from fpsm_core.pipeline.run import worker_context

    model, paths = films
    service = InferenceService(model, device="cpu")
    seen: dict[str, object] = {}

    def triage_thread() -> None:  # as the viewer's triage worker calls it
        seen["method"] = worker_context().get_start_method()
        seen["out"] = list(run_pipeline(service, paths, RunPlan(3, 1, 1)))

    thread = threading.Thread(target=triage_thread)
    thread.start()
    thread.join()
    assert seen["method"] == "forkserver"
    out = seen["out"]
    assert isinstance(out, list) and [r.path for r in out] == [str(p) for p in paths]
    direct = service.predict([load_image(p) for p in paths])
    np.testing.assert_allclose(
        np.stack([r.probabilities for r in out]),
        np.stack([r.probabilities for r in direct]),
        atol=1e-6,
    )


def test_the_plan_follows_the_device_rules() -> None:
    cpu = plan_run("cpu", 400, cores=2, load=0.0)
    assert cpu == RunPlan(batch_size=8, workers=1, threads=1)
    assert plan_run("cpu", 400, cores=16, load=0.0) == RunPlan(8, 4, 12)
    assert plan_run("cpu", 400, cores=16, load=10.0).threads == 2  # others' load leaves 2 cores
    tiny = plan_run("cpu", 5, cores=16, load=0.0)
    assert (tiny.workers, tiny.batch_size) == (0, 5)  # one batch: no worker start-up, no padding
    assert plan_run("cpu", 5, cores=16, load=0.0, shrink=False).batch_size == 8
    assert plan_run("cuda", 400, cores=16, memory_gib=80) == RunPlan(64, 8, 1)
    assert default_batch_size("cuda", 1024, memory_gib=80) == 16
    assert default_batch_size("cuda", 512, memory_gib=8) == 32
    assert plan_run("cpu", 400, batch_size=2, workers=0, threads=3, cores=2) == RunPlan(2, 0, 3)


def test_the_allocator_is_tuned_on_glibc() -> None:
    import sys

    tuning = tune_allocator()
    if sys.platform.startswith("linux"):
        assert tuning.tuned, tuning.note
    assert tune_allocator() is tuning  # once per process


def test_progress_in_a_log_is_lines_with_rate_and_time_left() -> None:
    import io

    from fpsm_core.pipeline import Progress

    log = io.StringIO()  # not a terminal: plain lines, no bar
    bar = Progress(400, stream=log, every_s=0.0)
    bar.update_to(100, 400)
    bar.update_to(400, 400)
    bar.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("100/400 files, ") and " files/s, ETA " in lines[0]
    assert lines[1].startswith("400/400 files in ")

    quiet = io.StringIO()
    short = Progress(3, stream=quiet)  # a run shorter than the interval says nothing
    short.update_to(3, 3)
    short.close()
    assert quiet.getvalue() == ""

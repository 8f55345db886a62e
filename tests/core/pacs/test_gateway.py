"""``fpsm listen`` against a real Orthanc: triage and send back, refusals, kill -9, SIGTERM."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pydicom
import pytest

from fpsm_core.pacs import Node, PacsError, find, retrieve, store
from tests.core.helpers import chest_like, tiny_ensemble, write_dicom
from tests.core.pacs.gateway_helpers import GatewayProcess, orthanc_push
from tests.core.pacs.pacs_fixtures import (  # noqa: F401  (fixture)
    dciodvfy_errors,
    dcmpschk_passes,
    dsrdump_text,
    free_port,
    orthanc,
)
from tests.core.pacs.test_pacs import SAMPLES, node


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_ensemble(tmp_path_factory.mktemp("gw-model"), n=1)


def _gateway_args(info: dict[str, Any], model: Path, queue: Path, port: int) -> list[str]:
    return [
        "--aet", "FPSMGW", "--port", str(port), "--bind", "127.0.0.1",
        "--model", str(model), "--device", "cpu", "--queue", str(queue),
        "--forward-to", f"{info['aet']}@127.0.0.1:{info['port']}",
    ]  # fmt: skip


def _study_series(pacs: Node, study_uid: str) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for s in find(pacs, "SERIES", StudyInstanceUID=study_uid):
        out.setdefault(str(s.Modality), []).append(s)
    return out


def test_pushed_study_is_triaged_and_results_land_in_orthanc(
    orthanc: dict[str, Any],  # noqa: F811
    model: Path,
    tmp_path: Path,
) -> None:
    pacs = node(orthanc)
    store(pacs, SAMPLES[:1])
    src = pydicom.dcmread(SAMPLES[0], stop_before_pixels=True)
    gw = GatewayProcess(_gateway_args(orthanc, model, tmp_path / "q", orthanc["gateway_port"]))
    try:
        gw.wait_for("listening as FPSMGW")
        answer = orthanc_push(orthanc, "gateway", src.StudyInstanceUID)  # the PACS routes it
        assert answer.get("FailedInstancesCount", 0) == 0
        gw.wait_for("job 1: done")
        # an SR is not a radiograph: refused with 0x0122 (SOP class not supported)
        series = _study_series(pacs, src.StudyInstanceUID)
        assert {"DX", "OT", "SR", "PR"} <= set(series)
        gateway = Node("gw", "FPSMGW", "127.0.0.1", orthanc["gateway_port"])
        sr = retrieve(
            pacs, tmp_path / "back", src.StudyInstanceUID, series["SR"][0].SeriesInstanceUID
        )
        with pytest.raises(PacsError, match=r"refused to store .*status 0x0122"):
            store(gateway, sr.files)
        status = GatewayProcess(["--status", "--queue", str(tmp_path / "q")])
        line = status.wait_for("done")[0]
        assert "0 queued" in line and "1 done" in line and "0 failed" in line
        gw.proc.send_signal(signal.SIGTERM)  # graceful: the queue is kept, status 0
        gw.wait_for("stopped.")
        assert gw.proc.wait(timeout=60) == 0
    finally:
        gw.stop()
    # every object the gateway sent is valid and refers to the film
    for modality in ("OT", "SR", "PR"):
        got = retrieve(pacs, tmp_path / modality, src.StudyInstanceUID,
                       series[modality][0].SeriesInstanceUID)  # fmt: skip
        (path,) = got.files
        assert dciodvfy_errors(path) == [], modality
        ds = pydicom.dcmread(path)
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.PatientID == src.PatientID
        if modality == "PR":
            ok, out = dcmpschk_passes(path)
            assert ok, out
        if modality == "SR":
            assert "Probability" in dsrdump_text(path)


def _films(tmp_path: Path, n: int) -> list[Path]:
    return [
        write_dicom(tmp_path / f"film{i}.dcm", chest_like(128, 112, seed=i), patient=f"GW^{i}")
        for i in range(n)
    ]


def _jobs(queue: Path) -> list[tuple[str, str, int]]:
    with sqlite3.connect(queue / "queue.sqlite") as db:
        return db.execute("SELECT sop_uid, state, runs FROM jobs ORDER BY id").fetchall()


def test_kill_9_mid_queue_loses_nothing_and_sends_nothing_twice(
    orthanc: dict[str, Any],  # noqa: F811
    model: Path,
    tmp_path: Path,
) -> None:
    films = _films(tmp_path, 8)
    port = free_port()
    queue = tmp_path / "q"
    gw = GatewayProcess(_gateway_args(orthanc, model, queue, port))
    try:
        gw.wait_for("listening as FPSMGW")
        gateway = Node("gw", "FPSMGW", "127.0.0.1", port)
        store(gateway, films)  # every success status came after its commit
        gw.wait_for(": done (")
        os.kill(gw.proc.pid, signal.SIGKILL)
        gw.proc.wait()
    finally:
        gw.stop()
    before = _jobs(queue)
    assert len(before) == 8  # all received survived the kill
    assert any(state != "done" for _, state, _ in before), "the kill came after the last job"
    # the modality resends what it is unsure of: acknowledged, not queued twice
    restarted = GatewayProcess(_gateway_args(orthanc, model, queue, port))
    try:
        restarted.wait_for("listening as FPSMGW")
        store(Node("gw", "FPSMGW", "127.0.0.1", port), films[:2])
        pending = sum(state != "done" for _, state, _ in before)
        restarted.wait_for(": done (", count=pending)
    finally:
        assert restarted.stop() == 0
    after = _jobs(queue)
    assert [sop for sop, _, _ in after] == [sop for sop, _, _ in before]
    assert all(state == "done" for _, state, _ in after)
    pacs = node(orthanc)
    for film in films:
        study = pydicom.dcmread(film, stop_before_pixels=True).StudyInstanceUID
        series = _study_series(pacs, study)
        for modality in ("OT", "SR", "PR"):
            assert len(series[modality]) == 1, (film.name, modality)
            images = find(pacs, "IMAGE", StudyInstanceUID=study,
                          SeriesInstanceUID=series[modality][0].SeriesInstanceUID)  # fmt: skip
            assert len(images) == 1, (film.name, modality)


def test_a_full_queue_refuses_with_out_of_resources(model: Path, tmp_path: Path) -> None:
    from fpsm_core.inference import InferenceService
    from fpsm_core.pacs.gateway import Gateway, GatewayConfig

    dead = Node("dead", "NOBODY", "127.0.0.1", free_port(), timeout_s=2)
    port = free_port()
    config = GatewayConfig(
        aet="FPSMGW", port=port, queue_dir=tmp_path / "q", bind="127.0.0.1",
        forward_to=dead, max_jobs=1, retry_delay_s=3600,
    )  # fmt: skip
    lines: list[str] = []
    gateway = Gateway(config, InferenceService(model, device="cpu"), log=lines.append)
    gateway.start()
    try:
        films = _films(tmp_path, 2)
        store(Node("gw", "FPSMGW", "127.0.0.1", port), films[:1])
        with pytest.raises(PacsError, match=r"refused to store .*film1\.dcm \(status 0xA700\)"):
            store(Node("gw", "FPSMGW", "127.0.0.1", port), films[1:])
        assert any("the queue holds 1 jobs, its limit" in ln for ln in lines)
        # a DX data set without pixel data does not match its class: 0xA900, whatever the queue
        empty = pydicom.dcmread(films[1])
        del empty.PixelData
        empty.save_as(tmp_path / "empty.dcm")
        with pytest.raises(PacsError, match=r"refused to store .*empty\.dcm \(status 0xA900\)"):
            store(Node("gw", "FPSMGW", "127.0.0.1", port), [tmp_path / "empty.dcm"])
        with pytest.raises(PacsError, match="rejected the association .*'WRONG'"):
            store(Node("gw", "WRONG", "127.0.0.1", port), films[1:])
    finally:
        gateway.stop(grace_s=5)
    assert [state for _, state, _ in _jobs(tmp_path / "q")] in (
        ["written"],
        ["running"],
        ["queued"],
    )


def test_status_shows_failures_with_their_reasons(
    model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading

    from fpsm_core.cli.main import main
    from fpsm_core.inference import InferenceService
    from fpsm_core.pacs.gateway import Gateway, GatewayConfig

    # a DX whose pixel data is cut short: received (its header is fine), then failed with reason
    broken = write_dicom(tmp_path / "broken.dcm", chest_like(64, 64))
    ds = pydicom.dcmread(broken)
    ds.PixelData = ds.PixelData[:100]
    ds.save_as(broken)
    port = free_port()
    config = GatewayConfig(aet="FPSMGW", port=port, queue_dir=tmp_path / "q", bind="127.0.0.1")
    finished = threading.Event()

    def log(line: str) -> None:
        if line.startswith("job 1: failed") or line.startswith("job 1: done"):
            finished.set()

    gateway = Gateway(config, InferenceService(model, device="cpu"), log=log)
    gateway.start()
    try:
        store(Node("gw", "FPSMGW", "127.0.0.1", port), [broken])
        assert finished.wait(120)
    finally:
        gateway.stop(grace_s=5)
    assert main(["listen", "--status", "--queue", str(tmp_path / "q")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "0 queued" in out[0] and "0 done, 1 failed" in out[0]
    assert out[1].startswith("failed job 1 (") and "from FPSM): " in out[1]
    assert "1.dcm" in out[1]  # the reason names the file it could not read
    # the failed job can be queued again once the cause is fixed
    assert main(["listen", "--retry-failed", "--queue", str(tmp_path / "q")]) == 0
    assert "1 failed job(s) queued again" in capsys.readouterr().out

"""Benchmark of the PACS round trip: retrieve + triage + send back of simulated studies via Orthanc.

Two figures from one run against a real Orthanc on 127.0.0.1 (Debian's ``orthanc``):

1. **Phased loop** (``fpsm_core.pacs`` called study by study, as a script would): C-GET of the
   study, decode (``load_image``), inference with CAMs (``InferenceService.predict``), DICOM
   writing (SC + SR + GSPS, ``write_outputs``), C-STORE of the three objects back. Each phase is
   timed; network = retrieve + send.
2. **Gateway** (``fpsm_core.pacs.gateway`` in this process, as ``fpsm listen`` runs): Orthanc
   pushes every study to it (one REST call, as a routing rule would), the gateway queues,
   triages and sends back; studies/minute from the first push to the last result stored.

Films come from ``fpsm_core.sim`` (``write_dataset(format="dicom")``: one DX study per film).

Run: ``python bench/bench_pacs.py [--studies 100] [--size 256] [--model DIR] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fpsm_core.export import write_outputs  # noqa: E402
from fpsm_core.inference import InferenceService  # noqa: E402
from fpsm_core.io import load_image  # noqa: E402
from fpsm_core.pacs import Node, retrieve, store  # noqa: E402
from fpsm_core.pacs.gateway import Gateway, GatewayConfig  # noqa: E402
from fpsm_core.pacs.queue import JobQueue  # noqa: E402
from fpsm_core.sim import write_dataset  # noqa: E402
from tests.core.pacs.pacs_fixtures import running_orthanc  # noqa: E402


def _post(url: str, body: str) -> object:
    req = urllib.request.Request(url, data=body.encode(), method="POST")
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.loads(r.read())


def phased(
    service: InferenceService, pacs: Node, studies: list[str], work: Path
) -> dict[str, float]:
    times = dict.fromkeys(("retrieve", "decode", "inference", "write", "send"), 0.0)
    for n, study in enumerate(studies):
        t0 = time.perf_counter()
        got = retrieve(pacs, work / "cache", study)
        t1 = time.perf_counter()
        image = load_image(got.files[0])
        t2 = time.perf_counter()
        result = service.predict([image], cams=True)[0]
        t3 = time.perf_counter()
        files = write_outputs(result, image, work / "out" / str(n), ("sc", "sr", "gsps")).files
        t4 = time.perf_counter()
        store(pacs, files.values())
        t5 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
            times[key] += dt
    return times


def gateway_run(service: InferenceService, info: dict, sops: list[str], work: Path) -> float:
    """Orthanc pushes the films (their instances: the studies now hold our results too)."""
    studies = sops
    pacs = Node("orthanc", info["aet"], "127.0.0.1", info["port"])
    config = GatewayConfig(
        aet="FPSMGW",
        port=info["gateway_port"],
        queue_dir=work / "queue",
        bind="127.0.0.1",
        forward_to=pacs,
        max_jobs=len(studies) + 10,
    )
    refused: list[str] = []
    gateway = Gateway(
        config, service, log=lambda line: refused.append(line) if "refused" in line else None
    )
    gateway.start()
    try:
        ids = [_post(f"{info['url']}/tools/lookup", s)[0]["ID"] for s in studies]  # type: ignore[index]
        t0 = time.perf_counter()
        try:
            _post(f"{info['url']}/modalities/gateway/store", json.dumps(ids))
        except OSError as exc:
            log = Path(info["log"]).read_text().splitlines()[-5:]
            raise SystemExit(f"Orthanc's push failed ({exc}): {refused[:3]} {log}") from None
        pushed = time.perf_counter() - t0
        queue = JobQueue(work / "queue", lock=False)
        while True:
            counts = queue.status().counts
            if counts["done"] + counts["failed"] >= len(studies):
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - t0
        queue.close()
        if counts["failed"]:
            print(f"warning: {counts['failed']} gateway jobs failed", file=sys.stderr)
    finally:
        gateway.stop()
    print(f"  push of {len(studies)} studies by Orthanc to the gateway: {pushed:.1f} s")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=100)
    ap.add_argument("--size", type=int, default=256, help="simulated film side in pixels")
    ap.add_argument("--model", help="checkpoint or ensemble (default: the bundled demo model)")
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pacs-", dir=None) as tmp:
        work = Path(tmp)
        write_dataset(work / "sim", n=args.studies, seed=0, format="dicom", size=args.size)
        films = sorted((work / "sim").rglob("*.dcm"))
        service = InferenceService(args.model, device=args.device, batch_size=1)
        print(f"{len(films)} simulated {args.size} px DX films; model {service.identity().get('name')}"
              f" on {service.device}")  # fmt: skip
        with running_orthanc(work / "orthanc") as info:
            pacs = Node("orthanc", info["aet"], "127.0.0.1", info["port"])
            t0 = time.perf_counter()
            store(pacs, films)
            print(f"  setup: C-STORE of the films to Orthanc {time.perf_counter() - t0:.1f} s")
            import pydicom

            studies = [
                str(pydicom.dcmread(f, stop_before_pixels=True).StudyInstanceUID) for f in films
            ]
            service.predict([load_image(films[0])], cams=True)  # warm-up, not counted
            times = phased(service, pacs, studies, work / "phased")
            total = sum(times.values())
            network = times["retrieve"] + times["send"]
            print(f"phased loop: {len(studies)} studies in {total:.1f} s = "
                  f"{60 * len(studies) / total:.1f} studies/min")  # fmt: skip
            for key, value in (("network (C-GET + C-STORE)", network), ("  of which retrieve",
                               times["retrieve"]), ("  of which send", times["send"]),  # fmt: skip
                               ("decode", times["decode"]), ("inference (with CAMs)",
                               times["inference"]), ("DICOM writing (SC+SR+GSPS)", times["write"])):  # fmt: skip
                print(f"  {key:30s} {value:7.1f} s  {100 * value / total:5.1f} %  "
                      f"{1000 * value / len(studies):7.1f} ms/study")  # fmt: skip
            sops = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in films]
            elapsed = gateway_run(service, info, sops, work / "gw")
            print(f"gateway: {len(studies)} studies pushed, triaged and sent back in {elapsed:.1f} s"
                  f" = {60 * len(studies) / elapsed:.1f} studies/min")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The auto-triage gateway: a C-STORE SCP that triages each CR/DX film and sends the results back.

:class:`Gateway` listens as ``aet`` on ``port``. A film of a CR or DX storage class is written to
the durable :class:`~fpsm_core.pacs.queue.JobQueue` (and committed) before its success status
goes out; any other storage class is refused with 0x0122 (SOP class not supported), a data set
that does not match its SOP class with 0xA900, one that cannot be read with 0xC000, and a full
queue with 0xA700 (out of resources), which senders retry later. One worker thread owns the
inference service (GPU when present), writes the chosen DICOM outputs with
:func:`fpsm_core.export.write_outputs` and stores them on the forward node; a send that fails is
retried with a growing delay, then the job is failed with the sentence. :meth:`Gateway.stop`
(SIGTERM in ``fpsm listen``) stops accepting associations, lets the ones open finish, and lets
the worker finish the job in hand; what is still queued waits for the next start.
"""

from __future__ import annotations

import io
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread

from fpsm_core.errors import FpsmError
from fpsm_core.pacs.client import Node, PacsError, store
from fpsm_core.pacs.queue import Job, JobQueue, QueueFull
from fpsm_core.pacs.tls import TlsError, TlsOptions, server_context

ACCEPTED_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",
    "1.2.840.10008.5.1.4.1.1.1.1": "DX for presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX for processing",
}
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATA_SET_MISMATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
Log = Callable[[str], None]


@dataclass(frozen=True)
class GatewayConfig:
    """How the gateway runs.

    Attributes:
        aet: our AE title (the called AE senders must use).
        port: the DIMSE port.
        queue_dir: the durable queue's folder.
        bind: the address to listen on.
        forward_to: where outputs are sent (None: kept in ``queue_dir/outputs``).
        outputs: DICOM output kinds (``sc``, ``sr``, ``gsps``, ``seg``).
        max_jobs, max_bytes, min_free_bytes: the queue's bounds.
        send_attempts: tries of a send before the job fails.
        retry_delay_s: first retry delay, doubled each time.
        tls: TLS for the listener (certificate and key; CA to verify clients).
        max_associations: associations open at once.
        deidentify: de-identify the outputs' patient and study modules.
    """

    aet: str
    port: int
    queue_dir: Path
    bind: str = "0.0.0.0"
    forward_to: Node | None = None
    outputs: tuple[str, ...] = ("sc", "sr", "gsps")
    max_jobs: int = 1000
    max_bytes: int = 2 << 30
    min_free_bytes: int = 256 << 20
    send_attempts: int = 5
    retry_delay_s: float = 5.0
    tls: TlsOptions | None = None
    max_associations: int = 10
    deidentify: bool = False


class Gateway:
    """The C-STORE SCP, the queue and the worker; ``service`` is used only by the worker."""

    def __init__(self, config: GatewayConfig, service: Any, log: Log = print) -> None:
        self.config = config
        self.service = service
        self.log = log
        self.queue = JobQueue(
            config.queue_dir,
            max_jobs=config.max_jobs,
            max_bytes=config.max_bytes,
            min_free_bytes=config.min_free_bytes,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._server: Any = None
        self._worker = threading.Thread(target=self._work_loop, name="fpsm-gateway", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        """Listen and start the worker; PacsError (one sentence) when the port cannot be used."""
        from pynetdicom import AE, evt
        from pynetdicom.presentation import AllStoragePresentationContexts
        from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

        ae = AE(ae_title=self.config.aet)
        ae.require_called_aet = True
        ae.maximum_associations = self.config.max_associations
        ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 60
        # Every storage class is accepted at negotiation so a film of another class gets its
        # proper C-STORE status (0x0122) rather than a bare rejected presentation context.
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        ssl_context = None
        if self.config.tls is not None:
            try:
                ssl_context = server_context(self.config.tls)
            except TlsError as exc:
                raise PacsError(str(exc)) from None
        try:
            self._server = ae.start_server(
                (self.config.bind, self.config.port),
                block=False,
                evt_handlers=[(evt.EVT_C_STORE, self._on_store)],
                ssl_context=ssl_context,
            )
        except OSError as exc:
            self.queue.close()
            raise PacsError(
                f"cannot listen on {self.config.bind}:{self.config.port} ({exc.strerror})."
            ) from None
        self._worker.start()
        self._wake.set()  # work left by a previous run starts at once

    def stop(self, grace_s: float = 30.0) -> None:
        """Stop accepting, let open associations and the job in hand finish, close the queue."""
        import time

        if self._server is not None:
            active = list(self._server.active_associations)
            self._server.shutdown()
            deadline = time.monotonic() + grace_s
            for assoc in active:
                assoc.join(max(0.0, deadline - time.monotonic()))
                if assoc.is_alive():
                    assoc.abort()
        self._stop.set()
        self._wake.set()
        if self._worker.is_alive():
            self._worker.join()
        self.queue.close()

    # -- receiving (association threads) -----------------------------------------------------
    def _on_store(self, event: Any) -> int:
        sop_class = str(event.request.AffectedSOPClassUID)
        sop_uid = str(event.request.AffectedSOPInstanceUID)
        calling = str(event.assoc.requestor.ae_title).strip()
        if sop_class not in ACCEPTED_SOP_CLASSES:
            self.log(f"refused an instance of {_class_name(sop_class)} from {calling}: not CR/DX.")
            return SOP_CLASS_NOT_SUPPORTED
        try:
            data = event.encoded_dataset(include_meta=True)
            header = dcmread(io.BytesIO(data), defer_size=1024)  # pixels are not decoded
        except Exception as exc:  # any decoding failure of a peer's bytes is the peer's
            self.log(f"refused an unreadable instance from {calling} ({exc}).")
            return CANNOT_UNDERSTAND
        if str(header.get("SOPClassUID", "")) != sop_class or "PixelData" not in header:
            return DATA_SET_MISMATCH
        try:
            job_id = self.queue.admit(sop_uid, sop_class, data, calling)
        except QueueFull as exc:
            self.log(f"refused an instance from {calling}: {exc}")
            return OUT_OF_RESOURCES
        except OSError as exc:
            self.log(f"refused an instance from {calling}: the queue cannot be written ({exc}).")
            return OUT_OF_RESOURCES
        if job_id is None:
            self.log(f"an instance from {calling} was already received; acknowledged again.")
        else:
            self.log(f"job {job_id}: received from {calling}.")
            self._wake.set()
        return 0x0000

    # -- working (the worker thread) ---------------------------------------------------------
    def _work_loop(self) -> None:
        while not self._stop.is_set():
            job = self.queue.claim()
            if job is None:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            self._work(job)

    def _work(self, job: Job) -> None:
        try:
            if job.state == "written":
                files = self.queue.output_files(job)
            else:
                files = self._triage(job)
                self.queue.written(job, files)
        except FpsmError as exc:
            self.queue.failed(job, str(exc))
            self.log(f"job {job.id}: failed: {exc}")
            return
        except Exception as exc:  # a bug must not stop the gateway; it is kept with its trace
            traceback.print_exc()
            self.queue.failed(
                job, f"internal error ({type(exc).__name__}: {exc}); please report it."
            )
            self.log(f"job {job.id}: failed with an internal error.")
            return
        forward = self.config.forward_to
        if forward is not None:
            try:
                store(forward, files.values())
            except PacsError as exc:
                if job.attempts + 1 >= self.config.send_attempts:
                    self.queue.failed(job, f"sending the outputs failed: {exc}")
                    self.log(f"job {job.id}: failed: {exc}")
                else:
                    delay = self.config.retry_delay_s * 2**job.attempts
                    self.queue.retry_later(job, str(exc), delay)
                    self.log(f"job {job.id}: sending failed, retrying in {delay:g} s: {exc}")
                return
        self.queue.done(job, keep_outputs=forward is None)
        where = f"sent to {forward}" if forward else f"in {self.queue.outputs / str(job.id)}"
        self.log(f"job {job.id}: done ({', '.join(files)} {where}).")

    def _triage(self, job: Job) -> dict[str, Path]:
        from fpsm_core.export import write_outputs
        from fpsm_core.io import load_image

        image = load_image(job.path)
        result = self.service.predict([image], cams=True)[0]
        written = write_outputs(
            result,
            image,
            self.queue.outputs / str(job.id),
            self.config.outputs,
            deidentify=self.config.deidentify,
            stem=str(job.id),
        )
        for warning in written.warnings:
            self.log(f"job {job.id}: {warning}")
        return written.files


def _class_name(uid: str) -> str:
    from pydicom.uid import UID

    name = UID(uid).name
    return name if name != uid else f"SOP class {uid}"

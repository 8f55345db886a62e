"""C-GET and C-MOVE of a study, a series or one image into a cache folder, whole or not at all.

Instances arrive into a hidden temporary folder inside the destination (hidden folders are skipped
by the study index), each written completely before it counts. Only when the PACS ends the
retrieve with success and no failed sub-operation are they moved, file by file with an atomic
rename, to ``dest/<StudyInstanceUID>/<SOPInstanceUID>.dcm``; a time-out, a refusal, a partial
retrieve or a cancel removes the temporary folder and raises one sentence. ``progress(done, total)``
is called from the caller's thread as the PACS reports sub-operations, and ``cancel()`` is polled
there too, so a Qt worker can drive it as it is.

C-GET brings the instances back on our own association. C-MOVE asks the PACS to open a second
association to us: the PACS must know our AE title with our host and ``move_port``, where this
module runs a storage SCP for the length of the retrieve.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydicom.dataset import Dataset

from fpsm_core.pacs.client import Node, PacsError, connect, new_ae

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
Method = Literal["get", "move"]
_OK = (0x0000,)
_PENDING = (0xFF00, 0xFF01)


class RetrieveCancelled(PacsError):
    """The user cancelled a retrieve; nothing was kept."""


@dataclass(frozen=True)
class Retrieved:
    """What a retrieve kept.

    Attributes:
        folder: ``dest/<StudyInstanceUID>``, the study's cache folder.
        files: the instances written by this retrieve.
    """

    folder: Path
    files: tuple[Path, ...]

    def index(self, cache: Any = None) -> Any:
        """The cache folder through the study index (:func:`fpsm_core.io.index_folder`)."""
        from fpsm_core.io import index_folder

        return index_folder(self.folder, cache)


@dataclass(frozen=True)
class Target:
    """What to retrieve: a study, one of its series, or one image."""

    study_uid: str
    series_uid: str = ""
    sop_uid: str = ""

    @property
    def level(self) -> str:
        return "IMAGE" if self.sop_uid else "SERIES" if self.series_uid else "STUDY"

    def query(self) -> Dataset:
        ds = Dataset()
        ds.QueryRetrieveLevel = self.level
        ds.StudyInstanceUID = self.study_uid
        if self.series_uid or self.sop_uid:
            ds.SeriesInstanceUID = self.series_uid
        if self.sop_uid:
            ds.SOPInstanceUID = self.sop_uid
        return ds

    def __str__(self) -> str:
        uid = self.sop_uid or self.series_uid or self.study_uid
        return f"{self.level.lower()} {uid}"

    def matches(self, ds: Dataset) -> bool:
        return (
            str(ds.get("StudyInstanceUID", "")) == self.study_uid
            and (not self.series_uid or str(ds.get("SeriesInstanceUID", "")) == self.series_uid)
            and (not self.sop_uid or str(ds.get("SOPInstanceUID", "")) == self.sop_uid)
        )


class _Inbox:
    """The temporary folder instances are written into, from the association's thread."""

    def __init__(self, dest: Path, target: Target) -> None:
        dest.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=".retrieve-", dir=dest))
        self.target = target
        self.files: list[Path] = []
        self.refused = 0
        self.lock = threading.Lock()

    def on_store(self, event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        if not self.target.matches(ds):  # not what we asked for: refuse, keep nothing
            with self.lock:
                self.refused += 1
            return 0xA900
        path = self.tmp / f"{ds.SOPInstanceUID}.dcm"
        part = path.with_suffix(".part")
        try:
            ds.save_as(part, enforce_file_format=True)
            os.replace(part, path)
        except OSError:
            part.unlink(missing_ok=True)
            return 0xA700  # out of resources: the PACS counts it as failed
        with self.lock:
            self.files.append(path)
        return 0x0000

    def keep(self, final: Path) -> tuple[Path, ...]:
        final.mkdir(parents=True, exist_ok=True)
        kept = []
        for path in self.files:
            target = final / path.name
            os.replace(path, target)
            kept.append(target)
        return tuple(kept)

    def discard(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def retrieve(
    node: Node,
    dest: str | Path,
    study_uid: str,
    series_uid: str = "",
    sop_uid: str = "",
    *,
    method: Method = "get",
    progress: Progress | None = None,
    cancel: Cancel | None = None,
    bind: str = "0.0.0.0",
) -> Retrieved:
    """Retrieve a study, series or image from ``node`` into ``dest/<StudyInstanceUID>``.

    Args:
        node: the PACS (``node.move_port`` is our storage port for C-MOVE).
        dest: the cache folder (created).
        study_uid, series_uid, sop_uid: what to retrieve; the deepest one given sets the level.
        method: ``get`` (C-GET) or ``move`` (C-MOVE to our own AE title).
        progress: ``progress(done, total)`` as the PACS reports sub-operations.
        cancel: polled between responses; True aborts and keeps nothing.
        bind: the address our C-MOVE storage SCP listens on.

    Raises:
        PacsError: unreachable, refused, nothing found, partial, or cancelled (one sentence).
    """
    if method not in ("get", "move"):
        raise PacsError(f"--method {method!r}: choose get or move.")
    if not study_uid:
        raise PacsError("a retrieve needs a StudyInstanceUID (--study).")
    target = Target(study_uid, series_uid, sop_uid)
    inbox = _Inbox(Path(dest), target)
    try:
        if method == "get":
            final_status, failed = _c_get(node, target, inbox, progress, cancel)
        else:
            final_status, failed = _c_move(node, target, inbox, progress, cancel, bind)
        failed += inbox.refused
        if final_status is None and method == "move":
            # Orthanc drops a C-MOVE from a calling AE it does not list as a modality.
            raise PacsError(
                f"{node} refused or dropped the C-MOVE of {target} (does it know our AE title "
                f"'{node.our_aet}' as a modality with our host and port {node.move_port}?)."
            )
        if final_status is None:
            raise PacsError(f"{node} stopped answering the C-{method.upper()} of {target}.")
        if final_status == 0xA801:
            raise PacsError(
                f"{node} does not know our AE title '{node.our_aet}' as a C-MOVE destination "
                f"(register it there with our host and port {node.move_port})."
            )
        # Orthanc answers an unknown UID with 0xC000 and no sub-operations: nothing matched.
        if not inbox.files and not failed:
            raise PacsError(f"{node} has no instances of {target}.")
        if final_status not in _OK or failed:
            raise PacsError(
                f"{node} retrieved {target} only in part ({len(inbox.files)} received, "
                f"{failed} failed, status 0x{final_status:04X}); nothing was kept."
            )
        kept = inbox.keep(Path(dest) / study_uid)
    finally:
        inbox.discard()
    return Retrieved(Path(dest) / study_uid, kept)


def _responses(
    node: Node,
    assoc: Any,
    responses: Any,
    target: Target,
    progress: Progress | None,
    cancel: Cancel | None,
) -> tuple[int | None, int]:
    """Walk the C-GET/C-MOVE responses: (final status, failed sub-operations)."""
    final: int | None = None
    failed = 0
    for status, _identifier in responses:
        if cancel is not None and cancel():
            assoc.abort()
            raise RetrieveCancelled(
                f"the retrieve of {target} from {node} was cancelled; nothing was kept."
            )
        if not status:
            return None, failed
        final = int(status.Status)
        failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
        done = sum(
            int(status.get(k, 0) or 0)
            for k in (
                "NumberOfCompletedSuboperations",
                "NumberOfFailedSuboperations",
                "NumberOfWarningSuboperations",
            )
        )
        remaining = int(status.get("NumberOfRemainingSuboperations", 0) or 0)
        if progress is not None and (done or remaining):
            progress(done, done + remaining)
    return final, failed


def _c_get(
    node: Node, target: Target, inbox: _Inbox, progress: Progress | None, cancel: Cancel | None
) -> tuple[int | None, int]:
    from pynetdicom import build_role, evt
    from pynetdicom.presentation import StoragePresentationContexts
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
    )

    ae = new_ae(node)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    # C-GET brings instances back on the same association: we are their storage SCP. 127 of
    # the 128 presentation contexts an association may carry are storage classes.
    storage = [str(cx.abstract_syntax) for cx in StoragePresentationContexts][:127]
    for uid in storage:
        ae.add_requested_context(uid)
    roles: list[Any] = [build_role(uid, scp_role=True) for uid in storage]
    assoc = connect(ae, node, ext_neg=roles, evt_handlers=[(evt.EVT_C_STORE, inbox.on_store)])
    try:
        responses = assoc.send_c_get(target.query(), StudyRootQueryRetrieveInformationModelGet)
        return _responses(node, assoc, responses, target, progress, cancel)
    finally:
        if assoc.is_established:
            assoc.release()


def _c_move(
    node: Node,
    target: Target,
    inbox: _Inbox,
    progress: Progress | None,
    cancel: Cancel | None,
    bind: str,
) -> tuple[int | None, int]:
    from pynetdicom import evt
    from pynetdicom.presentation import AllStoragePresentationContexts
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelMove,
    )

    if not node.move_port:
        raise PacsError(
            f"a C-MOVE from {node} needs the port our storage SCP listens on (--move-port, or "
            "'move_port' in the nodes file), registered with our AE title at the PACS."
        )
    scp = new_ae(node)
    scp.supported_contexts = AllStoragePresentationContexts
    try:
        server = scp.start_server(
            (bind, node.move_port),
            block=False,
            evt_handlers=[(evt.EVT_C_STORE, inbox.on_store)],
        )
    except OSError as exc:
        raise PacsError(
            f"cannot listen on {bind}:{node.move_port} for the C-MOVE ({exc.strerror})."
        ) from None
    try:
        ae = new_ae(node)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
        assoc = connect(ae, node)
        try:
            responses = assoc.send_c_move(
                target.query(), node.our_aet, StudyRootQueryRetrieveInformationModelMove
            )
            return _responses(node, assoc, responses, target, progress, cancel)
        finally:
            if assoc.is_established:
                assoc.release()
    finally:
        server.shutdown()


def get(node: Node, dest: str | Path, study_uid: str) -> Path:
    """C-GET a whole study into ``dest/<StudyInstanceUID>`` (see :func:`retrieve`)."""
    return retrieve(node, dest, study_uid).folder

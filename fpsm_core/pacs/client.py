"""DIMSE verbs against one node, each a single association with bounded time-outs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fpsm_core.errors import FpsmError

DEFAULT_AET = "FPSM"
TIMEOUT_S = 10.0
LEVELS = ("STUDY", "SERIES", "IMAGE")


class PacsError(FpsmError):
    """A PACS operation failed; one sentence naming the node and what went wrong."""


@dataclass(frozen=True)
class Node:
    """A remote DICOM application entity.

    Attributes:
        name: how the user calls it (``orthanc``), or ``AET@HOST:PORT`` for an inline node.
        aet: its AE title (called AE).
        host: host name or address.
        port: DIMSE port.
        our_aet: our AE title (calling AE).
        timeout_s: time-out for connecting, DIMSE and ACSE messages.
    """

    name: str
    aet: str
    host: str
    port: int
    our_aet: str = DEFAULT_AET
    timeout_s: float = TIMEOUT_S

    def __str__(self) -> str:
        return f"{self.name} ({self.aet}@{self.host}:{self.port})"


def load_nodes(path: str | Path) -> dict[str, Node]:
    """Nodes from a JSON file ``{"nodes": {"name": {"aet", "host", "port", ...}}}``."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        entries: Mapping[str, Any] = raw.get("nodes", raw)
        return {
            name: Node(
                name=name,
                aet=str(e["aet"]),
                host=str(e["host"]),
                port=int(e["port"]),
                our_aet=str(e.get("our_aet", DEFAULT_AET)),
                timeout_s=float(e.get("timeout_s", TIMEOUT_S)),
            )
            for name, e in entries.items()
        }
    except FileNotFoundError:
        raise PacsError(f"the nodes file {p} does not exist.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PacsError(f"the nodes file {p} is not a valid node list ({exc}).") from None


def _associate(node: Node, contexts: Iterable[str | tuple[str, list[str]]]) -> Any:
    from pynetdicom import AE

    ae = AE(ae_title=node.our_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.aet)
    except (OSError, ValueError) as exc:
        raise PacsError(f"cannot reach {node}: {exc}.") from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(
            f"{node} rejected the association (is '{node.aet}' its AE title, and does it "
            f"know ours, '{node.our_aet}'?)."
        )
    raise PacsError(f"cannot reach {node}: no answer within {node.timeout_s:g} s or refused.")


def echo(node: Node) -> None:
    """C-ECHO; raises PacsError unless the node answers with status Success."""
    from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

    assoc = _associate(node, [Verification])
    try:
        status = assoc.send_c_echo()
    finally:
        assoc.release()
    if not status or status.Status != 0:
        raise PacsError(f"{node} did not answer the C-ECHO with success.")


def store(node: Node, paths: Iterable[str | Path]) -> list[str]:
    """C-STORE the files; returns their SOP Instance UIDs. A non-DICOM file is one sentence."""
    datasets: list[tuple[Path, Dataset]] = []
    for raw in paths:
        path = Path(raw)
        try:
            datasets.append((path, dcmread(path)))
        except (InvalidDicomError, OSError) as exc:
            raise PacsError(f"{path} is not a DICOM file that can be sent ({exc}).") from None
    from pynetdicom import AE  # noqa: F401  (import errors surface before the network)

    # Offer each file's own transfer syntax (a JPEG-LS film is sent as it is) and the defaults.
    syntaxes: dict[str, set[str]] = {}
    for _, ds in datasets:
        ts = str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", ""))
        syntaxes.setdefault(str(ds.SOPClassUID), set()).update(
            {ts, ExplicitVRLittleEndian, ImplicitVRLittleEndian} - {""}
        )
    assoc = _associate(node, [(uid, sorted(ts)) for uid, ts in sorted(syntaxes.items())])
    sent: list[str] = []
    try:
        for path, ds in datasets:
            try:
                status = _send(assoc, ds)
            except ValueError:
                raise PacsError(
                    f"{node} does not accept {path} ({ds.SOPClassUID.name} in "
                    f"{ds.file_meta.TransferSyntaxUID.name})."
                ) from None
            if not status or status.Status not in (0x0000, 0xB000, 0xB007, 0xB006):
                code = f"0x{status.Status:04X}" if status else "none"
                raise PacsError(f"{node} refused to store {path} (status {code}).")
            sent.append(str(ds.SOPInstanceUID))
    finally:
        assoc.release()
    return sent


def _send(assoc: Any, ds: Dataset) -> Any:
    """C-STORE as stored; a peer refusing a compressed syntax gets it decompressed."""
    try:
        return assoc.send_c_store(ds)
    except ValueError:
        if not ds.file_meta.TransferSyntaxUID.is_compressed:
            raise
        ds.decompress(
            generate_instance_uid=False
        )  # lossless: the same instance; pyjpegls/pylibjpeg decode it, Explicit VR Little Endian is sent
        return assoc.send_c_store(ds)


def find(
    node: Node,
    level: str = "STUDY",
    **keys: str,
) -> list[Dataset]:
    """C-FIND (Study Root) at STUDY, SERIES or IMAGE level; ``keys`` are DICOM keywords.

    Example: ``find(node, "STUDY", PatientID="123", StudyDate="20240101-20241231",
    ModalitiesInStudy="DX")``. Return keys the results should carry may be given empty.
    """
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelFind,
    )

    level = level.upper()
    if level not in LEVELS:
        raise PacsError(f"--level {level!r}: choose STUDY, SERIES or IMAGE.")
    query = Dataset()
    query.QueryRetrieveLevel = level
    defaults = {"StudyInstanceUID": "", "PatientID": "", "PatientName": "", "StudyDate": ""}
    if level in ("SERIES", "IMAGE"):
        defaults |= {"SeriesInstanceUID": "", "Modality": "", "BodyPartExamined": ""}
    if level == "IMAGE":
        defaults |= {"SOPInstanceUID": "", "SOPClassUID": ""}
    else:
        defaults |= {"AccessionNumber": ""}
    for keyword, value in (defaults | keys).items():
        try:
            setattr(query, keyword, value)
        except (ValueError, TypeError) as exc:
            raise PacsError(f"cannot query on {keyword}={value!r}: {exc}.") from None
    assoc = _associate(node, [StudyRootQueryRetrieveInformationModelFind])
    out: list[Dataset] = []
    try:
        for status, identifier in assoc.send_c_find(
            query, StudyRootQueryRetrieveInformationModelFind
        ):
            if not status:
                raise PacsError(f"{node} stopped answering the C-FIND.")
            if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                out.append(identifier)
            elif status.Status != 0:
                raise PacsError(f"{node} failed the C-FIND (status 0x{status.Status:04X}).")
    finally:
        assoc.release()
    return out


def get(node: Node, dest: str | Path, study_uid: str) -> Path:
    """C-GET a study into ``dest/<StudyInstanceUID>``; nothing appears there unless all came.

    Instances are received into a temporary folder inside ``dest`` and the folder is renamed
    when the C-GET ends with success; a failed or partial retrieve removes it.
    """
    import shutil
    import tempfile

    from pynetdicom import build_role, evt
    from pynetdicom.presentation import StoragePresentationContexts
    from pynetdicom.sop_class import (  # type: ignore[attr-defined]
        StudyRootQueryRetrieveInformationModelGet,
    )

    out = Path(dest)
    final = out / study_uid
    if final.exists():
        raise PacsError(f"{final} already exists; remove it or choose another destination.")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".retrieve-", dir=out))
    received: list[Path] = []

    def on_store(event: Any) -> int:
        ds = event.dataset
        ds.file_meta = event.file_meta
        path = tmp / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        received.append(path)
        return 0x0000

    from pynetdicom import AE

    ae = AE(ae_title=node.our_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    # C-GET brings instances back on the same association: we are their storage SCP.
    storage = [str(cx.abstract_syntax) for cx in StoragePresentationContexts][:120]
    for uid in storage:
        ae.add_requested_context(uid)
    roles: list[Any] = [build_role(uid, scp_role=True) for uid in storage]
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = study_uid
    ok = False
    try:
        assoc = ae.associate(
            node.host,
            node.port,
            ae_title=node.aet,
            ext_neg=roles,
            evt_handlers=[(evt.EVT_C_STORE, on_store)],
        )
        if not assoc.is_established:
            raise PacsError(f"cannot reach {node} for a C-GET (refused or no answer).")
        failed = 0
        final_status = None
        try:
            for status, _identifier in assoc.send_c_get(
                query, StudyRootQueryRetrieveInformationModelGet
            ):
                if status:
                    final_status = status.Status
                    failed = int(getattr(status, "NumberOfFailedSuboperations", 0) or 0)
        finally:
            assoc.release()
        if final_status is None:
            raise PacsError(f"{node} stopped answering the C-GET of study {study_uid}.")
        if not received and not failed:
            raise PacsError(f"{node} has no instances of study {study_uid}.")
        if final_status != 0 or failed:
            raise PacsError(
                f"{node} retrieved study {study_uid} only in part ({len(received)} received, "
                f"{failed} failed, status 0x{final_status:04X}); nothing was kept."
            )
        tmp.rename(final)
        ok = True
    finally:
        if not ok:
            shutil.rmtree(tmp, ignore_errors=True)
    return final

"""DIMSE verbs against one node, each a single association with bounded time-outs.

A node may also carry a DICOMweb base URL (``url``) and TLS options, for DIMSE (``tls``) and for
HTTPS (``https``); :func:`load_nodes` reads them from the nodes file and :func:`parse_node`
reads an inline ``AET@HOST:PORT``.
"""

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
from fpsm_core.pacs.tls import TlsError, TlsOptions, client_context, handshake_sentence

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
        url: DICOMweb base URL (``http://host:8042/dicom-web``), empty when it has none.
        tls: TLS options of the DIMSE association (None: plain TCP).
        https: TLS options of the DICOMweb connection (CA bundle, client certificate).
        move_port: the port our storage SCP listens on for C-MOVE (the PACS must know our AE
            title at this host and port); 0 = C-MOVE not configured.
    """

    name: str
    aet: str
    host: str
    port: int
    our_aet: str = DEFAULT_AET
    timeout_s: float = TIMEOUT_S
    url: str = ""
    tls: TlsOptions | None = None
    https: TlsOptions | None = None
    move_port: int = 0

    @property
    def has_dimse(self) -> bool:
        return bool(self.host and self.port and self.aet)

    def __str__(self) -> str:
        if not self.has_dimse:
            return f"{self.name} ({self.url})"
        return f"{self.name} ({self.aet}@{self.host}:{self.port})"


def parse_node(text: str, our_aet: str = DEFAULT_AET, timeout_s: float = TIMEOUT_S) -> Node:
    """An inline node ``AET@HOST:PORT``; one sentence when it is not of that form."""
    aet, at, rest = text.partition("@")
    host, colon, port = rest.rpartition(":")
    if not (at and colon and aet and host and port.isdigit() and 0 < int(port) < 65536):
        raise PacsError(f"{text!r} is not a node name or AET@HOST:PORT.")
    return Node(text, aet, host, int(port), our_aet, timeout_s)


def _entry(name: str, e: Mapping[str, Any], where: str) -> Node:
    url = str(e.get("url", ""))
    if not url and not all(k in e for k in ("aet", "host", "port")):
        raise KeyError(f"node '{name}' needs aet, host and port, or a url")
    port = int(e.get("port", 0))
    move_port = int(e.get("move_port", 0))
    if not (0 <= port < 65536 and 0 <= move_port < 65536):
        raise ValueError(f"node '{name}' has a port outside 1-65535")
    return Node(
        name=name,
        aet=str(e.get("aet", "")),
        host=str(e.get("host", "")),
        port=port,
        our_aet=str(e.get("our_aet", DEFAULT_AET)),
        timeout_s=float(e.get("timeout_s", TIMEOUT_S)),
        url=url.rstrip("/"),
        tls=TlsOptions.from_mapping(e["tls"], f"{where}, node '{name}'") if "tls" in e else None,
        https=(
            TlsOptions.from_mapping(e["https"], f"{where}, node '{name}'") if "https" in e else None
        ),
        move_port=move_port,
    )


def load_nodes(path: str | Path) -> dict[str, Node]:
    """Nodes from a JSON file ``{"nodes": {"name": {"aet", "host", "port", ...}}}``.

    An entry has ``aet``, ``host`` and ``port`` (DIMSE) and/or ``url`` (DICOMweb), and optionally
    ``our_aet``, ``timeout_s``, ``move_port``, ``tls`` and ``https`` (each ``{"ca", "cert",
    "key", "check_hostname"}``).
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        entries: Mapping[str, Any] = raw.get("nodes", raw)
        return {name: _entry(name, e, str(p)) for name, e in entries.items()}
    except FileNotFoundError:
        raise PacsError(f"the nodes file {p} does not exist.") from None
    except TlsError as exc:
        raise PacsError(str(exc)) from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PacsError(f"the nodes file {p} is not a valid node list ({exc}).") from None


def new_ae(node: Node) -> Any:
    """A pynetdicom AE calling as ``node.our_aet`` with the node's time-outs."""
    from pynetdicom import AE

    ae = AE(ae_title=node.our_aet)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = node.timeout_s
    ae.connection_timeout = node.timeout_s
    return ae


def connect(ae: Any, node: Node, **kwargs: Any) -> Any:
    """Associate ``ae`` with the node (TLS when configured); PacsError unless established."""
    if not node.has_dimse:
        raise PacsError(f"{node} has no DIMSE address (aet, host, port); use its DICOMweb url.")
    tls_args = None
    if node.tls is not None:
        try:
            tls_args = (client_context(node.tls), node.host)
        except TlsError as exc:
            raise PacsError(str(exc)) from None
    try:
        assoc = ae.associate(node.host, node.port, ae_title=node.aet, tls_args=tls_args, **kwargs)
    except (OSError, ValueError) as exc:
        raise PacsError(f"cannot reach {node}: {exc}.") from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        raise PacsError(
            f"{node} rejected the association (is '{node.aet}' its AE title, and does it "
            f"know ours, '{node.our_aet}'?)."
        )
    if tls_args is not None:
        _diagnose_tls(node, tls_args[0])
    raise PacsError(f"cannot reach {node}: no answer within {node.timeout_s:g} s or refused.")


def _diagnose_tls(node: Node, ctx: Any) -> None:
    """After a failed TLS association: say so when it was the handshake that failed."""
    import socket
    import ssl

    try:
        with socket.create_connection((node.host, node.port), timeout=node.timeout_s) as raw:
            with ctx.wrap_socket(raw, server_hostname=node.host):
                pass
    except ssl.SSLError as exc:
        raise PacsError(handshake_sentence(str(node), exc)) from None
    except OSError:
        return


def _associate(node: Node, contexts: Iterable[str | tuple[str, list[str]]]) -> Any:
    ae = new_ae(node)
    for context in contexts:
        if isinstance(context, tuple):
            ae.add_requested_context(*context)
        else:
            ae.add_requested_context(context)
    return connect(ae, node)


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
                # The empty status comes before the association's thread has noted the abort.
                assoc.join(timeout=2.0)
                if assoc.is_aborted:
                    # Orthanc, for one, aborts a query from a calling AE title it does not list.
                    raise PacsError(
                        f"{node} aborted the C-FIND (does it allow queries from our AE title "
                        f"'{node.our_aet}'? Orthanc needs it in DicomModalities)."
                    )
                raise PacsError(f"{node} stopped answering the C-FIND.")
            if status.Status in (0xFF00, 0xFF01) and identifier is not None:
                out.append(identifier)
            elif status.Status != 0:
                raise PacsError(f"{node} failed the C-FIND (status 0x{status.Status:04X}).")
    finally:
        assoc.release()
    return out

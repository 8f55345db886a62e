"""Talking to a PACS over DIMSE (pynetdicom) and DICOMweb (dicomweb-client), and the gateway.

A :class:`Node` names a remote application entity (AE title, host, port, DICOMweb url, TLS
options); :func:`echo`, :func:`store`, :func:`find` and :func:`retrieve` (C-GET or C-MOVE) open
one association each, with bounded time-outs, and turn every network failure (refused, timed out,
unknown AE title, rejected payload, partial retrieve) into a :class:`PacsError` of one sentence
naming the node. :mod:`.dicomweb` offers the same verbs over QIDO-RS, WADO-RS and STOW-RS;
:mod:`.gateway` is the ``fpsm listen`` auto-triage C-STORE SCP on the durable :mod:`.queue`.
"""

from fpsm_core.pacs.client import (
    Node,
    PacsError,
    echo,
    find,
    load_nodes,
    parse_node,
    store,
)
from fpsm_core.pacs.retrieve import RetrieveCancelled, Retrieved, get, retrieve
from fpsm_core.pacs.tls import TlsError, TlsOptions

__all__ = [
    "Node",
    "PacsError",
    "RetrieveCancelled",
    "Retrieved",
    "TlsError",
    "TlsOptions",
    "echo",
    "find",
    "get",
    "load_nodes",
    "parse_node",
    "retrieve",
    "store",
]

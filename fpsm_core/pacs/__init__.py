"""Talking to a PACS over DIMSE (pynetdicom): nodes, C-ECHO, C-STORE and C-FIND.

A :class:`Node` names a remote application entity (AE title, host, port); :func:`echo`,
:func:`store` and :func:`find` open one association each, with bounded time-outs, and turn every
network failure (refused, timed out, unknown AE title, rejected payload) into a :class:`PacsError`
of one sentence naming the node.
"""

from fpsm_core.pacs.client import Node, PacsError, echo, find, get, load_nodes, store

__all__ = ["Node", "PacsError", "echo", "find", "get", "load_nodes", "store"]

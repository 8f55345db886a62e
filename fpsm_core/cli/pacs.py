"""``fpsm pacs nodes|echo|find|get|send``: a PACS from the command line, DIMSE or DICOMweb.

A node is a name from ``--nodes FILE`` (JSON, see docs/pacs.md) or given inline with
``--host H --port P --aec AET [--aet OURS]`` (DIMSE) or ``--url URL`` (DICOMweb), with TLS
options (``--tls-ca``, ``--tls-cert``, ``--tls-key``) for either. A named node that has both a
DIMSE address and a url is reached over DIMSE unless ``--dicomweb`` is given. Each failure is one
line naming the node.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from fpsm_core.cli.options import number, whole


def _node_options(p: argparse.ArgumentParser, *, web: bool = True) -> None:
    p.add_argument("node", nargs="?", help="a node name from --nodes")
    p.add_argument("--nodes", type=Path, help="JSON file of nodes")
    p.add_argument("--host", help="inline node: host")
    p.add_argument("--port", type=whole(1, 65535), help="inline node: DIMSE port")
    p.add_argument("--aec", help="inline node: its AE title (called)")
    p.add_argument("--aet", default=None, help="our AE title (calling; default FPSM)")
    p.add_argument(
        "--timeout", type=number(0, low_open=True), default=None, help="seconds (default 10)"
    )
    p.add_argument("--tls-ca", type=Path, help="TLS: CA bundle (PEM) to trust")
    p.add_argument("--tls-cert", type=Path, help="TLS: our certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="TLS: our private key (PEM)")
    p.add_argument(
        "--no-check-hostname",
        action="store_true",
        help="TLS: accept a certificate for another name",
    )
    if web:
        p.add_argument(
            "--url", help="inline node: DICOMweb base URL (http(s)://host:port/dicom-web)"
        )
        p.add_argument(
            "--dicomweb", action="store_true", help="use the node's DICOMweb url, not DIMSE"
        )


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("pacs", help="query, retrieve from and send to a PACS")
    sub = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    nodes = sub.add_parser("nodes", help="list the configured nodes")
    nodes.add_argument("--nodes", type=Path, required=True, help="JSON file of nodes")
    _node_options(sub.add_parser("echo", help="C-ECHO a node"), web=False)
    find = sub.add_parser("find", help="C-FIND / QIDO-RS studies, series or images")
    _node_options(find)
    find.add_argument("--level", default="STUDY", help="STUDY, SERIES or IMAGE")
    for flag, keyword in _FIND_KEYS.items():
        find.add_argument(f"--{flag}", dest=keyword, help=f"match {keyword}")
    get = sub.add_parser("get", help="retrieve a study, series or image (C-GET, C-MOVE, WADO-RS)")
    _node_options(get)
    get.add_argument("--study", required=True, help="StudyInstanceUID")
    get.add_argument("--series", default="", help="SeriesInstanceUID (series or image level)")
    get.add_argument("--image", default="", help="SOPInstanceUID (image level; needs --series)")
    get.add_argument("--out", type=Path, required=True, metavar="DIR", help="cache folder")
    get.add_argument("--method", default="get", choices=("get", "move"), help="C-GET or C-MOVE")
    get.add_argument(
        "--move-port", type=whole(1, 65535), help="C-MOVE: the port our storage SCP listens on"
    )
    get.add_argument("--bind", default="0.0.0.0", help="C-MOVE: the address it listens on")
    send = sub.add_parser("send", help="C-STORE / STOW-RS DICOM files to a node")
    _node_options(send)
    send.add_argument("files", nargs="+", type=Path, metavar="FILE", help="DICOM files to send")
    p.set_defaults(func=run)


_FIND_KEYS = {
    "patient-id": "PatientID",
    "patient-name": "PatientName",
    "accession": "AccessionNumber",
    "date": "StudyDate",
    "modality": "Modality",
    "body-part": "BodyPartExamined",
    "study": "StudyInstanceUID",
    "series": "SeriesInstanceUID",
}
_COLUMNS = (
    "PatientID",
    "StudyDate",
    "AccessionNumber",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "SOPInstanceUID",
)


def _tls(args: argparse.Namespace) -> Any:
    from fpsm_core.pacs import TlsOptions

    if not (args.tls_ca or args.tls_cert or args.tls_key or args.no_check_hostname):
        return None
    if args.tls_key and not args.tls_cert:
        from fpsm_core.cli.main import CLIError

        raise CLIError("--tls-key needs --tls-cert.")
    return TlsOptions(args.tls_ca, args.tls_cert, args.tls_key, not args.no_check_hostname)


def node_from_args(args: argparse.Namespace) -> Any:
    """The node the options name (inline or from --nodes), with the options' overrides."""
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs import Node, load_nodes

    url = getattr(args, "url", None)
    tls = _tls(args)
    if args.host or args.port or args.aec:
        if not (args.host and args.port and args.aec):
            raise CLIError("an inline node needs all of --host, --port and --aec.")
        name = f"{args.aec}@{args.host}:{args.port}"
        node = Node(name, args.aec, args.host, args.port, tls=tls)
    elif url:
        node = Node(url, "", "", 0, url=url.rstrip("/"), https=tls)
    else:
        if not args.node or args.nodes is None:
            raise CLIError(
                "name a node from --nodes FILE, or give --host, --port and --aec, or --url."
            )
        nodes = load_nodes(args.nodes)
        if args.node not in nodes:
            raise CLIError(f"{args.nodes} has no node '{args.node}' (it has {', '.join(nodes)}).")
        node = nodes[args.node]
        if tls is not None:
            node = replace(node, tls=tls) if not _web(args, node) else replace(node, https=tls)
    overrides: dict[str, Any] = {}
    if args.aet:
        overrides["our_aet"] = args.aet
    if args.timeout:
        overrides["timeout_s"] = args.timeout
    if getattr(args, "move_port", None):
        overrides["move_port"] = args.move_port
    return replace(node, **overrides) if overrides else node


def _web(args: argparse.Namespace, node: Any) -> bool:
    return bool(node.url) and (not node.has_dimse or bool(getattr(args, "dicomweb", False)))


class _Progress:
    """``done/total`` on stderr, rewritten in place on a terminal, a line per step otherwise."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.tty = sys.stderr.isatty()
        self.last = (-1, -1)

    def __call__(self, done: int, total: int) -> None:
        if (done, total) == self.last:
            return
        self.last = (done, total)
        end = "\r" if self.tty and done < total else "\n"
        print(f"{self.what}: {done}/{total}", end=end, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs import (
        PacsError,
        TlsError,
        dicomweb,
        echo,
        find,
        load_nodes,
        retrieve,
        store,
    )

    try:
        if args.pacs_command == "nodes":
            for node in load_nodes(args.nodes).values():
                extra = f" DICOMweb {node.url}" if node.url and node.has_dimse else ""
                tls = " TLS" if node.tls or node.https else ""
                print(f"{node}{extra}{tls}")
            return 0
        node = node_from_args(args)
        web = _web(args, node)
        if args.pacs_command == "echo":
            echo(node)
            print(f"{node}: C-ECHO succeeded.")
        elif args.pacs_command == "find":
            keys = {k: v for k, v in vars(args).items() if k in _FIND_KEYS.values() and v}
            if "Modality" in keys and args.level.upper() == "STUDY":
                keys["ModalitiesInStudy"] = keys.pop("Modality")
            found = (dicomweb.search if web else find)(node, args.level, **keys)
            for ds in found:
                print("\t".join(str(ds.get(k, "")) for k in _COLUMNS if k in ds))
        elif args.pacs_command == "get":
            if args.image and not args.series:
                raise CLIError("--image needs --series (the image's SeriesInstanceUID).")
            progress = _Progress(f"retrieving from {node.name}")
            if web:
                got = dicomweb.retrieve(
                    node, args.out, args.study, args.series, args.image, progress=progress
                )
            else:
                got = retrieve(
                    node,
                    args.out,
                    args.study,
                    args.series,
                    args.image,
                    method=args.method,
                    progress=progress,
                    bind=args.bind,
                )
            print(f"{node}: retrieved {len(got.files)} instance(s) into {got.folder}.")
        elif args.pacs_command == "send":
            sent = (dicomweb.store if web else store)(node, args.files)
            print(f"{node}: stored {len(sent)} instance(s).")
    except (PacsError, TlsError) as exc:
        raise CLIError(str(exc)) from None
    return 0

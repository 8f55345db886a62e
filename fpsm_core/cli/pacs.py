"""``fpsm pacs nodes|echo|find|send``: a PACS from the command line.

A node is a name from ``--nodes FILE`` (JSON, see docs/pacs.md) or given inline with
``--host H --port P --aec AET [--aet OURS]``. Each failure is one line naming the node.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def _node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", nargs="?", help="a node name from --nodes")
    p.add_argument("--nodes", type=Path, help="JSON file of nodes")
    p.add_argument("--host", help="inline node: host")
    p.add_argument("--port", type=int, help="inline node: DIMSE port")
    p.add_argument("--aec", help="inline node: its AE title (called)")
    p.add_argument("--aet", default="FPSM", help="our AE title (calling; default FPSM)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds (default 10)")


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("pacs", help="query and send to a PACS (DIMSE)")
    sub = p.add_subparsers(dest="pacs_command", metavar="ACTION", required=True)
    nodes = sub.add_parser("nodes", help="list the configured nodes")
    nodes.add_argument("--nodes", type=Path, required=True, help="JSON file of nodes")
    _node_options(sub.add_parser("echo", help="C-ECHO a node"))
    find = sub.add_parser("find", help="C-FIND studies, series or images")
    _node_options(find)
    find.add_argument("--level", default="STUDY", help="STUDY, SERIES or IMAGE")
    for flag, keyword in _FIND_KEYS.items():
        find.add_argument(f"--{flag}", dest=keyword, help=f"match {keyword}")
    send = sub.add_parser("send", help="C-STORE DICOM files to a node")
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


def _node(args: argparse.Namespace) -> Any:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs import Node, load_nodes

    if args.host or args.port or args.aec:
        if not (args.host and args.port and args.aec):
            raise CLIError("an inline node needs all of --host, --port and --aec.")
        name = f"{args.aec}@{args.host}:{args.port}"
        return Node(name, args.aec, args.host, args.port, args.aet, args.timeout)
    if not args.node or args.nodes is None:
        raise CLIError("name a node from --nodes FILE, or give --host, --port and --aec.")
    nodes = load_nodes(args.nodes)
    if args.node not in nodes:
        raise CLIError(f"{args.nodes} has no node '{args.node}' (it has {', '.join(nodes)}).")
    return nodes[args.node]


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs import PacsError, echo, find, load_nodes, store

    try:
        if args.pacs_command == "nodes":
            for node in load_nodes(args.nodes).values():
                print(node)
            return 0
        node = _node(args)
        if args.pacs_command == "echo":
            echo(node)
            print(f"{node}: C-ECHO succeeded.")
        elif args.pacs_command == "find":
            keys = {k: v for k, v in vars(args).items() if k in _FIND_KEYS.values() and v}
            if "Modality" in keys and args.level.upper() == "STUDY":
                keys["ModalitiesInStudy"] = keys.pop("Modality")
            for ds in find(node, args.level, **keys):
                print(
                    "\t".join(
                        str(ds.get(k, ""))
                        for k in (
                            "PatientID",
                            "StudyDate",
                            "AccessionNumber",
                            "StudyInstanceUID",
                            "SeriesInstanceUID",
                            "Modality",
                            "SOPInstanceUID",
                        )
                        if k in ds
                    )
                )
        elif args.pacs_command == "send":
            sent = store(node, args.files)
            print(f"{node}: stored {len(sent)} instance(s).")
    except PacsError as exc:
        raise CLIError(str(exc)) from None
    return 0

"""``fpsm listen``: the auto-triage gateway, and ``fpsm listen --status`` for its queue.

``fpsm listen --aet FPSM --port 11112 [--model M] [--forward-to NODE] [--outputs sc,sr,gsps]
[--queue DIR]`` receives CR/DX films by C-STORE into a durable queue, triages each in a worker
and sends the DICOM outputs to NODE (a name from ``--nodes`` or ``AET@HOST:PORT``). SIGTERM or
Ctrl-C stops it gracefully: no new associations, the open ones and the job in hand finish, and
the rest of the queue waits for the next start. ``--status`` prints the queue's counts and its
failures with their reasons, and works while a gateway runs.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fpsm_core.cli.options import whole


def default_queue_dir() -> Path:
    """``$FPSM_CACHE_DIR/gateway``, else ``$XDG_CACHE_HOME/fpsm/gateway`` or ~/.cache."""
    base = os.environ.get("FPSM_CACHE_DIR")
    if base:
        return Path(base) / "gateway"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "fpsm" / "gateway"


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    t = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = units.get(t[-1:], 1)
    try:
        value = float(t[:-1] if t[-1:] in units else t) * scale
    except ValueError:
        value = -1
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"expected a size such as 500M or 2G, not {text!r}")
    return int(value)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "listen",
        help="auto-triage gateway: receive CR/DX by C-STORE, send DICOM results back",
        description="A C-STORE SCP that triages each CR/DX film it receives and sends the DICOM "
        "outputs to a node. Research software, not for clinical use.",
    )
    p.add_argument("--aet", default="FPSM", help="our AE title (default FPSM)")
    p.add_argument("--port", type=whole(1, 65535), default=11112, help="DIMSE port (default 11112)")
    p.add_argument("--bind", default="0.0.0.0", help="address to listen on (default all)")
    p.add_argument("--model", help="checkpoint or ensemble directory (default: the bundled model)")
    p.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda, cuda:N, mps")
    p.add_argument("--forward-to", metavar="NODE", help="node name from --nodes, or AET@HOST:PORT")
    p.add_argument("--nodes", type=Path, help="JSON file of nodes (for --forward-to NAME)")
    p.add_argument("--outputs", default="sc,sr,gsps", help="DICOM outputs (sc,sr,gsps,seg)")
    p.add_argument("--deidentify", action="store_true", help="de-identify the outputs")
    p.add_argument("--queue", type=Path, metavar="DIR", help="queue folder (default: user cache)")
    p.add_argument(
        "--max-jobs", type=whole(1), default=1000, help="open jobs before refusing (1000)"
    )
    p.add_argument(
        "--max-disk", type=_size, default=2 << 30, help="bytes of received files held (2G)"
    )
    p.add_argument("--min-free", type=_size, default=256 << 20, help="free disk kept (256M)")
    p.add_argument("--send-attempts", type=whole(1, 100), default=5, help="tries per send (5)")
    p.add_argument("--tls-cert", type=Path, help="TLS: our certificate (PEM)")
    p.add_argument("--tls-key", type=Path, help="TLS: our private key (PEM)")
    p.add_argument("--tls-ca", type=Path, help="TLS: CA bundle to verify senders")
    p.add_argument("--status", action="store_true", help="show the queue and exit")
    p.add_argument("--retry-failed", action="store_true", help="queue failed jobs again and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs import PacsError
    from fpsm_core.pacs.queue import QueueError

    queue_dir = args.queue or default_queue_dir()
    try:
        if args.status or args.retry_failed:
            return _status(queue_dir, retry=args.retry_failed)
        return _listen(args, queue_dir)
    except (PacsError, QueueError) as exc:
        raise CLIError(str(exc)) from None


def _status(queue_dir: Path, *, retry: bool) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.pacs.queue import JobQueue

    if not (queue_dir / "queue.sqlite").exists():
        raise CLIError(f"{queue_dir} holds no gateway queue.")
    queue = JobQueue(queue_dir, lock=False)
    try:
        if retry:
            print(f"{queue_dir}: {queue.retry_failed()} failed job(s) queued again.")
            return 0
        st = queue.status()
    finally:
        queue.close()
    c = st.counts
    print(
        f"{queue_dir}: {c['queued']} queued, {c['running']} running, {c['written']} sending, "
        f"{c['done']} done, {c['failed']} failed; {st.bytes_held / 2**20:.1f} MiB held."
    )
    for job in st.failures:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.finished_at or 0))
        print(f"failed job {job.id} ({when}, from {job.calling_aet or '?'}): {job.reason}")
    return 0


def _listen(args: argparse.Namespace, queue_dir: Path) -> int:
    from fpsm_core.cli.main import CLIError
    from fpsm_core.export import ExportError, parse_kinds
    from fpsm_core.inference import InferenceError, InferenceService
    from fpsm_core.model.checkpoint import CheckpointError
    from fpsm_core.pacs import TlsOptions, load_nodes, parse_node
    from fpsm_core.pacs.gateway import Gateway, GatewayConfig

    try:
        kinds = parse_kinds(args.outputs)
    except ExportError as exc:
        raise CLIError(str(exc).replace("--dicom", "--outputs", 1)) from None
    forward = None
    if args.forward_to:
        if args.nodes is not None and "@" not in args.forward_to:
            nodes = load_nodes(args.nodes)
            if args.forward_to not in nodes:
                raise CLIError(f"{args.nodes} has no node '{args.forward_to}'.")
            forward = nodes[args.forward_to]
        else:
            forward = parse_node(args.forward_to, our_aet=args.aet)
    tls = None
    if args.tls_cert or args.tls_key or args.tls_ca:
        if not args.tls_cert:
            raise CLIError("a TLS listener needs --tls-cert (and --tls-key unless inside it).")
        tls = TlsOptions(args.tls_ca, args.tls_cert, args.tls_key)
    try:
        service = InferenceService(args.model, device=args.device, batch_size=1)
    except (CheckpointError, InferenceError, FileNotFoundError) as exc:
        raise CLIError(str(exc)) from None
    config = GatewayConfig(
        aet=args.aet,
        port=args.port,
        queue_dir=queue_dir,
        bind=args.bind,
        forward_to=forward,
        outputs=kinds,
        max_jobs=args.max_jobs,
        max_bytes=args.max_disk,
        min_free_bytes=args.min_free,
        send_attempts=args.send_attempts,
        tls=tls,
        deidentify=args.deidentify,
    )
    gateway = Gateway(config, service, log=_log)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    gateway.start()
    where = f"sending to {forward}" if forward else f"keeping outputs in {queue_dir / 'outputs'}"
    _log(
        f"listening as {args.aet} on {args.bind}:{args.port} ({service.device}), queue "
        f"{queue_dir}, {where}."
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        _log("stopping: finishing the job in hand; the queue is kept.")
        gateway.stop()
        _log("stopped.")
    return 0


def _log(text: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {text}", file=sys.stdout, flush=True)

"""TLS on loopback (a self-signed certificate), the nodes file's options, and the CLI verbs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom
import pytest

from fpsm_core.pacs import Node, PacsError, TlsOptions, echo, load_nodes
from tests.core.pacs.pacs_fixtures import free_port, orthanc  # noqa: F401  (fixture)
from tests.core.pacs.test_pacs import SAMPLES


def _self_signed(folder: Path, name: str = "localhost") -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install openssl)")
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture()
def tls_gateway(tmp_path: Path) -> Any:
    """A gateway listening with TLS on 127.0.0.1 (echo is all these tests need of it)."""
    from fpsm_core.pacs.gateway import Gateway, GatewayConfig

    cert, key = _self_signed(tmp_path)
    port = free_port()
    config = GatewayConfig(
        aet="FPSMGW", port=port, queue_dir=tmp_path / "q", bind="127.0.0.1",
        tls=TlsOptions(cert_file=cert, key_file=key),
    )  # fmt: skip
    gateway = Gateway(config, service=None, log=lambda _line: None)
    gateway.start()
    try:
        yield port, cert, tmp_path
    finally:
        gateway.stop(grace_s=2)


def test_tls_echo_with_a_trusted_self_signed_certificate(tls_gateway: Any) -> None:
    port, cert, _ = tls_gateway
    echo(Node("gw", "FPSMGW", "127.0.0.1", port, tls=TlsOptions(ca_file=cert), timeout_s=5))


def test_an_untrusted_certificate_is_one_sentence(tls_gateway: Any) -> None:
    port, _, folder = tls_gateway
    other, _ = _self_signed(folder, "other")
    untrusted = Node("gw", "FPSMGW", "127.0.0.1", port, tls=TlsOptions(ca_file=other), timeout_s=5)
    with pytest.raises(PacsError, match=r"^the TLS handshake with gw \(FPSMGW@127.0.0.1:\d+\) "
                       r"failed: its certificate is not trusted"):  # fmt: skip
        echo(untrusted)
    plain = Node("gw", "FPSMGW", "127.0.0.1", port, timeout_s=3)
    with pytest.raises(PacsError, match=r"^cannot reach gw"):
        echo(plain)


def test_dicom_tls_against_a_real_orthanc(tmp_path: Path) -> None:
    """Orthanc with DicomTlsEnabled: echo, store and find over TLS; plain TCP is refused."""
    from fpsm_core.pacs import find, store
    from tests.core.pacs.pacs_fixtures import OrthancUnavailable, running_orthanc

    cert, key = _self_signed(tmp_path)
    tls = {
        "DicomTlsEnabled": True,
        "DicomTlsCertificate": str(cert),
        "DicomTlsPrivateKey": str(key),
        "DicomTlsTrustedCertificates": str(cert),
        "DicomTlsRemoteCertificateRequired": False,
    }
    try:
        with running_orthanc(tmp_path / "orthanc", tls) as info:
            secure = Node("tls", "ORTHANC", "127.0.0.1", info["port"], tls=TlsOptions(ca_file=cert))
            echo(secure)
            assert store(secure, SAMPLES[:1]) == [
                pydicom.dcmread(SAMPLES[0], stop_before_pixels=True).SOPInstanceUID
            ]
            assert len(find(secure, "STUDY")) == 1
            with pytest.raises(PacsError, match=r"^cannot reach plain"):
                echo(Node("plain", "ORTHANC", "127.0.0.1", info["port"], timeout_s=3))
    except OrthancUnavailable as exc:
        pytest.skip(str(exc))


def test_nodes_file_with_url_tls_and_https(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps({"nodes": {
        "pacs": {"aet": "PACS", "host": "pacs.example.org", "port": 2762, "move_port": 11113,
                 "tls": {"ca": str(ca), "check_hostname": False}},
        "web": {"url": "https://pacs.example.org/dicom-web/", "https": {"ca": str(ca)}},
    }}))  # fmt: skip
    nodes = load_nodes(path)
    assert nodes["pacs"].tls == TlsOptions(ca_file=ca, check_hostname=False)
    assert nodes["pacs"].move_port == 11113 and nodes["pacs"].has_dimse
    assert nodes["web"].url == "https://pacs.example.org/dicom-web" and not nodes["web"].has_dimse
    assert nodes["web"].https == TlsOptions(ca_file=ca)
    path.write_text(json.dumps({"nodes": {"p": {"url": "http://x", "https": {"cafile": "y"}}}}))
    with pytest.raises(PacsError, match=r"nodes.json, node 'p': unknown TLS option\(s\) cafile"):
        load_nodes(path)
    path.write_text(json.dumps({"nodes": {"p": {"aet": "P", "host": "h"}}}))
    with pytest.raises(PacsError, match="needs aet, host and port, or a url"):
        load_nodes(path)
    missing = Node("m", "P", "127.0.0.1", 104, tls=TlsOptions(ca_file=tmp_path / "nope.pem"))
    with pytest.raises(PacsError, match=r"the TLS file .*nope\.pem does not exist"):
        echo(missing)


def test_https_to_a_plain_http_server_is_one_sentence(orthanc: dict[str, Any]) -> None:  # noqa: F811
    from fpsm_core.pacs import dicomweb

    url = orthanc["dicomweb"].replace("http://", "https://")
    with pytest.raises(PacsError, match=r"^the TLS handshake with .* failed"):
        dicomweb.search(Node("web", "", "", 0, url=url, timeout_s=5), "STUDY")


def test_cli_get_by_c_get_c_move_and_wado_and_find_send_over_dicomweb(
    orthanc: dict[str, Any],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fpsm_core.cli.main import main

    inline = ["--host", "127.0.0.1", "--port", str(orthanc["port"]), "--aec", orthanc["aet"]]
    web = ["--url", orthanc["dicomweb"]]
    assert main(["pacs", "send", *web, str(SAMPLES[1])]) == 0
    assert "stored 1 instance(s)" in capsys.readouterr().out
    src = pydicom.dcmread(SAMPLES[1], stop_before_pixels=True)
    assert main(["pacs", "find", *web, "--patient-id", str(src.PatientID)]) == 0
    assert src.StudyInstanceUID in capsys.readouterr().out
    for method, extra in (("get", inline), ("move", [*inline, "--move-port",
                          str(orthanc["move_port"]), "--bind", "127.0.0.1"]), ("wado", web)):  # fmt: skip
        out = tmp_path / method
        args = ["pacs", "get", *extra, "--study", src.StudyInstanceUID, "--out", str(out)]
        if method == "move":
            args += ["--method", "move"]
        assert main(args) == 0, method
        captured = capsys.readouterr()
        assert f"retrieved 1 instance(s) into {out / src.StudyInstanceUID}" in captured.out
        assert "1/1" in captured.err  # progress
        assert [p.name for p in (out / src.StudyInstanceUID).iterdir()] == [
            f"{src.SOPInstanceUID}.dcm"
        ]
    assert main(["pacs", "get", *inline, "--study", "1.2.3", "--image", "4", "--out", "x"]) == 2
    assert "--image needs --series" in capsys.readouterr().err
    wrong = ["--host", "127.0.0.1", "--port", str(orthanc["port"]), "--aec", "WRONG"]
    assert main(["pacs", "get", *wrong, "--study", "1.2.3", "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rejected the association" in err
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []


def test_listen_options_and_status_errors_are_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fpsm_core.cli.main import main

    q = ["--queue", str(tmp_path / "q")]
    assert main(["listen", "--outputs", "sc,pdf", *q]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--outputs 'sc,pdf': unknown output kind pdf" in err
    assert main(["listen", "--forward-to", "PACS@host", *q]) == 2
    assert "'PACS@host' is not a node name or AET@HOST:PORT" in capsys.readouterr().err
    assert main(["listen", "--status", *q]) == 2
    assert "holds no gateway queue" in capsys.readouterr().err


def test_one_gateway_per_queue_folder(tmp_path: Path) -> None:
    from fpsm_core.pacs.queue import JobQueue, QueueError

    first = JobQueue(tmp_path / "q")
    try:
        with pytest.raises(QueueError, match="is in use by another running gateway"):
            JobQueue(tmp_path / "q")
        assert first.admit("1.2.3", "1.2.840.10008.5.1.4.1.1.1.1", b"x" * 10) == 1
        assert first.admit("1.2.3", "1.2.840.10008.5.1.4.1.1.1.1", b"x" * 10) is None
    finally:
        first.close()
    reader = JobQueue(tmp_path / "q", lock=False)  # --status while a gateway runs
    assert reader.status().counts["queued"] == 1
    reader.close()


def test_inline_forward_node_and_sizes() -> None:
    import argparse

    from fpsm_core.cli.listen import _size
    from fpsm_core.pacs import parse_node

    assert parse_node("PACS01@10.0.0.5:104") == Node(
        "PACS01@10.0.0.5:104", "PACS01", "10.0.0.5", 104
    )
    for bad in ("PACS01@host", "@host:104", "PACS@host:0", "PACS@host:x"):
        with pytest.raises(PacsError, match="is not a node name or AET@HOST:PORT"):
            parse_node(bad)
    assert _size("500M") == 500 << 20 and _size("2G") == 2 << 30 and _size("1.5GiB") == 3 << 29
    with pytest.raises(argparse.ArgumentTypeError, match="expected a size such as 500M"):
        _size("-1G")


@contextmanager
def tls_proxy(cert: Path, key: Path, backend_port: int) -> Iterator[int]:
    """An HTTPS front for a plain HTTP server on 127.0.0.1, as a hospital's TLS proxy would be.

    (Debian's Orthanc crashes on its own HTTPS; DICOMweb servers are often behind nginx anyway.)
    Each accepted TLS connection is piped byte for byte to the backend; yields the HTTPS port.
    """
    import socket
    import ssl
    import threading

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = socket.create_server(("127.0.0.1", 0))
    port = int(server.getsockname()[1])
    stop = threading.Event()

    def pipe(src: Any, dst: Any) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def serve(raw: Any) -> None:
        try:
            client = context.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError):
            raw.close()  # a client that does not trust us ends here
            return
        backend = socket.create_connection(("127.0.0.1", backend_port))
        threading.Thread(target=pipe, args=(backend, client), daemon=True).start()
        pipe(client, backend)

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                raw, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join(5)
        server.close()


def test_dicomweb_over_https_with_our_ca_bundle(
    orthanc: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    """STOW, QIDO and WADO over real HTTPS (Orthanc's DICOMweb behind a TLS front) with the
    node's CA bundle; without it, the server's certificate is one sentence."""
    from fpsm_core.pacs import dicomweb
    from tests.core.pacs.pacs_fixtures import DICOMWEB_PLUGIN

    if not DICOMWEB_PLUGIN.exists():
        pytest.skip("the DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    cert, key = _self_signed(tmp_path, "127.0.0.1")
    backend = int(orthanc["url"].rsplit(":", 1)[1])
    with tls_proxy(cert, key, backend) as port:
        url = f"https://127.0.0.1:{port}/dicom-web"
        web = Node("web", "", "", 0, url=url, https=TlsOptions(ca_file=cert), timeout_s=20)
        sample = SAMPLES[-1]
        sop = pydicom.dcmread(sample, stop_before_pixels=True)
        assert dicomweb.store(web, [sample]) == [sop.SOPInstanceUID]
        found = dicomweb.search(web, "STUDY", StudyInstanceUID=sop.StudyInstanceUID)
        assert [str(s.StudyInstanceUID) for s in found] == [sop.StudyInstanceUID]
        got = dicomweb.retrieve(
            web, tmp_path / "cache", sop.StudyInstanceUID, sop.SeriesInstanceUID
        )
        assert sop.SOPInstanceUID in {pydicom.dcmread(p).SOPInstanceUID for p in got.files}
        untrusted = Node("web", "", "", 0, url=url, timeout_s=10)
        with pytest.raises(PacsError, match=r"^the TLS handshake with .* failed") as err:
            dicomweb.search(untrusted, "STUDY")
        assert "\n" not in str(err.value)

"""TLS for DIMSE (an :class:`ssl.SSLContext` for pynetdicom) and for DICOMweb over HTTPS.

A node's ``tls`` entry names a CA bundle to trust, and optionally our certificate and key for
sites that require client certificates. Unreadable or mismatched files are one sentence naming
the file; a failed handshake is worded by :func:`handshake_sentence` so every verb says it the
same way.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fpsm_core.errors import FpsmError


class TlsError(FpsmError):
    """A TLS option or file cannot be used; one sentence naming it."""


@dataclass(frozen=True)
class TlsOptions:
    """Where to find the certificates of one TLS connection.

    Attributes:
        ca_file: PEM bundle of the authorities to trust (None: the system's).
        cert_file: our certificate (PEM), for client authentication or a server.
        key_file: its private key (PEM); None when it is inside ``cert_file``.
        check_hostname: verify that the peer's certificate names the host we dialled.
    """

    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    check_hostname: bool = True

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str) -> TlsOptions:
        """From a nodes-file entry ``{"ca": ..., "cert": ..., "key": ..., "check_hostname": ...}``."""
        unknown = set(raw) - {"ca", "cert", "key", "check_hostname"}
        if unknown:
            raise TlsError(f"{where}: unknown TLS option(s) {', '.join(sorted(unknown))}.")

        def path(key: str) -> Path | None:
            value = raw.get(key)
            return None if value in (None, "") else Path(str(value)).expanduser()

        opts = cls(path("ca"), path("cert"), path("key"), bool(raw.get("check_hostname", True)))
        if opts.key_file is not None and opts.cert_file is None:
            raise TlsError(f"{where}: a TLS key needs its certificate ('cert').")
        return opts

    def files(self) -> list[Path]:
        return [p for p in (self.ca_file, self.cert_file, self.key_file) if p is not None]


def _check_files(opts: TlsOptions) -> None:
    for p in opts.files():
        if not p.is_file():
            raise TlsError(f"the TLS file {p} does not exist.")


def client_context(opts: TlsOptions) -> ssl.SSLContext:
    """A client context that verifies the server (and presents our certificate when given)."""
    _check_files(opts)
    try:
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(opts.ca_file) if opts.ca_file else None
        )
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(f"the CA bundle {opts.ca_file} cannot be read ({exc}).") from None
    ctx.check_hostname = opts.check_hostname
    _load_chain(ctx, opts)
    return ctx


def server_context(opts: TlsOptions, require_client_cert: bool = False) -> ssl.SSLContext:
    """A server context for our listener; needs ``cert_file``."""
    if opts.cert_file is None:
        raise TlsError("a TLS listener needs a certificate (--tls-cert).")
    _check_files(opts)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    _load_chain(ctx, opts)
    if opts.ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(opts.ca_file))
        except (ssl.SSLError, OSError) as exc:
            raise TlsError(f"the CA bundle {opts.ca_file} cannot be read ({exc}).") from None
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    if not require_client_cert and opts.ca_file is None:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _load_chain(ctx: ssl.SSLContext, opts: TlsOptions) -> None:
    if opts.cert_file is None:
        return
    try:
        ctx.load_cert_chain(str(opts.cert_file), str(opts.key_file) if opts.key_file else None)
    except (ssl.SSLError, OSError) as exc:
        raise TlsError(
            f"the TLS certificate {opts.cert_file} and its key cannot be used ({exc})."
        ) from None


def handshake_sentence(where: str, exc: BaseException) -> str:
    """One sentence for a TLS handshake that failed against ``where``."""
    reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in str(exc) or "certificate verify failed" in str(exc):
        return (
            f"the TLS handshake with {where} failed: its certificate is not trusted by the "
            "CA bundle in use (set 'ca' in the node's TLS options)."
        )
    return f"the TLS handshake with {where} failed ({reason})."

"""The certificate a TLS endpoint presents (the proxy's), read without trusting it.

A health check wants the expiry date even of a self-signed or already expired certificate, so
verification is off and the peer's DER certificate is parsed with ``cryptography``.
"""

from __future__ import annotations

import socket
import ssl
from datetime import datetime

from cryptography import x509
from pydantic import BaseModel, ConfigDict

from sbx.errors import TlsError


class PeerCertificate(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    issuer: str
    not_after: datetime


def peer_certificate(
    host: str, port: int, *, server_name: str | None = None, timeout_s: float = 3.0
) -> PeerCertificate:
    """Connect to host:port, finish the handshake, return the leaf certificate's dates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # read, never trust: we only look at the dates
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=server_name or host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except TimeoutError as exc:
        raise TlsError(f"no TLS handshake with {host}:{port} within {timeout_s:g} s") from exc
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"TLS to {host}:{port} failed: {exc}") from exc
    if not der:
        raise TlsError(f"{host}:{port} presented no certificate")
    cert = x509.load_der_x509_certificate(der)
    return PeerCertificate(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc,
    )

"""The TLS adapter: httpx over tlslite-ng, with handshakes signed by a token key.

Python's ``ssl`` cannot sign with an external key, so est-hw runs TLS 1.2 (RFC 5246)
and TLS 1.3 (RFC 8446) with tlslite-ng, signs CertificateVerify with the key backend's
``cryptography`` key object, verifies the server with ``cryptography.x509.verification``
and exposes the channel bindings RFC 7030 section 3.5 needs (RFC 5929 tls-unique,
RFC 9266 tls-exporter).

Typical use::

    settings = TlsSettings(ServerTrust(anchors=(ca,)), ClientIdentity(key, (cert,)))
    with httpx.Client(transport=TokenTlsTransport(settings)) as client:
        response = client.get("https://est.example/.well-known/est/cacerts")
        tls_unique = response.extensions["network_stream"].get_extra_info("tls_unique")
"""

# First, before any tlslite import: loads no integrations (see its docstring).
from est_hw.tls import tlslite_package  # noqa: F401
from est_hw.tls.settings import ClientIdentity, TlsSettings
from est_hw.tls.transport import TokenTlsTransport
from est_hw.tls.trust import ServerTrust, verify_server_chain

__all__ = [
    "ClientIdentity",
    "ServerTrust",
    "TlsSettings",
    "TokenTlsTransport",
    "verify_server_chain",
]

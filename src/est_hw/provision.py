"""The enrollment flows as plain functions over keys/, x509/, est/ and tls/.

bootstrap trust -> generate the key on the token -> build and sign the CSR there ->
/simpleenroll -> verify the answer -> store certificate and chain beside the key.

A failed enrollment leaves the token as it found it: the key made for it is deleted
again, and nothing is stored unless it carries the token key and chains to the anchors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from est_hw.errors import EstHwError, TrustError, UsageError
from est_hw.est.auth import HttpCredentials
from est_hw.est.client import EstClient, EstEndpoint
from est_hw.keys.base import KeyBackend, KeyType, TokenKey
from est_hw.tls.settings import TlsSettings
from est_hw.tls.trust import ServerTrust
from est_hw.x509.csr import CsrContent, build_csr
from est_hw.x509.trust import (
    load_anchor_file,
    select_by_fingerprint,
    split_issued,
    verify_issued,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrustOptions:
    """How the server is to be trusted (RFC 7030 section 3.6).

    :param ca_file: explicit trust anchors (section 3.6.1).
    :param ca_fingerprint: SHA-256 of a /cacerts certificate, for bootstrap (4.1.1).
    :param system_trust: also trust the OS store as implicit anchors (section 3.6.2).
    """

    ca_file: Path | None = None
    ca_fingerprint: bytes | None = None
    system_trust: bool = False


@dataclass(frozen=True)
class ServerSession:
    """An authenticated EST server: its endpoint, trust, and CA certificates seen so far."""

    endpoint: EstEndpoint
    trust: ServerTrust
    cacerts: tuple[x509.Certificate, ...]
    credentials: HttpCredentials | None
    timeout: float

    def client(self) -> EstClient:
        """An EST client that verifies the server against :attr:`trust`."""
        return EstClient(
            self.endpoint,
            TlsSettings(trust=self.trust),
            credentials=self.credentials,
            timeout=self.timeout,
        )


def establish_trust(
    endpoint: EstEndpoint,
    options: TrustOptions,
    *,
    credentials: HttpCredentials | None = None,
    timeout: float = 30.0,
) -> ServerSession:
    """Decide the trust anchors, bootstrapping them from /cacerts if asked (4.1.1).

    With a fingerprint, /cacerts is fetched over a provisional connection that carries no
    credentials; the answer is accepted only when one of its certificates has the
    fingerprint, and that certificate becomes the anchor for everything after.

    :raises UsageError: when no source of trust is given (no silent trust on first use).
    :raises FingerprintMismatchError: when no /cacerts certificate has the fingerprint.
    """
    anchors: tuple[x509.Certificate, ...] = ()
    if options.ca_file is not None:
        anchors = load_anchor_file(options.ca_file)
    cacerts: tuple[x509.Certificate, ...] = ()
    if options.ca_fingerprint is not None:
        provisional = TlsSettings(trust=ServerTrust(anchors=(), verify=False))
        with EstClient(endpoint, provisional, timeout=timeout) as client:
            cacerts = tuple(client.cacerts())
        anchor = select_by_fingerprint(cacerts, options.ca_fingerprint)
        log.info("bootstrap: /cacerts certificate %s matches the fingerprint", anchor.subject)
        anchors = (*anchors, anchor)
    if not anchors and not options.system_trust:
        raise UsageError(
            "no trust anchor for the EST server: give --ca-file, --ca-fingerprint or --system-trust"
        )
    trust = ServerTrust(anchors=anchors, use_system_store=options.system_trust)
    return ServerSession(endpoint, trust, cacerts, credentials, timeout)


@dataclass(frozen=True)
class EnrollRequest:
    """What to enroll: the key to make and the CSR content."""

    key_type: KeyType
    key_label: str
    content: CsrContent


@dataclass(frozen=True)
class EnrollResult:
    """An issued certificate stored on the token beside its key."""

    key: TokenKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    token: str


def enroll(backend: KeyBackend, server: ServerSession, request: EnrollRequest) -> EnrollResult:
    """RFC 7030 section 4.2.1: enroll a new key made inside ``backend``.

    On any failure the new key is deleted again, so the token is left as it was.
    """
    with server.client() as client:
        key = backend.generate_key(request.key_type, request.key_label)
        try:
            csr = build_csr(key.private_key, request.content)
            issued = client.simpleenroll(csr)
            certificate, chain = accept_issued(issued, key, server, client)
            backend.store_certificate(key, certificate, chain)
        except BaseException:
            discard_key(backend, key)
            raise
    return EnrollResult(key, certificate, tuple(chain), backend.name)


def accept_issued(
    issued: Sequence[x509.Certificate],
    key: TokenKey,
    server: ServerSession,
    client: EstClient,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Check an enrollment answer before anything is stored (RFC 7030 section 4.2.3).

    The issued certificate must carry the token key, must not be a CA certificate, and
    must chain to the anchors; CA certificates the answer lacks are fetched from /cacerts
    only when needed.  Returns the certificate and its validated chain (anchor last).
    """
    certificate, others = split_issued(issued, key.public_key())
    if _is_ca(certificate):
        raise TrustError("the server issued a CA certificate for the token key, not a leaf")
    known = [*others, *server.cacerts]
    try:
        return certificate, verify_issued(certificate, known, server.trust.anchors)
    except TrustError:
        if server.cacerts:
            raise
    # Not enough to build the path: ask /cacerts over this authenticated connection
    # (section 4.1.3); its self-signed certificates are the explicit anchors of the
    # issuing PKI, which need not be the PKI of the server's TLS certificate.
    cacerts = client.cacerts()
    roots = [cert for cert in cacerts if cert.issuer == cert.subject]
    anchors = [*server.trust.anchors, *roots]
    return certificate, verify_issued(certificate, [*others, *cacerts], anchors)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def discard_key(backend: KeyBackend, key: TokenKey) -> None:
    """Delete a key made for an enrollment that failed; never mask the first error."""
    try:
        backend.delete_key(key)
    except EstHwError as exc:
        log.warning("could not delete key %s after a failed enrollment: %s", key.label, exc)

"""The enrollment flows as plain functions over keys/, x509/, est/ and tls/.

enroll:   trusted server -> (channel binding) -> key generated on the token -> CSR signed
          there -> /simpleenroll -> answer verified -> certificate + chain stored.
reenroll: TLS authenticated by the key and certificate on the token -> CSR with the same
          subject and SAN -> /simplereenroll -> verified -> stored; the old certificate
          (and with rekey the old key) removed only after the new one is stored.

A failed enrollment leaves the token as it found it: a key made for it is deleted again,
and nothing is stored unless it carries the token key and chains to the anchors.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509

from est_hw.errors import EstHwError, TrustError
from est_hw.est.client import EstClient
from est_hw.keys.base import KeyBackend, KeyType, TokenKey
from est_hw.provision.binding import ChannelBinding, bind
from est_hw.provision.identity import client_identity, stored_certificate
from est_hw.provision.trust import ServerSession
from est_hw.tls.settings import ClientIdentity
from est_hw.x509.csr import CsrContent, build_csr, subject_alt_names
from est_hw.x509.trust import split_issued, verify_issued

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollRequest:
    """What to enroll: the key to make and the CSR content."""

    key_type: KeyType
    key_label: str
    content: CsrContent


@dataclass(frozen=True)
class EnrollResult:
    """An issued certificate stored on the token beside its key.

    :param previous: the certificate it replaces (re-enrollment), else None.
    """

    key: TokenKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    token: str
    previous: x509.Certificate | None = None


def enroll(
    backend: KeyBackend,
    server: ServerSession,
    request: EnrollRequest,
    *,
    tls_identity: ClientIdentity | None = None,
    binding: ChannelBinding = ChannelBinding.AUTO,
) -> EnrollResult:
    """RFC 7030 section 4.2.1: enroll a new key made inside ``backend``.

    :param tls_identity: an existing key + certificate (e.g. an IDevID) that
        authenticates the TLS connection (section 3.3.2).
    :param binding: channel binding of the CSR (section 3.5).
    """
    with server.client(tls_identity) as client:
        challenge = bind(client, binding)
        content = request.content
        if challenge is not None:
            content = dataclasses.replace(content, challenge_password=challenge.password)
        key = backend.generate_key(request.key_type, request.key_label)
        certificate, chain = _issue_and_store(
            backend,
            server,
            client,
            key,
            content=content,
            send=lambda csr: client.simpleenroll(csr, bound_to=challenge and challenge.connection),
            discard_on_failure=True,
        )
    return EnrollResult(key, certificate, tuple(chain), backend.name)


def reenroll(
    backend: KeyBackend,
    server: ServerSession,
    key: TokenKey,
    *,
    rekey: bool = False,
    new_key_type: KeyType | None = None,
    binding: ChannelBinding = ChannelBinding.AUTO,
) -> EnrollResult:
    """RFC 7030 section 4.2.2: renew the certificate of ``key``.

    TLS is authenticated with ``key`` and its certificate from the token; the CSR carries
    the same subject and subjectAltName.  With ``rekey`` a new key is generated (of
    ``new_key_type``, default the old type) and the old key and certificate are deleted
    only after the new certificate is stored.  On failure the old key and certificate
    stay as they were.
    """
    identity = client_identity(backend, key)
    current = identity.chain[0]
    content = CsrContent(subject=current.subject, sans=tuple(subject_alt_names(current)))
    with server.client(identity) as client:
        challenge = bind(client, binding)
        if challenge is not None:
            content = dataclasses.replace(content, challenge_password=challenge.password)
        new_key = backend.generate_key(new_key_type or key.key_type, key.label) if rekey else key
        certificate, chain = _issue_and_store(
            backend,
            server,
            client,
            new_key,
            content=content,
            send=lambda csr: client.simplereenroll(
                csr, bound_to=challenge and challenge.connection
            ),
            discard_on_failure=rekey,
        )
    if rekey:
        _retire(backend, key)
    return EnrollResult(new_key, certificate, tuple(chain), backend.name, previous=current)


def _issue_and_store(
    backend: KeyBackend,
    server: ServerSession,
    client: EstClient,
    key: TokenKey,
    *,
    content: CsrContent,
    send: Callable[[x509.CertificateSigningRequest], list[x509.Certificate]],
    discard_on_failure: bool,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Sign the CSR with ``key``, send it, verify the answer, store it beside the key."""
    try:
        csr = build_csr(key.private_key, content)
        issued = send(csr)
        certificate, chain = accept_issued(issued, key, server, client)
        backend.store_certificate(key, certificate, chain)
    except BaseException:
        if discard_on_failure:
            discard_key(backend, key)
        raise
    return certificate, chain


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


def _retire(backend: KeyBackend, key: TokenKey) -> None:
    """After a rekey: delete the old certificate and key (the new ones are stored)."""
    try:
        backend.delete_certificates(key.key_id)
        backend.delete_key(key)
    except EstHwError as exc:
        log.warning("the new certificate is stored, but the old key %s stays: %s", key.label, exc)


def discard_key(backend: KeyBackend, key: TokenKey) -> None:
    """Delete a key made for an enrollment that failed; never mask the first error."""
    try:
        backend.delete_key(key)
    except EstHwError as exc:
        log.warning("could not delete key %s after a failed enrollment: %s", key.label, exc)


__all__ = [
    "EnrollRequest",
    "EnrollResult",
    "accept_issued",
    "discard_key",
    "enroll",
    "reenroll",
    "stored_certificate",
]

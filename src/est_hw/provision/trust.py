"""Trusting the EST server (RFC 7030 sections 3.6 and 4.1.1) and opening clients to it."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_hw.errors import UsageError
from est_hw.est.auth import HttpCredentials
from est_hw.est.client import EstClient, EstEndpoint
from est_hw.tls.settings import ClientIdentity, TlsSettings
from est_hw.tls.trust import ServerTrust
from est_hw.x509.trust import load_anchor_file, select_by_fingerprint

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
    #: The last /cacerts answer an enrollment of this session fetched to complete a chain
    #: (RFC 7030 4.1.3), so the next enrollment of a batch need not ask again.
    fetched_cacerts: list[tuple[x509.Certificate, ...]] = field(
        default_factory=list, compare=False, repr=False
    )

    def client(self, identity: ClientIdentity | None = None) -> EstClient:
        """An EST client that verifies the server against :attr:`trust`.

        :param identity: key and certificate chain for TLS client authentication
            (RFC 7030 section 3.3.2); the key signs the handshake inside its token.
        """
        return EstClient(
            self.endpoint,
            TlsSettings(trust=self.trust, client=identity),
            credentials=self.credentials,
            timeout=self.timeout,
        )

    def __reduce__(self) -> tuple[Callable[[_PickledSession], ServerSession], tuple[Any, ...]]:
        """Pickle as a plain session with its certificates in DER (``cryptography``'s
        certificates do not pickle): provisioning workers rebuild it.  The credentials'
        password travels as a :class:`~est_hw.keys.base.Secret` (over a pipe, never argv).
        """
        der = serialization.Encoding.DER
        trust = {f.name: getattr(self.trust, f.name) for f in dataclasses.fields(self.trust)}
        trust["anchors"] = tuple(cert.public_bytes(der) for cert in self.trust.anchors)
        pickled = _PickledSession(
            self.endpoint,
            trust,
            tuple(cert.public_bytes(der) for cert in self.cacerts),
            self.credentials,
            self.timeout,
        )
        return _server_session, (pickled,)


@dataclass(frozen=True)
class _PickledSession:
    """A :class:`ServerSession` with its certificates as DER (``trust``: the fields of
    its :class:`ServerTrust`)."""

    endpoint: EstEndpoint
    trust: dict[str, Any]
    cacerts: tuple[bytes, ...]
    credentials: HttpCredentials | None
    timeout: float


def _server_session(pickled: _PickledSession) -> ServerSession:
    """The :class:`ServerSession` that :meth:`ServerSession.__reduce__` pickled."""
    anchors = tuple(x509.load_der_x509_certificate(der) for der in pickled.trust["anchors"])
    trust = ServerTrust(**{**pickled.trust, "anchors": anchors})
    cacerts = tuple(x509.load_der_x509_certificate(der) for der in pickled.cacerts)
    return ServerSession(pickled.endpoint, trust, cacerts, pickled.credentials, pickled.timeout)


def establish_trust(
    endpoint: EstEndpoint,
    options: TrustOptions,
    *,
    credentials: HttpCredentials | None = None,
    timeout: float = 30.0,
) -> ServerSession:
    """Decide the trust anchors, bootstrapping them from /cacerts if asked (4.1.1).

    With a fingerprint, /cacerts is fetched over a provisional connection that carries
    neither credentials nor a client certificate; the answer is accepted only when one of
    its certificates has the fingerprint, and that certificate becomes the anchor for
    everything after.

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

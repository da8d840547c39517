"""Configuration, wire records and deliberate misbehaviour of the RFC 7030 test server."""

from __future__ import annotations

import enum
import socket
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, overload

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from est_hw.testing.misbehaviour import Misbehaviour

__all__ = [
    "AuthMode",
    "KeySigner",
    "Misbehaviour",
    "Quirk",
    "RawAnswer",
    "RequestLog",
    "RequestRecord",
    "Response",
    "ResponseHook",
    "ServerConfig",
]

AuthMode = Literal["none", "basic", "digest"]
#: who signs the SignedData around a CMS-encrypted server-generated key (section 4.4.2):
#: the issuing CA; the issuing CA without its certificate in the SignedData; a key
#: generation service with a certificate from the issuing CA; a CA of another PKI; or the
#: issuing CA with a broken signature
KeySigner = Literal["ca", "ca-not-included", "keygen-service", "foreign", "tampered"]
TLS_VERSIONS = ("1.2", "1.3")
#: the EST operations (RFC 7030 section 3.2.2) a misbehaviour may target
OPERATION_NAMES = (
    "cacerts",
    "csrattrs",
    "simpleenroll",
    "simplereenroll",
    "serverkeygen",
    "fullcmc",
)


class Quirk(enum.Enum):
    """Deliberate deviations that real EST servers show on the wire (FIELD-NOTES.md).

    A strict client must cope with each of them; the default server shows none.
    """

    #: response base64 on one line, no wrapping
    BASE64_ONE_LINE = "base64-one-line"
    #: response base64 wrapped at 76 columns with CRLF line ends
    BASE64_CRLF_76 = "base64-crlf-76"
    #: a NUL byte after the base64 body, counted in Content-Length
    TRAILING_NUL = "trailing-nul"
    #: no Content-Transfer-Encoding header on base64 bodies (RFC 8951 section 3.2)
    NO_CTE_HEADER = "no-cte-header"
    #: Retry-After as an HTTP-date rather than delta-seconds
    RETRY_AFTER_DATE = "retry-after-date"
    #: 401 without a WWW-Authenticate header
    BARE_401 = "bare-401"
    #: refuse (400) request bodies with a base64 line longer than 76 characters
    STRICT_REQUEST_LINES = "strict-request-lines"


#: ``answer(connection)``: writes a whole answer (or none) as raw bytes on the TLS
#: connection, for misbehaviours that ``http.server`` cannot express; the connection is
#: closed afterwards.  See :mod:`est_hw.testing.rawhttp`.
RawAnswer = Callable[[socket.socket], None]


@dataclass
class Response:
    """One HTTP response, built before it is sent so quirks and hooks can rewrite it.

    With ``raw`` set, the handler sends nothing itself: it calls ``raw(connection)``
    and closes the connection (``status`` is then only what the request log records).
    """

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    close: bool = False
    raw: RawAnswer | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((v for k, v in self.headers if k.lower() == wanted), None)


#: ``hook(operation, response) -> response``: the last word on every response
#: (``operation`` is "cacerts", "simpleenroll", ... or "" for an unknown path).
ResponseHook = Callable[[str, Response], Response]


@dataclass(frozen=True)
class ServerConfig:
    """What the test server does; every field has a strict, RFC 7030 conforming default.

    :param tls_versions: the TLS versions offered ("1.2", "1.3"); min and max are used.
    :param server_names: the subjectAltName entries of the server's TLS certificate.
    :param users: username -> password for HTTP authentication (RFC 7030 section 3.2.3).
    :param auth: "none", "basic" (RFC 7617) or "digest" (RFC 7616, SHA-256 and MD5).
    :param auth_csrattrs: also require HTTP authentication on /csrattrs (section 4.5.1).
    :param cert_auth_suffices: a verified TLS client certificate authenticates the client
        without HTTP authentication (section 3.3.2).
    :param label: serve under /.well-known/est/<label>/ only (section 3.2.2).
    :param csrattrs: DER CsrAttrs for /csrattrs; None answers 204 (section 4.5.2).
    :param pending: answer the first N /simpleenroll requests 202 (section 4.2.3).
    :param pending_reenroll: the same for /simplereenroll.
    :param retry_after: the Retry-After seconds of a 202.
    :param require_client_cert: refuse TLS clients without a certificate (CERT_REQUIRED);
        otherwise a certificate is requested but optional.
    :param client_ca_certs: extra CAs whose certificates are accepted as TLS client
        certificates (for example a manufacturer CA for bootstrapping).
    :param enforce_tls_unique: the CSR's challengePassword must be the base64 of the
        connection's tls-unique (section 3.5); TLS 1.3 has none, so it then fails.
    :param cert_days: validity of issued certificates.
    :param quirks: deliberate deviations, see :class:`Quirk`.
    :param response_hook: called with every response before it is sent (tests only).
    :param serverkeygen_rsa: /serverkeygen makes RSA-2048 keys instead of EC P-256.
    :param serverkeygen_pkcs1: /serverkeygen answers a PKCS#1 RSA key labelled as pkcs8,
        as one real server does (section 4.4.2; implies RSA).
    :param serverkeygen_recipient: an RSA public key; a /serverkeygen CSR with an
        AsymmetricDecryptKeyIdentifier gets its key CMS-encrypted to it (section 4.4.2).
    :param serverkeygen_signer: who signs the SignedData inside that encryption, see
        :data:`KeySigner`.
    :param misbehaviour: one hostile behaviour, see :class:`Misbehaviour` (tests only).
    :param misbehave_on: the operations an http, status, body or redirect misbehaviour
        hits; tcp and tls misbehaviours hit every connection.
    :param redirect_to: the Location of ``REDIRECT_ELSEWHERE`` (and, when set, of
        ``REDIRECT_TO_HTTP``), e.g. another server's URL.
    """

    host: str = "127.0.0.1"
    port: int = 0
    tls_versions: tuple[str, ...] = TLS_VERSIONS
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    users: Mapping[str, str] = field(default_factory=dict, repr=False)
    auth: AuthMode = "none"
    auth_csrattrs: bool = False
    cert_auth_suffices: bool = True
    realm: str = "est-hw test"
    label: str | None = None
    csrattrs: bytes | None = None
    pending: int = 0
    pending_reenroll: int = 0
    retry_after: int = 1
    require_client_cert: bool = False
    client_ca_certs: tuple[x509.Certificate, ...] = ()
    enforce_tls_unique: bool = False
    cert_days: int = 365
    quirks: frozenset[Quirk] = frozenset()
    response_hook: ResponseHook | None = None
    max_body: int = 64 * 1024
    serverkeygen_rsa: bool = False
    serverkeygen_pkcs1: bool = False
    serverkeygen_recipient: rsa.RSAPublicKey | None = None
    serverkeygen_signer: KeySigner = "ca"
    misbehaviour: Misbehaviour | None = None
    misbehave_on: frozenset[str] = frozenset({"simpleenroll"})
    redirect_to: str | None = None

    def __post_init__(self) -> None:
        if not self.tls_versions or set(self.tls_versions) - set(TLS_VERSIONS):
            raise ValueError(f"tls_versions must be a non-empty subset of {TLS_VERSIONS}")
        if self.auth not in ("none", "basic", "digest"):
            raise ValueError(f"unknown auth mode {self.auth!r}")
        if self.label is not None and (not self.label or "/" in self.label):
            raise ValueError("a label is one non-empty path segment (RFC 7030 3.2.2)")
        if self.pending < 0 or self.pending_reenroll < 0 or self.retry_after < 0:
            raise ValueError("pending and retry_after must not be negative")
        if self.cert_days < 1:
            raise ValueError("cert_days must be at least 1")
        if not self.server_names:
            raise ValueError("the server certificate needs at least one name")
        if self.misbehaviour is not None and not isinstance(self.misbehaviour, Misbehaviour):
            raise ValueError(f"misbehaviour must be a Misbehaviour, not {self.misbehaviour!r}")
        object.__setattr__(self, "misbehave_on", frozenset(self.misbehave_on))
        if not self.misbehave_on <= set(OPERATION_NAMES):
            raise ValueError(f"misbehave_on must name operations of {OPERATION_NAMES}")
        if self.misbehaviour is Misbehaviour.REDIRECT_ELSEWHERE and not self.redirect_to:
            raise ValueError("redirect-elsewhere needs redirect_to")


@dataclass(frozen=True)
class RequestRecord:
    """What a client sent and what the server answered, for assertions in tests.

    ``headers`` holds the selected request headers (lower-case names) that were present;
    ``connection`` numbers TLS connections, so tests can tell whether requests shared one.
    """

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    tls_version: str | None
    peer_cert: bool
    connection: int
    user: str | None = None
    reason: str = ""


class RequestLog(Sequence[RequestRecord]):
    """A thread-safe, append-only list of :class:`RequestRecord`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def snapshot(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @overload
    def __getitem__(self, index: int) -> RequestRecord: ...

    @overload
    def __getitem__(self, index: slice) -> list[RequestRecord]: ...

    def __getitem__(self, index: int | slice) -> RequestRecord | list[RequestRecord]:
        with self._lock:
            return self._items[index]

    def __iter__(self) -> Iterator[RequestRecord]:
        return iter(self.snapshot())

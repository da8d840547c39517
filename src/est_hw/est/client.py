"""The RFC 7030 client verbs over an httpx client with the token TLS transport.

``EstClient`` knows paths, media types and status codes; the wire encodings live in
:mod:`est_hw.est.messages` and TLS in :mod:`est_hw.tls`.  Every non-200 answer becomes an
:mod:`est_hw.errors` exception; 202 is :class:`~est_hw.errors.EnrollmentPendingError` on
purpose, so the caller sees Retry-After (RFC 7030 section 4.2.3).
"""

from __future__ import annotations

import datetime
import logging
import re
import typing
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from est_hw import metrics
from est_hw.closing import ClosedOnExit
from est_hw.errors import (
    AuthenticationError,
    EnrollmentPendingError,
    HttpStatusError,
    ProtocolError,
    UsageError,
)
from est_hw.est import messages
from est_hw.est.auth import ChallengeAuth, HttpCredentials
from est_hw.est.proxy import proxy_for
from est_hw.tls.settings import TlsSettings
from est_hw.tls.transport import TokenTlsTransport

if typing.TYPE_CHECKING:
    from est_hw.est.serverkeygen import ServerGeneratedKey

#: RFC 7030 section 3.2.2: the well-known root of the EST operation paths.
WELL_KNOWN_ROOT = "/.well-known/est"
#: A label is one path segment (RFC 7030 section 3.2.2), RFC 3986 unreserved characters.
_LABEL = re.compile(r"^[A-Za-z0-9._~-]+$")
#: A server that gives no Retry-After with its 202 (it MUST, section 4.2.3) is asked again
#: after this many seconds.
DEFAULT_RETRY_AFTER = 60
_SERVER_TEXT_LIMIT = 200
#: Same-origin redirects followed per request before giving up.
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EstEndpoint:
    """Where the EST server lives: ``https://host[:port][/root]`` and an optional label.

    RFC 7030 section 3.2.2: operations are ``<root>/<label>/<operation>`` with root
    ``/.well-known/est`` unless the URL carries a path of its own.
    """

    base_url: str
    label: str | None = None

    @classmethod
    def parse(cls, url: str, label: str | None = None) -> EstEndpoint:
        """Validate the server URL (https only) and label.

        :raises UsageError: for another scheme, a missing host or a malformed label.
        """
        if "://" not in url:
            url = "https://" + url
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            # Never echo a URL that may carry a password (it would reach logs).
            raise UsageError("the server URL may not carry userinfo: use --username")
        if parts.scheme.lower() != "https":
            raise UsageError(f"server URL {url!r} is not https: EST requires TLS (RFC 7030 3.3)")
        if not parts.hostname:
            raise UsageError(f"server URL {url!r} has no host")
        if parts.query or parts.fragment:
            raise UsageError(f"server URL {url!r} may not carry a query or fragment")
        if label is not None and not _LABEL.match(label):
            raise UsageError(f"invalid label {label!r}: one path segment of [A-Za-z0-9._~-]")
        root = parts.path.rstrip("/") or WELL_KNOWN_ROOT
        return cls(f"https://{parts.netloc}{root}", label)

    @property
    def host(self) -> str:
        """The host name or IP address the server certificate must match."""
        return urlsplit(self.base_url).hostname or ""

    def url_for(self, operation: str) -> str:
        """The URL of an operation such as ``cacerts`` or ``simpleenroll``."""
        label = f"/{self.label}" if self.label else ""
        return f"{self.base_url}{label}/{operation}"


@dataclass(frozen=True)
class ConnectionInfo:
    """The TLS connection that carried the last answer, for channel binding (3.5).

    :param stream: the connection itself (compared by identity, never used).
    """

    tls_version: str | None
    tls_unique: bytes | None
    tls_exporter: bytes | None
    stream: object


class EstClient(ClosedOnExit):
    """RFC 7030 client: cacerts, csrattrs, simpleenroll, simplereenroll.

    :param endpoint: the server and label.
    :param tls: server trust and optional client identity for the TLS transport.
    :param credentials: HTTP Basic/Digest credentials (RFC 7030 section 3.2.3); refused
        on a provisional connection whose server is not authenticated.
    :param timeout: seconds allowed for each request as a whole.
    :param proxy: an ``http://`` proxy to tunnel through (CONNECT); by default
        (``env_proxy``) HTTPS_PROXY / NO_PROXY decide.
    """

    def __init__(
        self,
        endpoint: EstEndpoint,
        tls: TlsSettings,
        *,
        credentials: HttpCredentials | None = None,
        timeout: float = 30.0,
        proxy: str | None = None,
        env_proxy: bool = True,
    ) -> None:
        if credentials is not None and not tls.trust.verify:
            raise UsageError("credentials are never sent to a server that is not authenticated")
        self.endpoint = endpoint
        self._last_stream: typing.Any = None
        self._http = httpx.Client(
            transport=TokenTlsTransport(
                tls,
                timeout=timeout,
                proxy=proxy or (proxy_for(endpoint.base_url) if env_proxy else None),
            ),
            auth=ChallengeAuth(credentials) if credentials else None,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            headers={"User-Agent": "est-hw"},
        )

    # --- RFC 7030 section 4.1: distribution of CA certificates -----------------------------

    def cacerts(self) -> list[x509.Certificate]:
        """GET /cacerts: the current CA certificates (section 4.1.2, 4.1.3)."""
        what = "the /cacerts response"
        response = self._send("GET", "cacerts", what=what)
        self._expect_ok(response, what)
        messages.check_media_type(
            response.headers.get("content-type"), messages.CERTS_ONLY_TYPE, what=what
        )
        return messages.decode_certs_only(response.content, what=what)

    # --- RFC 7030 section 4.5: CSR attributes ----------------------------------------------

    def csrattrs(self) -> messages.CsrAttributes:
        """GET /csrattrs (section 4.5); 204 and 404 mean "no attributes" (section 4.5.2)."""
        what = "the /csrattrs response"
        response = self._send("GET", "csrattrs", what=what)
        if response.status_code in (204, 404):
            return messages.CsrAttributes()
        self._expect_ok(response, what)
        messages.check_media_type(
            response.headers.get("content-type"), messages.CSRATTRS_TYPE, what=what
        )
        return messages.decode_csrattrs_response(response.content)

    # --- RFC 7030 section 4.2: enrollment ---------------------------------------------------

    def simpleenroll(
        self, csr: x509.CertificateSigningRequest, *, bound_to: object | None = None
    ) -> list[x509.Certificate]:
        """POST /simpleenroll (section 4.2.1); returns the certificates of the answer.

        :param bound_to: the connection (:attr:`ConnectionInfo.stream`) whose channel
            binding the CSR carries (section 3.5); a refusal that came over another
            connection is reported as a lost binding.
        """
        return self._enroll("simpleenroll", csr, bound_to)

    def simplereenroll(
        self, csr: x509.CertificateSigningRequest, *, bound_to: object | None = None
    ) -> list[x509.Certificate]:
        """POST /simplereenroll (section 4.2.2); returns the certificates of the answer."""
        return self._enroll("simplereenroll", csr, bound_to)

    # --- RFC 7030 section 4.4: server-side key generation -----------------------------------

    def serverkeygen(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        decrypt_key: rsa.RSAPrivateKey | None = None,
    ) -> ServerGeneratedKey:
        """POST /serverkeygen (section 4.4.1); the key and certificate (section 4.4.2).

        :param decrypt_key: the key the CSR's AsymmetricDecryptKeyIdentifier names; it
            decrypts a CMS-encrypted key part.
        """
        from est_hw.est.serverkeygen import decode_serverkeygen  # multipart, CMS: on use

        what = "the /serverkeygen response"
        response = self._post_base64(
            "serverkeygen", csr.public_bytes(serialization.Encoding.DER), messages.PKCS10_TYPE
        )
        self._expect_ok(response, what)
        return decode_serverkeygen(
            response.content,
            response.headers.get("content-type"),
            what=what,
            decrypt_key=decrypt_key,
        )

    # --- RFC 7030 section 4.3: full CMC -------------------------------------------------------

    def fullcmc(self, request_der: bytes) -> bytes:
        """POST /fullcmc (section 4.3.1) a caller-made CMC request; the CMC response DER.

        A pass-through: the request is sent as given and the response is returned as
        given (section 4.3.2), after only the base64 and media-type checks.
        """
        what = "the /fullcmc response"
        response = self._post_base64("fullcmc", request_der, messages.CMC_REQUEST_TYPE)
        self._expect_ok(response, what)
        messages.check_media_type(
            response.headers.get("content-type"), messages.CMC_RESPONSE_TYPE, what=what
        )
        return messages.decode_base64_body(response.content, what=what)

    def _post_base64(
        self, operation: str, der: bytes, content_type: str, bound_to: object | None = None
    ) -> httpx.Response:
        """POST ``der`` as 64-column base64 (section 4 / RFC 8951); 202 raises pending."""
        response = self._send(
            "POST",
            operation,
            what=f"the /{operation} response",
            content=messages.encode_base64_body(der),
            headers={"Content-Type": content_type, "Content-Transfer-Encoding": "base64"},
        )
        if bound_to is not None and self._last_stream is not bound_to:
            if response.status_code not in (200, 202):
                raise ProtocolError(
                    f"/{operation}: HTTP {response.status_code} on a new TLS connection: the "
                    "server closed the connection the CSR was bound to (RFC 7030 3.5)"
                )
            log.warning("/%s went over a new TLS connection; binding unchecked", operation)
        if response.status_code == 202:
            raise EnrollmentPendingError(
                f"the server accepted the request for later processing (/{operation})",
                retry_after=self._retry_after(response),
            )
        return response

    def last_connection(self) -> ConnectionInfo:
        """The TLS connection of the last answer (after at least one request)."""
        stream = self._last_stream
        if stream is None:
            raise ProtocolError("no connection to the server yet")
        return ConnectionInfo(
            tls_version=stream.get_extra_info("tls_version"),
            tls_unique=stream.get_extra_info("tls_unique"),
            tls_exporter=stream.get_extra_info("tls_exporter"),
            stream=stream,
        )

    def _enroll(
        self, operation: str, csr: x509.CertificateSigningRequest, bound_to: object | None
    ) -> list[x509.Certificate]:
        what = f"the /{operation} response"
        der = csr.public_bytes(serialization.Encoding.DER)
        response = self._post_base64(operation, der, messages.PKCS10_TYPE, bound_to)
        self._expect_ok(response, what)
        messages.check_media_type(
            response.headers.get("content-type"), messages.CERTS_ONLY_TYPE, what=what
        )
        return messages.decode_certs_only(response.content, what=what)

    # --- plumbing --------------------------------------------------------------------------

    def _send(
        self,
        method: str,
        operation: str,
        *,
        what: str,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send one request, following same-origin redirects only.

        A redirect keeps method, body and credentials, so it is followed only to the same
        origin (https, host, port: RFC 6454); anything else is refused, which also means
        credentials never go to another host and never over plain http.
        """
        url = httpx.URL(self.endpoint.url_for(operation))
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with metrics.phase("http"):
                    response = self._http.request(method, url, content=content, headers=headers)
            except httpx.HTTPError as exc:
                raise ProtocolError(f"{what}: {type(exc).__name__}: {exc}") from None
            self._last_stream = response.extensions.get("network_stream")
            if response.status_code not in _REDIRECTS or "location" not in response.headers:
                return response
            target = url.join(response.headers["location"])
            if (target.scheme, target.host, target.port) != (url.scheme, url.host, url.port):
                raise ProtocolError(
                    f"{what}: HTTP {response.status_code} redirect to another origin "
                    f"({target.scheme}://{target.host}"
                    f"{':' + str(target.port) if target.port else ''}) refused"
                )
            log.info("following a same-origin redirect to %s", target.path)
            url = target
        raise ProtocolError(f"{what}: more than {MAX_REDIRECTS} redirects")

    @staticmethod
    def _retry_after(response: httpx.Response) -> int:
        value = response.headers.get("retry-after")
        if value is None:
            return DEFAULT_RETRY_AFTER
        return messages.parse_retry_after(value, now=datetime.datetime.now(datetime.UTC))

    @staticmethod
    def _expect_ok(response: httpx.Response, what: str) -> None:
        """Turn anything but 200 into the matching error (RFC 7030 section 4.2.3)."""
        status = response.status_code
        if status == 200:
            return
        text = _server_text(response)
        detail = f": {text}" if text else ""
        if 300 <= status < 400:
            location = response.headers.get("location", "?")
            raise ProtocolError(f"{what}: HTTP {status} redirect to {location} not followed")
        if status in (401, 403):
            raise AuthenticationError(
                f"the server refused authentication (HTTP {status}){detail}",
                status=status,
                server_text=text,
            )
        raise HttpStatusError(f"{what}: HTTP {status}{detail}", status=status, server_text=text)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()


def _server_text(response: httpx.Response) -> str:
    """The server's error text: printable, one line, truncated."""
    try:
        text = response.content[: _SERVER_TEXT_LIMIT * 2].decode("utf-8", "replace")
    except httpx.HTTPError:
        return ""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text[:_SERVER_TEXT_LIMIT]

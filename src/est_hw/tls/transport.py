"""``TokenTlsTransport``: an httpx transport whose TLS handshakes a token key can sign.

Plug it into ``httpx.Client(transport=TokenTlsTransport(settings))``.  It wraps an
httpcore ``ConnectionPool`` (HTTP/1.1 only) over :class:`~est_hw.tls.stream.
TlsNetworkBackend` and adds what an EST client (RFC 7030) needs from its transport:

* https only (RFC 7030 section 3.3: EST runs over TLS); ``http://`` is refused.
* One deadline for the whole request (connect, handshake, send, the complete answer):
  httpx's per-read timeouts never fire on a server that drips a byte a second.
* A cap on the answer's size, so a hostile server cannot fill memory; the answer is
  read completely inside the transport and returned with its body in memory.
  ``Accept-Encoding: identity`` is sent and an encoded answer is refused (no
  decompression bombs; RFC 7030 uses no content coding).
* Errors are :mod:`est_hw.errors`: :class:`TrustError` (the server's chain or name),
  :class:`ConnectionFailedError` and subclasses (connect, handshake, I/O, deadline),
  :class:`ProtocolError` (https only, malformed HTTP, answer too large).
* ``response.extensions["network_stream"].get_extra_info("tls_unique")`` (and
  ``"tls_exporter"``, ``"tls_version"``, ``"server_chain"``) give the channel bindings of
  RFC 7030 section 3.5 for the connection the answer came on.  Connections are kept
  alive, so a following request to the same origin normally reuses that connection.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterable

import httpcore
import httpx

from est_hw import metrics
from est_hw.errors import (
    ConnectionFailedError,
    DeadlineExceededError,
    EstHwError,
    ProtocolError,
    UsageError,
)
from est_hw.tls.deadline import deadline_scope
from est_hw.tls.settings import TlsSettings
from est_hw.tls.stream import TlsNetworkBackend


def _placeholder_ssl_context() -> ssl.SSLContext:
    """httpcore wants an ``SSLContext`` to set ALPN on; the TLS is done by tlslite-ng."""
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)


def _proxy_pool(proxy: str, settings: TlsSettings) -> httpcore.HTTPProxy:
    """Tunnel through an HTTP proxy with CONNECT (RFC 9110 section 9.3.6).

    The TLS handshake (tlslite-ng, server verified as always) runs inside the tunnel, so
    the proxy sees only the target host and port.  Only ``http://`` proxies: TLS to the
    proxy itself would be TLS inside TLS.
    """
    url = httpx.URL(proxy)
    if url.scheme != "http" or not url.host:
        raise UsageError(f"proxy {url.copy_with(password=None)} is not http://host:port")
    auth = (url.username, url.password) if url.username else None
    return httpcore.HTTPProxy(
        proxy_url=str(url.copy_with(username=None, password=None)),
        proxy_auth=auth,
        ssl_context=_placeholder_ssl_context(),
        http1=True,
        http2=False,
        retries=0,
        network_backend=TlsNetworkBackend(settings),
    )


class TokenTlsTransport(httpx.BaseTransport):
    """An httpx transport over tlslite-ng TLS with a key that may live in a token.

    :param settings: trust anchors, client identity and protocol versions.
    :param timeout: seconds allowed for one whole request, answer included.
    :param max_response_bytes: largest answer body accepted.
    :param proxy: an ``http://[user:password@]host:port`` proxy to tunnel through.
    """

    def __init__(
        self,
        settings: TlsSettings,
        *,
        timeout: float = 30.0,
        max_response_bytes: int = 1 << 20,
        proxy: str | None = None,
    ) -> None:
        if timeout <= 0 or max_response_bytes <= 0:
            raise UsageError("timeout and max_response_bytes must be positive")
        self.settings = settings
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._pool: httpcore.ConnectionPool = (
            _proxy_pool(proxy, settings)
            if proxy
            else httpcore.ConnectionPool(
                ssl_context=_placeholder_ssl_context(),
                http1=True,
                http2=False,
                retries=0,
                network_backend=TlsNetworkBackend(settings),
            )
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "https":
            raise ProtocolError(f"https only: refusing {request.url.scheme}:// ({request.url})")
        deadline = time.monotonic() + self.timeout
        with deadline_scope(deadline):
            try:
                status, headers, body, extensions = self._exchange(request)
            except EstHwError:
                raise
            except httpcore.TimeoutException as exc:
                if time.monotonic() >= deadline:
                    raise DeadlineExceededError(
                        f"no complete answer within {self.timeout:g} s"
                    ) from exc
                raise ConnectionFailedError(f"timed out: {exc}") from exc
            except (httpcore.NetworkError, httpcore.ProxyError) as exc:
                raise ConnectionFailedError(str(exc) or type(exc).__name__) from exc
            except httpcore.RemoteProtocolError as exc:
                if "disconnected" in str(exc).lower():
                    raise ConnectionFailedError(str(exc)) from exc
                raise ProtocolError(f"malformed HTTP answer: {exc}") from exc
            except (httpcore.ProtocolError, httpcore.UnsupportedProtocol) as exc:
                raise ProtocolError(str(exc) or type(exc).__name__) from exc
        return httpx.Response(
            status_code=status, headers=headers, content=body, extensions=extensions
        )

    def close(self) -> None:
        self._pool.close()

    def _exchange(
        self, request: httpx.Request
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, dict[str, object]]:
        headers = [(k, v) for k, v in request.headers.raw if k.lower() != b"accept-encoding"]
        headers.append((b"Accept-Encoding", b"identity"))
        extensions = dict(request.extensions)
        given = dict(extensions.get("timeout") or {})
        extensions["timeout"] = {
            name: min(given.get(name) or self.timeout, self.timeout)
            for name in ("connect", "read", "write", "pool")
        }
        assert isinstance(request.stream, Iterable)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=headers,
            content=request.stream,
            extensions=extensions,
        )
        metrics.count("http_requests")
        response = self._pool.handle_request(core_request)
        try:
            body = self._read_body(response)
        finally:
            response.close()
        return response.status, list(response.headers), body, dict(response.extensions)

    def _read_body(self, response: httpcore.Response) -> bytes:
        limit = self.max_response_bytes
        for name, value in response.headers:
            lname = name.lower()
            if lname == b"content-length" and value.strip().isdigit() and int(value) > limit:
                raise ProtocolError(f"answer too large: {int(value)} bytes (limit {limit})")
            if lname == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                raise ProtocolError(f"answer has a content coding: {value.decode('latin-1')}")
        chunks: list[bytes] = []
        size = 0
        assert isinstance(response.stream, Iterable)
        for chunk in response.stream:
            size += len(chunk)
            if size > limit:
                raise ProtocolError(f"answer too large: more than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

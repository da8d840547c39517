"""HTTP/1.1 over TLS for the test server: stdlib ``http.server`` and ``ssl`` only.

The TLS handshake runs in the connection's worker thread (a slow or broken client never
stalls the accept loop); each request is handed to :class:`~est_hw.testing.app.EstApp`.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography import x509

from est_hw.testing import hostile_net as hostile
from est_hw.testing.app import EstApp, Outcome, Request, text_response
from est_hw.testing.config import RequestLog, RequestRecord, Response

__all__ = ["EstHttpServer", "EstRequestHandler"]

log = logging.getLogger("est_hw.testing.server")

HANDSHAKE_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
CLOSE_TIMEOUT = 1.0
#: request headers kept in :class:`RequestRecord` (lower-case)
RECORDED_HEADERS = (
    "host",
    "user-agent",
    "accept",
    "connection",
    "content-type",
    "content-length",
    "content-transfer-encoding",
    "transfer-encoding",
    "authorization",
    "expect",
)


def _close_tls(tls: ssl.SSLSocket) -> None:
    """Send close_notify (strict clients treat a bare TCP close as truncation), then close."""
    with contextlib.suppress(OSError, ValueError):
        tls.settimeout(CLOSE_TIMEOUT)
        tls.unwrap()
    tls.close()


class EstHttpServer(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS on every accepted connection."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        ssl_context: ssl.SSLContext,
        app: EstApp,
        requests: RequestLog,
        tls_failures: list[str],
    ) -> None:
        super().__init__(address, EstRequestHandler)
        self.ssl_context = ssl_context
        self.app = app
        self.requests = requests
        self.tls_failures = tls_failures
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def next_connection_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """Handshake, then serve the connection until it closes (worker thread)."""
        raw: socket.socket = request
        misbehave = hostile.tcp_behaviour(self.app.config)
        if misbehave is not None:
            self._misbehave_on_tcp(raw, client_address, misbehave)
            return
        raw.settimeout(HANDSHAKE_TIMEOUT)
        try:
            tls = self.ssl_context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            message = f"{client_address[0]} TLS handshake failed: {exc}"
            with self._lock:
                self.tls_failures.append(message)
            log.info("%s", message)
            raw.close()
            return
        if hostile.closes_after_handshake(self.app.config):
            log.info("%s misbehaving: closing after the handshake", client_address[0])
            _close_tls(tls)
            return
        with self._lock:
            self._connections.add(tls)
        try:
            EstRequestHandler(tls, client_address, self)
        except (ssl.SSLError, OSError) as exc:
            log.info("%s connection error: %s", client_address[0], exc)
        finally:
            with self._lock:
                self._connections.discard(tls)
            _close_tls(tls)

    def _misbehave_on_tcp(
        self, raw: socket.socket, client_address: Any, misbehave: hostile.TcpBehaviour
    ) -> None:
        """Hand the bare TCP connection to a tcp misbehaviour, then close it."""
        log.info("%s misbehaving on TCP: %s", client_address[0], self.app.config.misbehaviour)
        with self._lock:
            self._connections.add(raw)
        try:
            misbehave(raw)
        except OSError as exc:
            log.info("%s connection error: %s", client_address[0], exc)
        finally:
            with self._lock:
                self._connections.discard(raw)
            raw.close()

    def close_connections(self) -> None:
        """Cut every open keep-alive connection (used when stopping)."""
        with self._lock:
            open_now = list(self._connections)
        for conn in open_now:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("%s unexpected error", client_address[0])


class EstRequestHandler(BaseHTTPRequestHandler):
    """One TLS connection: parses HTTP/1.1 requests and sends the app's responses."""

    protocol_version = "HTTP/1.1"
    server_version = "est-hw-test/0.1"
    sys_version = ""
    timeout = IDLE_TIMEOUT
    disable_nagle_algorithm = True
    server: EstHttpServer
    connection: ssl.SSLSocket

    def setup(self) -> None:
        super().setup()
        conn = self.connection
        self.connection_id = self.server.next_connection_id()
        self.tls_version = conn.version()
        der = conn.getpeercert(binary_form=True)
        self.peer_cert = x509.load_der_x509_certificate(der) if der else None
        self.tls_unique = conn.get_channel_binding("tls-unique")

    # Every method goes through one dispatcher: wrong methods get 405, not 501.
    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def do_OPTIONS(self) -> None:
        self._serve()

    def _read_body(self) -> bytes | Response:
        """The request body by Content-Length; chunked bodies are refused (411)."""
        if self.headers.get("Transfer-Encoding") is not None:
            response = text_response(411, "send a Content-Length; chunked bodies are refused")
            response.close = True
            return response
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
            if length < 0:
                raise ValueError(length_header)
        except ValueError:
            response = text_response(400, "malformed Content-Length")
            response.close = True
            return response
        if length > self.server.app.config.max_body:
            response = text_response(413, "request body too large")
            response.close = True
            return response
        body = self.rfile.read(length)
        if len(body) != length:
            response = text_response(400, "request body shorter than its Content-Length")
            response.close = True
            return response
        return body

    def _serve(self) -> None:
        body = self._read_body()
        headers = {k.lower(): v for k, v in self.headers.items()}
        if self.request_version == "HTTP/1.1" and "host" not in headers and isinstance(body, bytes):
            body = text_response(400, "HTTP/1.1 requests need a Host header (RFC 9112 3.2)")
        if isinstance(body, Response):
            outcome = Outcome(body, "", reason=body.body.decode().strip())
            body = b""
        else:
            request = Request(
                method=self.command,
                target=self.path,
                headers=headers,
                body=body,
                tls_version=self.tls_version,
                peer_cert=self.peer_cert,
                tls_unique=self.tls_unique,
                connection=self.connection_id,
            )
            outcome = self.server.app.handle(request)
        response = outcome.response
        # Record before sending, so a client that got the answer finds the record.
        self.server.requests.append(
            RequestRecord(
                method=self.command,
                path=self.path,
                headers={k: headers[k] for k in RECORDED_HEADERS if k in headers},
                body=body,
                status=response.status,
                tls_version=self.tls_version,
                peer_cert=self.peer_cert is not None,
                connection=self.connection_id,
                user=outcome.user,
                reason=outcome.reason,
            )
        )
        log.info(
            "%s #%d %s %s %s %d%s%s%s",
            self.client_address[0],
            self.connection_id,
            self.tls_version,
            self.command,
            self.path,
            response.status,
            f" user={outcome.user}" if outcome.user else "",
            " client-cert" if self.peer_cert is not None else "",
            f" ({outcome.reason})" if outcome.reason else "",
        )
        self._send(response)

    def _send(self, response: Response) -> None:
        if response.raw is not None:  # a misbehaviour writes the bytes itself
            self.wfile.flush()
            self.close_connection = True
            response.raw(self.connection)
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        if response.status not in (204, 304) and response.header("Content-Length") is None:
            self.send_header("Content-Length", str(len(response.body)))
        if response.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and response.status not in (204, 304):
            self.wfile.write(response.body)
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Requests are logged once, by :meth:`_serve`."""

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.client_address[0], format % args)

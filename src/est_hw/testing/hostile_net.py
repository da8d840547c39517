"""The hostile test server below HTTP: tcp and tls misbehaviours, and a plain listener.

* :func:`tcp_behaviour` -- the handler gives it the accepted TCP socket before any TLS;
* :func:`server_identity` and :func:`tune_tls_context` -- the server's TLS certificate
  chain and context; :func:`closes_after_handshake` -- the handler drops the connection
  right after the handshake;
* :class:`PlainListener` -- a plaintext TCP listener that records what reaches it: the
  place to point a redirect at, to prove that nothing (no credentials) was sent there.

Stdlib and ``cryptography`` only, like the rest of the test server.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable
from types import TracebackType

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from est_hw.testing import rawhttp
from est_hw.testing.ca import TestCa
from est_hw.testing.config import ServerConfig
from est_hw.testing.misbehaviour import Misbehaviour

__all__ = [
    "PlainListener",
    "TcpBehaviour",
    "closes_after_handshake",
    "server_identity",
    "stranger_ca",
    "tcp_behaviour",
    "tune_tls_context",
]

M = Misbehaviour
_STRANGERS: dict[str, TestCa] = {}
_STRANGER_LOCK = threading.Lock()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def stranger_ca() -> TestCa:
    """A CA nobody trusts (made once per process)."""
    with _STRANGER_LOCK:
        if "ca" not in _STRANGERS:
            _STRANGERS["ca"] = TestCa.create("est-hw hostile stranger")
        return _STRANGERS["ca"]


# --- tcp -------------------------------------------------------------------------------------


def _read_some(sock: socket.socket, wait: float = 2.0) -> bytes:
    """Whatever the client sends first (its ClientHello), or b"" after ``wait`` seconds."""
    try:
        sock.settimeout(wait)
        return sock.recv(16 * 1024)
    except OSError:
        return b""


def _stay_silent(sock: socket.socket) -> None:
    deadline = time.monotonic() + rawhttp.MAX_STALL
    while time.monotonic() < deadline:
        try:
            sock.settimeout(0.25)
            if not sock.recv(4096):
                return
        except TimeoutError:
            continue
        except OSError:
            return


def _reset(sock: socket.socket) -> None:
    _read_some(sock)
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _plaintext_http(sock: socket.socket) -> None:
    _read_some(sock)
    body = b"<html><body>400 The plain HTTP request was sent to HTTPS port</body></html>\n"
    head = (
        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with contextlib.suppress(OSError):
        sock.sendall(head + body)


def _garbage(sock: socket.socket) -> None:
    _read_some(sock)
    with contextlib.suppress(OSError):
        sock.sendall(b"\x00\xffnot TLS at all\x00" * 32)


#: ``behaviour(sock)``: what a tcp misbehaviour does with an accepted connection
TcpBehaviour = Callable[[socket.socket], None]

_TCP: dict[Misbehaviour, TcpBehaviour] = {
    M.TCP_SILENT: _stay_silent,
    M.TCP_CLOSE: lambda sock: None,
    M.TCP_RESET: _reset,
    M.TCP_PLAINTEXT_HTTP: _plaintext_http,
    M.TCP_GARBAGE: _garbage,
}


def tcp_behaviour(config: ServerConfig) -> TcpBehaviour | None:
    """What to do with an accepted TCP socket instead of TLS (then it is closed), or None."""
    if config.misbehaviour is None:
        return None
    return _TCP.get(config.misbehaviour)


# --- tls -------------------------------------------------------------------------------------


def _general_names(names: tuple[str, ...]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def _server_leaf(
    ca: TestCa,
    names: tuple[str, ...],
    *,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    eku: x509.ObjectIdentifier = ExtendedKeyUsageOID.SERVER_AUTH,
    self_signed: bool = False,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    issuer = subject if self_signed else ca.issuing_cert.subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_general_names(names)), critical=False)
        .add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    )
    signer = key if self_signed else ca.issuing_key
    return builder.sign(signer, hashes.SHA256()), key


def server_identity(
    config: ServerConfig, ca: TestCa
) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
    """The TLS certificate chain (leaf first) and key the server presents."""
    names = config.server_names
    now = _now()
    day = datetime.timedelta(days=1)
    mode = config.misbehaviour
    if mode is M.TLS_WRONG_NAME:
        cert, key = ca.issue_server_certificate(["wrong.example"])
    elif mode is M.TLS_EXPIRED:
        cert, key = _server_leaf(ca, names, not_before=now - 30 * day, not_after=now - day)
    elif mode is M.TLS_NOT_YET_VALID:
        cert, key = _server_leaf(ca, names, not_before=now + day, not_after=now + 30 * day)
    elif mode is M.TLS_SELF_SIGNED:
        cert, key = _server_leaf(
            ca, names, not_before=now - day, not_after=now + 30 * day, self_signed=True
        )
        return [cert], key
    elif mode is M.TLS_UNTRUSTED_CA:
        stranger = stranger_ca()
        cert, key = stranger.issue_server_certificate(list(names))
        return [cert, stranger.issuing_cert], key
    elif mode is M.TLS_CLIENT_AUTH_EKU:
        cert, key = _server_leaf(
            ca,
            names,
            not_before=now - day,
            not_after=now + 30 * day,
            eku=ExtendedKeyUsageOID.CLIENT_AUTH,
        )
    else:
        cert, key = ca.issue_server_certificate(list(names))
    if mode is M.TLS_NO_INTERMEDIATE:
        return [cert], key
    return [cert, ca.issuing_cert], key


def tune_tls_context(config: ServerConfig, context: ssl.SSLContext) -> None:
    """Restrict the server's TLS context as the misbehaviour asks."""
    if config.misbehaviour is M.TLS_NO_SHARED_CIPHER:
        # TLS 1.2 with a CBC suite only: est-hw offers AEAD suites only.
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.set_ciphers("ECDHE-ECDSA-AES128-SHA")


def closes_after_handshake(config: ServerConfig) -> bool:
    """True when the server drops every connection right after the TLS handshake."""
    return config.misbehaviour is M.TLS_CLOSE_AFTER_HANDSHAKE


# --- a plaintext listener ----------------------------------------------------------------------


class PlainListener:
    """A plaintext TCP listener on 127.0.0.1 that records what clients send.

    Answers each connection with a 200 and closes it.  Use as a context manager; ``url``
    is ``http://127.0.0.1:PORT``.
    """

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self._lock = threading.Lock()
        self._received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="plain-listener", daemon=True)

    @property
    def port(self) -> int:
        return int(self._sock.getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[bytes]:
        """What each connection sent, in order."""
        with self._lock:
            return list(self._received)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                data = _read_some(conn, 1.0)
                with self._lock:
                    self._received.append(data)
                with contextlib.suppress(OSError):
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )

    def __enter__(self) -> PlainListener:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(timeout=5)

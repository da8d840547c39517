"""httpcore network backend and streams whose TLS is done by tlslite-ng.

httpcore opens a TCP stream with :meth:`TlsNetworkBackend.connect_tcp` and upgrades it
with ``start_tls``; this module's ``start_tls`` ignores the ``ssl.SSLContext`` httpcore
passes (a placeholder: Python's ssl cannot sign with a token key) and runs the tlslite-ng
handshake of :mod:`est_hw.tls.connection` with the :class:`TlsSettings` instead.

The TLS stream answers ``get_extra_info`` with, besides httpcore's own keys:

``"ssl_object"``  an object whose ``selected_alpn_protocol()`` is ``"http/1.1"``
``"tls_version"``  ``"TLSv1.2"`` or ``"TLSv1.3"``
``"tls_unique"``  RFC 5929 tls-unique (TLS 1.2), else ``None`` (RFC 7030 section 3.5)
``"tls_exporter"``  RFC 9266 tls-exporter (32 bytes), or ``None``
``"server_chain"``  the server's certificates as sent, leaf first
``"extended_master_secret"``  whether RFC 7627 was negotiated (TLS 1.3: always)

Errors are :mod:`est_hw.errors` exceptions; httpcore passes them through unchanged.
"""

from __future__ import annotations

import socket
import ssl
import typing

import httpcore

from est_hw import metrics
from est_hw.errors import ConnectionFailedError, DeadlineExceededError
from est_hw.tls.connection import TlsChannel
from est_hw.tls.deadline import DeadlineExpired, bounded, remaining, socket_readable
from est_hw.tls.settings import TlsSettings

if typing.TYPE_CHECKING:
    from collections.abc import Iterable


class AlpnInfo:
    """What httpcore reads as ``ssl_object`` after the handshake."""

    def __init__(self, protocol: str | None) -> None:
        self._protocol = protocol

    def selected_alpn_protocol(self) -> str | None:
        return self._protocol


def _timeout(what: str) -> ConnectionFailedError:
    left = remaining()
    if left is not None and left <= 0.01:
        return DeadlineExceededError(f"request deadline exceeded during {what}")
    return ConnectionFailedError(f"{what} timed out")


class TcpStream(httpcore.NetworkStream):
    """A connected TCP socket, before ``start_tls``."""

    def __init__(self, sock: socket.socket, settings: TlsSettings) -> None:
        self._sock = sock
        self._settings = settings

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(bounded(timeout))
            return self._sock.recv(max_bytes)
        except TimeoutError:
            raise _timeout("read") from None
        except OSError as exc:
            raise ConnectionFailedError(f"read failed: {exc.strerror or exc}") from None

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            while buffer:
                self._sock.settimeout(bounded(timeout))
                buffer = buffer[self._sock.send(buffer) :]
        except TimeoutError:
            raise _timeout("write") from None
        except OSError as exc:
            raise ConnectionFailedError(f"write failed: {exc.strerror or exc}") from None

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """Run the tlslite-ng handshake (``ssl_context`` is ignored, see module doc)."""
        if not server_hostname:
            self.close()
            raise ConnectionFailedError("TLS needs the server's host name")
        try:
            bounded(timeout)
        except DeadlineExpired:
            self.close()
            raise _timeout("the TLS handshake") from None
        with metrics.phase("tls_handshake"):
            channel = TlsChannel.establish(self._sock, server_hostname, self._settings, timeout)
        metrics.count("tls_handshakes")
        return TlsStream(channel)

    def get_extra_info(self, info: str) -> typing.Any:
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return socket_readable(self._sock)
        if info in ("client_addr", "server_addr"):
            return self._sock.getsockname() if info == "client_addr" else self._peer()
        return None

    def _peer(self) -> typing.Any:
        try:
            return self._sock.getpeername()
        except OSError:
            return None


class TlsStream(httpcore.NetworkStream):
    """Application data over an established :class:`TlsChannel`."""

    def __init__(self, channel: TlsChannel) -> None:
        self.channel = channel

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.channel.read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            self.channel.write(buffer, timeout)

    def close(self) -> None:
        self.channel.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        raise ConnectionFailedError("TLS inside TLS (an https proxy) is not supported")

    def get_extra_info(self, info: str) -> typing.Any:
        channel = self.channel
        sock = channel.raw_socket
        values: dict[str, typing.Callable[[], typing.Any]] = {
            "ssl_object": lambda: AlpnInfo(channel.alpn or "http/1.1"),
            "tls_version": lambda: channel.version,
            "tls_unique": lambda: channel.tls_unique,
            "tls_exporter": lambda: channel.tls_exporter,
            "server_chain": lambda: list(channel.server_chain),
            "extended_master_secret": lambda: channel.extended_master_secret,
            "socket": lambda: sock,
            "client_addr": lambda: sock.getsockname() if sock.fileno() >= 0 else None,
            "server_addr": lambda: sock.getpeername() if sock.fileno() >= 0 else None,
            "is_readable": channel.idle_readable,
        }
        getter = values.get(info)
        return None if getter is None else getter()


class TlsNetworkBackend(httpcore.NetworkBackend):
    """Opens TCP connections whose ``start_tls`` runs the tlslite-ng handshake."""

    def __init__(self, settings: TlsSettings) -> None:
        self.settings = settings

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        source = None if local_address is None else (local_address, 0)
        try:
            sock = socket.create_connection((host, port), bounded(timeout), source_address=source)
        except TimeoutError:
            raise _timeout(f"connect to {host}:{port}") from None
        except OSError as exc:
            raise ConnectionFailedError(
                f"cannot connect to {host}:{port}: {exc.strerror or exc}"
            ) from None
        try:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            raise ConnectionFailedError(f"socket option failed: {exc.strerror or exc}") from None
        return TcpStream(sock, self.settings)

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise ConnectionFailedError("EST over a Unix socket is not supported")

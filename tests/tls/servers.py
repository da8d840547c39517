"""Real TLS peers for the tests, on 127.0.0.1 and random ports.

* :class:`PythonTlsServer`: a thread running Python's ssl (OpenSSL) as an HTTP/1.1 server;
  it records, per connection, the protocol version, the client certificate, the
  server-side tls-unique and whether any request arrived.  Modes make it misbehave
  (drip one byte at a time, answer too much).
* :class:`ProcessServer`: ``openssl s_server`` or ``gnutls-serv`` as a child process,
  stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.tls.pki import Issued

_TLS_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


@dataclass
class Seen:
    """What the Python server saw on one connection."""

    version: str | None = None
    peer_cert_der: bytes | None = None
    tls_unique: bytes | None = None
    requests: list[bytes] = field(default_factory=list)
    error: str | None = None


class PythonTlsServer:
    """An HTTP/1.1 server over Python's ssl, in a thread.

    :param mode: ``"ok"`` (a small answer), ``"drip"`` (headers, then one body byte
        every ``drip_interval`` seconds), ``"big"`` (an answer of ``big_size`` bytes with
        Content-Length), ``"big-chunked"`` (the same, chunked, no Content-Length).
    """

    def __init__(
        self,
        chain_path: Path,
        key_path: Path,
        *,
        version: str | None = None,
        client_ca: Path | None = None,
        mode: str = "ok",
        big_size: int = 2 << 20,
        drip_interval: float = 0.2,
        keep_alive: bool = True,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain_path, key_path)
        if version:
            ctx.minimum_version = ctx.maximum_version = _TLS_VERSIONS[version]
        if client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(client_ca)
        self._ctx = ctx
        self.mode = mode
        self.big_size = big_size
        self.drip_interval = drip_interval
        self.keep_alive = keep_alive
        self.seen: list[Seen] = []
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> PythonTlsServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._listener.close()

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        seen = Seen()
        self.seen.append(seen)
        raw.settimeout(5)
        try:
            with self._ctx.wrap_socket(raw, server_side=True) as tls:
                seen.version = tls.version()
                seen.peer_cert_der = tls.getpeercert(binary_form=True)
                seen.tls_unique = tls.get_channel_binding("tls-unique")
                self._http(tls, seen)
        except (OSError, ssl.SSLError) as exc:
            seen.error = f"{type(exc).__name__}: {exc}"
        finally:
            raw.close()

    def _http(self, tls: ssl.SSLSocket, seen: Seen) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                data = tls.recv(65536)
                if not data:
                    return
                buf += data
            head, _, buf = buf.partition(b"\r\n\r\n")
            seen.requests.append(head)
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < length:
                buf += tls.recv(65536)
            buf = buf[length:]
            if not self._answer(tls, seen):
                return

    def _answer(self, tls: ssl.SSLSocket, seen: Seen) -> bool:
        if self.mode == "drip":
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
            while not self._stop.is_set():
                tls.sendall(b"x")
                time.sleep(self.drip_interval)
            return False
        if self.mode == "big":
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % self.big_size)
            tls.sendall(b"x" * self.big_size)
            return False
        if self.mode == "big-chunked":
            tls.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(self.big_size // len(chunk)):
                tls.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            tls.sendall(b"0\r\n\r\n")
            return False
        body = b"hello from python ssl " + (seen.version or "").encode()
        tls.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        return self.keep_alive


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class ProcessServer:
    """A TLS server process (``openssl s_server``, ``gnutls-serv``) on a random port.

    :param argv: builds the command line for a port.
    :param log: where the process's stdout and stderr go.
    """

    def __init__(self, argv: Callable[[int], list[str]], log: Path) -> None:
        self._argv = argv
        self.log = log
        self.port = 0
        self.pid: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ProcessServer:
        for _attempt in range(5):
            self.port = free_port()
            with self.log.open("wb") as out:
                self._proc = subprocess.Popen(
                    self._argv(self.port), stdin=subprocess.PIPE, stdout=out, stderr=out
                )
            self.pid = self._proc.pid
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _accepts(self.port):
                    return self
                time.sleep(0.02)
            self._stop()
        raise RuntimeError(f"server did not start: {self.log.read_text(errors='replace')}")

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        proc, pid = self._proc, self.pid
        if proc is None or pid is None:
            return
        if proc.poll() is None:
            os.kill(pid, signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdin:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        self._proc = self.pid = None

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/"

    def type(self, text: str) -> None:
        """Type a line into the server's stdin (``s_server`` commands such as ``c``)."""
        assert self._proc is not None
        assert self._proc.stdin is not None
        self._proc.stdin.write(text.encode() + b"\n")
        self._proc.stdin.flush()

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float = 3.0) -> str:
        """Wait until ``text`` appears in the log; return the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.output()
            if text in out:
                return out
            time.sleep(0.02)
        raise AssertionError(f"{text!r} not in server output:\n{self.output()}")


def s_server(issued: Issued, log: Path, *extra: str, www: bool = True) -> ProcessServer:
    """``openssl s_server`` with the given certificate, key and options."""

    def argv(port: int) -> list[str]:
        cmd = [
            "openssl",
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(issued.chain_path),
            "-key",
            str(issued.key_path),
            *extra,
        ]
        if len(issued.chain) > 1:
            cmd += ["-cert_chain", str(issued.cas_path)]
        return [*cmd, "-www"] if www else cmd

    return ProcessServer(argv, log)


def gnutls_serv(issued: Issued, log: Path, *extra: str) -> ProcessServer:
    """``gnutls-serv --http`` with the given certificate chain, key and options."""

    def argv(port: int) -> list[str]:
        return [
            "gnutls-serv",
            "--http",
            "--port",
            str(port),
            "--x509certfile",
            str(issued.chain_path),
            "--x509keyfile",
            str(issued.key_path),
            *extra,
        ]

    return ProcessServer(argv, log)

"""An overall deadline for one request, enforced on every socket call.

httpx and httpcore time out each read or write separately, so a server that sends one
byte a second never trips a read timeout (FIELD-NOTES).  The transport sets a deadline
for the whole request with :func:`deadline_scope`; :class:`DeadlineSocket` (the socket
tlslite-ng reads and writes) gives each ``recv``/``send`` at most the time left, and
fails at once when none is left.
"""

from __future__ import annotations

import contextvars
import select
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "est_hw_tls_deadline", default=None
)


class DeadlineExpired(TimeoutError):
    """Raised by :class:`DeadlineSocket` when the request's deadline has passed."""


@contextmanager
def deadline_scope(deadline: float) -> Iterator[None]:
    """Run the block under an absolute ``time.monotonic()`` deadline."""
    token = _deadline.set(deadline)
    try:
        yield
    finally:
        _deadline.reset(token)


def remaining() -> float | None:
    """Seconds left before the current deadline (``None``: no deadline)."""
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


def bounded(timeout: float | None) -> float | None:
    """``timeout`` shortened to the time left; raises when the deadline has passed."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise DeadlineExpired("request deadline exceeded")
    return left if timeout is None else min(timeout, left)


class DeadlineSocket:
    """A connected socket whose blocking calls honour an operation timeout and the deadline.

    :param sock: the connected TCP socket (owned: :meth:`close` closes it).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        #: per-operation timeout set by the stream before each read or write.
        self.op_timeout: float | None = None

    def _arm(self) -> None:
        self.sock.settimeout(bounded(self.op_timeout))

    def recv(self, bufsize: int) -> bytes:
        self._arm()
        return self.sock.recv(bufsize)

    def send(self, data: bytes | bytearray | memoryview) -> int:
        self._arm()
        return self.sock.send(data)

    def sendall(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        while view:
            sent = self.send(view)
            view = view[sent:]

    def close(self) -> None:
        self.sock.close()

    def shutdown(self, how: int) -> None:
        self.sock.shutdown(how)

    def fileno(self) -> int:
        return self.sock.fileno()

    def getsockname(self) -> Any:
        return self.sock.getsockname()

    def getpeername(self) -> Any:
        return self.sock.getpeername()

    def settimeout(self, value: float | None) -> None:
        self.op_timeout = value

    def gettimeout(self) -> float | None:
        return self.op_timeout

    def setsockopt(self, level: int, optname: int, value: int | bytes) -> None:
        self.sock.setsockopt(level, optname, value)


def socket_readable(sock: socket.socket) -> bool:
    """Whether ``recv`` would return at once (data or EOF); a closed socket counts."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))

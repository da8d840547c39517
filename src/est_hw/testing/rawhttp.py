"""Raw answers of the hostile test server: bytes written straight to the connection.

The ``http`` misbehaviours of :mod:`est_hw.testing.misbehaviour` need control that
``http.server`` does not give: wrong framing, a body cut short, one byte a second, no answer
at all.  Each function here returns a :data:`~est_hw.testing.config.RawAnswer`: the
handler calls it with the connection (a TLS socket) instead of sending the response
itself, and closes the connection afterwards.

Waiting writers (silence, one byte a second) end when the client goes away, when the
server stops (it shuts the connection down), or after :data:`MAX_STALL` seconds.
"""

from __future__ import annotations

import gzip
import socket
import time

from est_hw.testing.config import RawAnswer, Response

__all__ = [
    "MAX_STALL",
    "abort",
    "chunk",
    "chunked",
    "close_delimited",
    "drip",
    "gzipped",
    "hold_open",
    "huge_chunked",
    "serialize",
    "then_hold_open",
    "write",
]

#: the longest a raw answer keeps a connection open (seconds)
MAX_STALL = 60.0
_REASONS = {
    200: "OK",
    202: "Accepted",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    500: "Internal Server Error",
}


def serialize(
    response: Response,
    *,
    with_length: bool = True,
    length: int | None = None,
    extra_headers: tuple[tuple[str, str], ...] = (),
    body: bytes | None = None,
) -> tuple[bytes, bytes]:
    """``(header block, body)`` of ``response`` as HTTP/1.1 bytes.

    :param with_length: send a Content-Length (not for 204 and 304).
    :param length: the Content-Length to claim instead of the body's true length.
    :param body: the body to send instead of ``response.body``.
    """
    content = response.body if body is None else body
    reason = _REASONS.get(response.status, "Whatever")
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    lines += [
        f"{name}: {value}"
        for name, value in response.headers
        if name.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    lines += [f"{name}: {value}" for name, value in extra_headers]
    if with_length and response.status not in (204, 304):
        lines.append(f"Content-Length: {len(content) if length is None else length}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head, content


def _sendall(conn: socket.socket, data: bytes) -> bool:
    """Send ``data``; False when the client is gone."""
    try:
        conn.sendall(data)
    except OSError:
        return False
    return True


def _client_gone(conn: socket.socket, wait: float) -> bool:
    """Wait up to ``wait`` seconds for the client to close; True when it did (or failed)."""
    try:
        conn.settimeout(wait)
        data = conn.recv(4096)
    except TimeoutError:
        return False
    except (OSError, ValueError):
        return True
    return not data  # a further request is read and ignored


def _hold(conn: socket.socket) -> None:
    deadline = time.monotonic() + MAX_STALL
    while time.monotonic() < deadline:
        if _client_gone(conn, 0.25):
            return


def write(*parts: bytes) -> RawAnswer:
    """Send ``parts`` as they are, then let the handler close the connection."""

    def answer(conn: socket.socket) -> None:
        for part in parts:
            if not _sendall(conn, part):
                return

    return answer


def then_hold_open(*parts: bytes) -> RawAnswer:
    """Send ``parts``, then say nothing more until the client gives up."""

    def answer(conn: socket.socket) -> None:
        for part in parts:
            if not _sendall(conn, part):
                return
        _hold(conn)

    return answer


def hold_open() -> RawAnswer:
    """Answer nothing at all and keep the connection open until the client gives up."""
    return then_hold_open()


def abort() -> RawAnswer:
    """Close at once without an answer (the handler still sends close_notify)."""
    return write()


def drip(data: bytes, *, interval: float = 1.0) -> RawAnswer:
    """Send ``data`` one byte every ``interval`` seconds."""

    def answer(conn: socket.socket) -> None:
        deadline = time.monotonic() + MAX_STALL
        for index in range(len(data)):
            if time.monotonic() > deadline or not _sendall(conn, data[index : index + 1]):
                return
            if _client_gone(conn, interval):
                return

    return answer


def chunk(data: bytes, extension: str = "") -> bytes:
    """One chunk of the chunked transfer coding (RFC 9112 section 7.1)."""
    return f"{len(data):x}{extension}\r\n".encode() + data + b"\r\n"


def chunked(
    response: Response,
    *,
    sizes: tuple[int, ...] = (7, 300),
    last: bool = True,
    bad_size: bool = False,
) -> RawAnswer:
    """``response`` in chunked transfer coding: chunks of ``sizes`` then the rest.

    :param last: send the last (zero) chunk; without it the answer is truncated.
    :param bad_size: make the second chunk's size a non-hex string.
    """
    head, body = serialize(
        response, with_length=False, extra_headers=(("Transfer-Encoding", "chunked"),)
    )
    pieces: list[bytes] = []
    rest = body
    for size in sizes:
        if rest:
            pieces.append(rest[:size])
            rest = rest[size:]
    if rest:
        pieces.append(rest)
    out = [head]
    for number, piece in enumerate(pieces):
        if bad_size and number == 1:
            out.append(b"zz\r\n" + piece + b"\r\n")
        else:
            # a chunk extension is well-formed and must be ignored (RFC 9112 7.1.1)
            out.append(chunk(piece, ";est-hw=test" if number == 0 else ""))
    if last:
        out.append(b"0\r\n\r\n")
    return write(*out)


def huge_chunked(response: Response, total: int, *, piece: int = 64 * 1024) -> RawAnswer:
    """``total`` bytes of base64-looking chunks, announced by no length."""
    head, _ = serialize(
        response, with_length=False, extra_headers=(("Transfer-Encoding", "chunked"),)
    )
    block = chunk(b"QUFB" * (piece // 4))

    def answer(conn: socket.socket) -> None:
        if not _sendall(conn, head):
            return
        sent = 0
        while sent < total:
            if not _sendall(conn, block):
                return
            sent += piece
        _sendall(conn, b"0\r\n\r\n")

    return answer


def close_delimited(response: Response) -> RawAnswer:
    """No Content-Length and no chunking: the body ends where the connection closes
    (RFC 9112 section 6.3, last rule); the handler's close_notify ends it."""
    head, body = serialize(response, with_length=False, extra_headers=(("Connection", "close"),))
    return write(head, body)


def gzipped(response: Response) -> RawAnswer:
    """The body gzip-compressed, declared by Content-Encoding (RFC 7030 uses none)."""
    head, body = serialize(
        response, body=gzip.compress(response.body), extra_headers=(("Content-Encoding", "gzip"),)
    )
    return write(head, body)

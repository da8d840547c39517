"""multipart/mixed answers of /serverkeygen (RFC 7030 4.4.2, RFC 8951 section 5; RFC 2046
section 5.1).

Parsed with the stdlib ``email`` parser: any boundary, CRLF or LF line ends, parts in
either order.  Part bodies are decoded with the tolerant base64 decoder of
:mod:`est_hw.est.codec` (the Content-Transfer-Encoding header is not trusted, RFC 8951).
"""

from __future__ import annotations

import email.parser
import email.policy
from dataclasses import dataclass

from est_hw.errors import ProtocolError
from est_hw.est.codec import decode_base64_body


@dataclass(frozen=True)
class Part:
    """One body part: its media type (lower case, no parameters), parameters, content."""

    media_type: str
    params: dict[str, str]
    content: bytes


def parse_multipart(body: bytes, content_type: str | None, *, what: str) -> list[Part]:
    """Split a multipart/mixed body into its parts, base64-decoding each.

    :raises ProtocolError: not multipart/mixed, no boundary, or a part that is not base64
        (nor raw DER).
    """
    if not content_type or not content_type.lower().lstrip().startswith("multipart/mixed"):
        raise ProtocolError(f"{what} is not multipart/mixed (Content-Type {content_type!r})")
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    try:
        message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(head + body)
    except Exception as exc:  # the email parser's own errors are not an API
        raise ProtocolError(f"{what}: malformed multipart body: {exc}") from None
    if not message.get_boundary() or not message.is_multipart():
        raise ProtocolError(f"{what}: multipart/mixed without a boundary or parts")
    parts = []
    for index, sub in enumerate(message.get_payload(), start=1):
        if sub.is_multipart():
            raise ProtocolError(f"{what}: part {index} is itself multipart")
        raw = sub.get_payload(decode=False)
        data = raw.encode("latin-1") if isinstance(raw, str) else bytes(raw or b"")
        params = {k.lower(): v for k, v in (sub.get_params() or [])[1:]}
        parts.append(
            Part(
                media_type=sub.get_content_type().lower(),
                params=params,
                content=decode_base64_body(data, what=f"{what} part {index}"),
            )
        )
    if not parts:
        raise ProtocolError(f"{what}: multipart/mixed with no parts")
    return parts

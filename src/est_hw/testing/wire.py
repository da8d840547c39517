"""Encodings of the test server's message bodies (RFC 7030 section 4, RFC 8951).

Written independently of ``est_hw.est`` on purpose: the client is tested against it.
"""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

__all__ = [
    "decode_base64_body",
    "encode_base64_body",
    "longest_line",
    "media_type",
    "pkcs7_certs_only",
]

_WHITESPACE = re.compile(rb"[ \t\r\n]+")


class BodyError(ValueError):
    """A request body is not what RFC 7030 asks for; the message is the 400 reason."""


def media_type(content_type: str | None) -> str:
    """The lower-cased type/subtype of a Content-Type header, parameters dropped."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def decode_base64_body(body: bytes) -> bytes:
    """Base64 (RFC 4648 section 4) in any line layout -> bytes (RFC 7030 section 4.2.1).

    Spaces, tabs, CR and LF anywhere are ignored; anything else outside the base64
    alphabet, wrong padding or an empty body is an error.
    """
    compact = _WHITESPACE.sub(b"", body)
    if not compact:
        raise BodyError("empty body: expected base64 of a DER PKCS#10 request")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BodyError(f"body is not valid base64: {exc}") from None


def encode_base64_body(der: bytes, *, width: int = 64, eol: bytes = b"\n") -> bytes:
    """Base64 of ``der`` in lines of ``width`` characters (0: one line), each ended by
    ``eol`` (RFC 7030 section 4, Content-Transfer-Encoding: base64)."""
    text = base64.b64encode(der)
    if width <= 0:
        return text + eol
    lines = [text[i : i + width] for i in range(0, len(text), width)]
    return b"".join(line + eol for line in lines)


def longest_line(body: bytes) -> int:
    """The length of the longest line of ``body`` (CR and LF both end lines)."""
    return max((len(line) for line in re.split(rb"\r\n|\r|\n", body)), default=0)


#: ContentInfo { signedData, SignedData { version 1, digestAlgorithms {}, encapContentInfo
#: { id-data }, certificates [0] {}, signerInfos {} } }: cryptography builds no empty one.
EMPTY_CERTS_ONLY = bytes.fromhex(
    "3025" "06092a864886f70d010702" "a018" "3016" "020101" "3100"
    "300b" "06092a864886f70d010701" "a000" "3100"
)  # fmt: skip


def pkcs7_certs_only(certs: list[x509.Certificate]) -> bytes:
    """A degenerate ("certs-only") CMS SignedData holding ``certs``, DER encoded
    (RFC 5272 section 4.1, used by RFC 7030 sections 4.1.3 and 4.2.3).

    ``certificates`` is a SET OF, so DER sorts it by encoding: the order of ``certs``
    is not kept, and clients must not rely on any order.  An empty list gives a valid
    SignedData with an empty certificate set (for misbehaviour tests).
    """
    if not certs:
        return EMPTY_CERTS_ONLY
    return pkcs7.serialize_certificates(certs, Encoding.DER)

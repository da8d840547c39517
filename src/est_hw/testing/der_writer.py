"""A tiny DER writer (X.690), stdlib only: the test server writes the CsrAttrs it serves
with it (:mod:`est_hw.testing.hostile_csrattrs`), and the tests write what est-hw's own
encoders are checked against, without ``est_hw.est`` or pyasn1 on either side.

Nothing here validates: malformed DER is as easy to write as well-formed.
"""

from __future__ import annotations


def tlv(tag: int, content: bytes) -> bytes:
    """One TLV with a definite, minimal length."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(dotted: str) -> bytes:
    """An OBJECT IDENTIFIER."""
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return tlv(0x06, bytes(body))


def integer(value: int) -> bytes:
    """An INTEGER (two's complement, minimal)."""
    return tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def seq(*items: bytes) -> bytes:
    """A SEQUENCE of ``items``."""
    return tlv(0x30, b"".join(items))


def set_of(*items: bytes) -> bytes:
    """A SET OF ``items``, sorted by their encodings as DER wants."""
    return tlv(0x31, b"".join(sorted(items)))


def utf8(text: str) -> bytes:
    """A UTF8String."""
    return tlv(0x0C, text.encode())


def printable(text: str) -> bytes:
    """A PrintableString."""
    return tlv(0x13, text.encode("ascii"))

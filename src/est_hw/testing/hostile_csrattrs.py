"""CsrAttrs bodies that ask a client for the impossible (the ``csrattrs`` misbehaviours).

/csrattrs (RFC 7030 section 4.5, RFC 9908) tells the client what to put in its CSR, so a
hostile server can ask for a subject cryptography refuses to build, a duplicate
attribute, an extension whose value is junk, a key est-hw does not make.  The DER is
written here by hand, with the stdlib only: the test server never uses ``est_hw.est``.
"""

from __future__ import annotations

from est_hw.testing.misbehaviour import Misbehaviour

__all__ = ["csrattrs_der"]

M = Misbehaviour
_CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_TEMPLATE = "1.2.840.113549.1.9.16.2.61"  # RFC 9908 certificationRequestInfoTemplate
_COMMON_NAME = "2.5.4.3"
_COUNTRY = "2.5.4.6"
_SERIAL_NUMBER = "2.5.4.5"
_KEY_USAGE = "2.5.29.15"


def _tlv(tag: int, content: bytes) -> bytes:
    """One DER TLV with a definite, minimal length."""
    if len(content) < 0x80:
        return bytes([tag, len(content)]) + content
    size = len(content).to_bytes((len(content).bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def _oid(dotted: str) -> bytes:
    arcs = [int(arc) for arc in dotted.split(".")]
    body = bytearray([arcs[0] * 40 + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return _tlv(0x06, bytes(body))


def _integer(value: int) -> bytes:
    return _tlv(0x02, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _seq(*items: bytes) -> bytes:
    return _tlv(0x30, b"".join(items))


def _set(*items: bytes) -> bytes:
    return _tlv(0x31, b"".join(sorted(items)))  # DER: SET OF sorted by encoding


def _attribute(oid: str, *values: bytes) -> bytes:
    return _seq(_oid(oid), _set(*values))


def _utf8(text: str) -> bytes:
    return _tlv(0x0C, text.encode())


def _printable(text: str) -> bytes:
    return _tlv(0x13, text.encode("ascii"))


def _template(*rdns: list[tuple[str, bytes | None]]) -> bytes:
    """A CertificationRequestInfoTemplate (RFC 9908 appendix A) with only a subject."""
    subject = _seq(
        *(_tlv(0x31, b"".join(_seq(_oid(oid), value or b"") for oid, value in rdn)) for rdn in rdns)
    )
    return _attribute(_TEMPLATE, _seq(_integer(0), subject, _tlv(0xA1, b"")))


def csrattrs_der(mode: Misbehaviour) -> bytes:
    """The DER CsrAttrs a ``csrattrs`` misbehaviour answers /csrattrs with."""
    if mode is M.CSRATTRS_BAD_COUNTRY:
        body = _template([(_COUNTRY, _printable("USA"))], [(_COMMON_NAME, None)])
    elif mode is M.CSRATTRS_DUPLICATE_ATTRIBUTE:
        # a SET of two equal entries: not DER, but what a careless server builds
        same = _seq(_oid(_COMMON_NAME), _utf8("dev-1"))
        subject = _seq(_tlv(0x31, same + same))
        body = _attribute(_TEMPLATE, _seq(_integer(0), subject, _tlv(0xA1, b"")))
    elif mode is M.CSRATTRS_LONG_COMMON_NAME:
        body = _template([(_COMMON_NAME, _utf8("x" * 100))])
    elif mode is M.CSRATTRS_JUNK_EXTENSION:
        junk = _seq(_oid(_KEY_USAGE), _tlv(0x01, b"\xff"), _tlv(0x04, b"\xff"))
        body = _attribute(_EXTENSION_REQUEST, _seq(junk))
    elif mode is M.CSRATTRS_UNMAKEABLE_KEY:
        body = _attribute(_RSA_ENCRYPTION, _integer(1024))
    elif mode is M.CSRATTRS_NEEDS_SUBJECT:
        body = _template([(_SERIAL_NUMBER, None)], [(_COMMON_NAME, None)])
    elif mode is M.CSRATTRS_MALFORMED_TEMPLATE:
        body = _attribute(_TEMPLATE, _seq(_utf8("not a template")))
    elif mode is M.CSRATTRS_NOT_CSRATTRS:
        return _set(_oid(_CHALLENGE_PASSWORD)) + b"\x00\x00"
    else:
        raise ValueError(f"{mode.value} is not a csrattrs misbehaviour")
    return _seq(body)

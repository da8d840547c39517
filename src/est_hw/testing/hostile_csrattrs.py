"""CsrAttrs bodies that ask a client for the impossible (the ``csrattrs`` misbehaviours).

/csrattrs (RFC 7030 section 4.5, RFC 9908) tells the client what to put in its CSR, so a
hostile server can ask for a subject cryptography refuses to build, a duplicate
attribute, an extension whose value is junk, a key est-hw does not make.  The DER is
written by hand (:mod:`est_hw.testing.der_writer`): the test server never uses
``est_hw.est``.
"""

from __future__ import annotations

from est_hw.testing.der_writer import integer, oid, printable, seq, set_of, tlv, utf8
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


def _attribute(kind: str, *values: bytes) -> bytes:
    return seq(oid(kind), set_of(*values))


def _template(*rdns: list[tuple[str, bytes | None]]) -> bytes:
    """A CertificationRequestInfoTemplate (RFC 9908 appendix A) with only a subject."""
    rdn_sets = (
        tlv(0x31, b"".join(seq(oid(kind), value or b"") for kind, value in rdn)) for rdn in rdns
    )
    return _attribute(_TEMPLATE, seq(integer(0), seq(*rdn_sets), tlv(0xA1, b"")))


def csrattrs_der(mode: Misbehaviour) -> bytes:
    """The DER CsrAttrs a ``csrattrs`` misbehaviour answers /csrattrs with."""
    if mode is M.CSRATTRS_BAD_COUNTRY:
        body = _template([(_COUNTRY, printable("USA"))], [(_COMMON_NAME, None)])
    elif mode is M.CSRATTRS_DUPLICATE_ATTRIBUTE:
        # a SET of two equal entries: not DER, but what a careless server builds
        same = seq(oid(_COMMON_NAME), utf8("dev-1"))
        subject = seq(tlv(0x31, same + same))
        body = _attribute(_TEMPLATE, seq(integer(0), subject, tlv(0xA1, b"")))
    elif mode is M.CSRATTRS_LONG_COMMON_NAME:
        body = _template([(_COMMON_NAME, utf8("x" * 100))])
    elif mode is M.CSRATTRS_JUNK_EXTENSION:
        junk = seq(oid(_KEY_USAGE), tlv(0x01, b"\xff"), tlv(0x04, b"\xff"))
        body = _attribute(_EXTENSION_REQUEST, seq(junk))
    elif mode is M.CSRATTRS_UNMAKEABLE_KEY:
        body = _attribute(_RSA_ENCRYPTION, integer(1024))
    elif mode is M.CSRATTRS_NEEDS_SUBJECT:
        body = _template([(_SERIAL_NUMBER, None)], [(_COMMON_NAME, None)])
    elif mode is M.CSRATTRS_MALFORMED_TEMPLATE:
        body = _attribute(_TEMPLATE, seq(utf8("not a template")))
    elif mode is M.CSRATTRS_NOT_CSRATTRS:
        return set_of(oid(_CHALLENGE_PASSWORD)) + b"\x00\x00"
    else:
        raise ValueError(f"{mode.value} is not a csrattrs misbehaviour")
    return seq(body)

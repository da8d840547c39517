"""Transfer encodings, media types, certs-only PKCS#7 and Retry-After: pure, no I/O.

Every EST body is base64 of DER (RFC 7030 section 4, as clarified by RFC 8951 section 3).
Real servers disagree on the layout, so this module is strict in what it sends and
tolerant in what it accepts (DESIGN.md, "Protocol rules that real servers force on a
client"):

* sent: base64 wrapped at 64 columns, LF line ends, a trailing LF.  One server answers 400
  to a body that is one unwrapped line or that has a line of 1024 characters or more.
* accepted: any layout (no wrapping, 76 columns, CRLF or LF, spaces and tabs, RFC 8951
  section 3.1), trailing NUL bytes (one server counts a NUL in Content-Length), PEM armour
  (RFC 7468), and raw DER (a server that sends binary).  Anything else is a
  :class:`~est_hw.errors.ProtocolError` whose one-line message names the response.

Nothing here raises anything but :class:`~est_hw.errors.EstHwError` subclasses on bad
input from the server.  cryptography's PKCS#7 module is imported on first use.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from est_hw.errors import ProtocolError

if TYPE_CHECKING:
    from cryptography import x509

__all__ = [
    "CERTS_ONLY_TYPE",
    "CMC_REQUEST_TYPE",
    "CMC_RESPONSE_TYPE",
    "CONTENT_TRANSFER_ENCODING",
    "CSRATTRS_TYPE",
    "MULTIPART_MIXED_TYPE",
    "PKCS7_MIME_TYPE",
    "PKCS8_TYPE",
    "PKCS10_TYPE",
    "SERVER_GENERATED_KEY_TYPE",
    "check_media_type",
    "decode_base64_body",
    "decode_certs_only",
    "encode_base64_body",
    "encode_certs_only",
    "parse_retry_after",
]

# --- media types (RFC 7030 sections 3.2.2, 4.1.3, 4.2.1, 4.2.3, 4.3, 4.4, 4.5; RFC 8951) --

#: A PKCS#10 CSR, the body of /simpleenroll, /simplereenroll and /serverkeygen requests
#: (RFC 7030 sections 4.2.1 and 4.4.1).
PKCS10_TYPE = "application/pkcs10"
#: The bare CMS media type (RFC 5751 section 3.2); its ``smime-type`` parameter says more.
PKCS7_MIME_TYPE = "application/pkcs7-mime"
#: A certs-only CMS SignedData: the /cacerts response (RFC 7030 section 4.1.3) and the
#: /simpleenroll, /simplereenroll response (section 4.2.3).
CERTS_ONLY_TYPE = "application/pkcs7-mime; smime-type=certs-only"
#: The /fullcmc request and response (RFC 7030 sections 4.3.1 and 4.3.2).
CMC_REQUEST_TYPE = "application/pkcs7-mime; smime-type=CMC-request"
CMC_RESPONSE_TYPE = "application/pkcs7-mime; smime-type=CMC-response"
#: An encrypted private key in a /serverkeygen response (RFC 7030 section 4.4.2).
SERVER_GENERATED_KEY_TYPE = "application/pkcs7-mime; smime-type=server-generated-key"
#: The /csrattrs response (RFC 7030 section 4.5.2, RFC 8951 section 4, RFC 9908).
CSRATTRS_TYPE = "application/csrattrs"
#: An unencrypted private key in a /serverkeygen response (RFC 7030 section 4.4.2).  One
#: real server labels a PKCS#1 RSAPrivateKey with it: parse the content, not the label.
PKCS8_TYPE = "application/pkcs8"
#: The /serverkeygen response: key part and certificate part (RFC 7030 section 4.4.2).
MULTIPART_MIXED_TYPE = "multipart/mixed"
#: The Content-Transfer-Encoding sent with every body.  RFC 8951 section 3 says receivers
#: MUST ignore the header's value; est-hw sends it because RFC 7030 servers expect it.
CONTENT_TRANSFER_ENCODING = "base64"

# Legacy spellings accepted on receipt.  "application/x-pkcs7-mime" is the pre-standard
# (S/MIME v2) name of application/pkcs7-mime that S/MIME software has always treated as
# equivalent, and some CA products still send it; the body is parsed strictly either way.
_ALIASES = {"application/x-pkcs7-mime": PKCS7_MIME_TYPE}

_LINE_LENGTH = 64
_WHITESPACE = b" \t\r\n"
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
_DELTA_SECONDS = re.compile(r"[0-9]+")
_MAX_SHOWN = 80


def _shown(value: str) -> str:
    """``value`` as a short, single-line, quoted string for an error message."""
    if len(value) > _MAX_SHOWN:
        value = value[:_MAX_SHOWN] + "..."
    return repr(value)


# --- base64 bodies ---------------------------------------------------------------------


def encode_base64_body(der: bytes) -> bytes:
    """Encode ``der`` as an EST request body (RFC 7030 section 4; RFC 8951 section 3).

    Base64 (RFC 4648 section 4) in lines of 64 characters, each ending in LF, so the body
    ends with LF.  Send it with ``Content-Transfer-Encoding: base64`` and a Content-Length.
    This is the layout every real server accepts: one rejects a single unwrapped line and
    any line of 1024 characters or more.  An empty ``der`` gives an empty body.
    """
    text = base64.b64encode(der)
    return b"".join(text[i : i + _LINE_LENGTH] + b"\n" for i in range(0, len(text), _LINE_LENGTH))


def decode_base64_body(body: bytes, *, what: str) -> bytes:
    """Decode an EST response body to DER, tolerating every layout real servers send.

    Accepted (RFC 8951 section 3.1 asks receivers to tolerate white space, and section 3 to
    ignore the Content-Transfer-Encoding header): base64 with or without line breaks, CRLF
    or LF, spaces and tabs anywhere, trailing NUL bytes, PEM armour (RFC 7468: text around
    one ``-----BEGIN ...-----`` / ``-----END ...-----`` block is ignored), and a body that is
    raw DER -- a DER SEQUENCE whose header and length cover exactly the whole body, for a
    server that sends binary.  The raw-DER reading is tried only when the base64 one fails,
    so the decision depends on the content, never on a header.

    :param what: names the response in the error, e.g. ``"the /simpleenroll response"``.
    :raises ProtocolError: the body is empty, has a character outside the base64 alphabet,
        is badly padded or truncated, or has malformed PEM armour.  The message is one line
        and starts with ``what``.
    """
    data = bytes(body)
    try:
        return _decode_base64_text(data, what=what)
    except ProtocolError:
        if _is_der_sequence(data):
            return data
        raise


def _decode_base64_text(data: bytes, *, what: str) -> bytes:
    text = data.rstrip(_WHITESPACE + b"\x00")
    if not text.strip(_WHITESPACE):
        raise ProtocolError(f"{what} is empty")
    if b"-----" in text:
        text = _pem_content(text, what=what)
    compact = text.translate(None, _WHITESPACE)
    stray = compact.translate(None, _BASE64_ALPHABET)
    if stray:
        raise ProtocolError(f"{what} is not valid base64 (unexpected byte 0x{stray[0]:02x})")
    if len(compact) % 4 or not _BASE64_TEXT.fullmatch(compact):
        raise ProtocolError(f"{what} is not valid base64 (truncated or badly padded)")
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:  # not expected after the checks above
        raise ProtocolError(f"{what} is not valid base64") from exc


def _pem_content(text: bytes, *, what: str) -> bytes:
    """The base64 lines inside the one PEM block of ``text`` (RFC 7468 section 2)."""
    lines = [line.strip(_WHITESPACE) for line in text.split(b"\n")]
    begins = [i for i, line in enumerate(lines) if line.startswith(b"-----BEGIN ")]
    if len(begins) != 1 or not lines[begins[0]].endswith(b"-----"):
        detail = "more than one PEM block" if len(begins) > 1 else "malformed PEM armour"
        raise ProtocolError(f"{what} is not valid base64 ({detail})")
    start = begins[0]
    for i in range(start + 1, len(lines)):
        if lines[i].startswith(b"-----END ") and lines[i].endswith(b"-----"):
            return b"\n".join(lines[start + 1 : i])
        if lines[i].startswith(b"-----"):
            break
    raise ProtocolError(f"{what} is not valid base64 (malformed PEM armour)")


def _is_der_sequence(data: bytes) -> bool:
    """True when ``data`` is one DER SEQUENCE TLV (definite, minimal length) and nothing more."""
    if len(data) < 2 or data[0] != 0x30:
        return False
    first = data[1]
    if first < 0x80:
        return 2 + first == len(data)
    count = first & 0x7F
    if count == 0 or count > 8 or len(data) < 2 + count:
        return False  # 0x80 is BER's indefinite length, which DER forbids
    length = int.from_bytes(data[2 : 2 + count], "big")
    if length < 0x80 or data[2] == 0:
        return False  # DER: the shortest length encoding
    return 2 + count + length == len(data)


def _has_trailing_bytes(data: bytes) -> bool:
    """A definite-length outer SEQUENCE that ends before ``data`` does (junk after it).

    An indefinite length (BER, ``30 80``) is left to the parser: its end is not in the
    header.
    """
    if len(data) < 2 or data[0] != 0x30 or data[1] == 0x80:
        return False
    first = data[1]
    if first < 0x80:
        return 2 + first < len(data)
    count = first & 0x7F
    if count > 8 or len(data) < 2 + count:
        return False
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big") < len(data)


# --- certs-only PKCS#7 -------------------------------------------------------------------


def decode_certs_only(body: bytes, *, what: str) -> list[x509.Certificate]:
    """The certificates of a certs-only CMS SignedData body (RFC 7030 sections 4.1.3, 4.2.3).

    ``body`` is the raw HTTP body: it goes through :func:`decode_base64_body` first, so all
    its layouts (PEM ``-----BEGIN PKCS7-----`` included) are accepted.  The certificates
    come back in the order of the SignedData ``certificates`` field; no ordering or chain
    is implied (RFC 7030 section 4.1.3 leaves that to the client).

    :raises ProtocolError: not base64, not a PKCS#7 SignedData, or no certificate in it.
    """
    der = decode_base64_body(body, what=what)
    if _has_trailing_bytes(der):
        raise ProtocolError(f"{what} has bytes after the PKCS#7 message")
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except Exception as exc:  # ValueError, UnsupportedAlgorithm, or whatever the parser raises
        if _is_signed_data_without_certificates(der):
            raise ProtocolError(f"{what} contains no certificate") from exc
        raise ProtocolError(
            f"{what} is not a PKCS#7 certs-only message (RFC 7030 section 4.1.3)"
        ) from exc
    if not certs:  # FIELD-NOTES saw [] here; cryptography 50 raises ValueError instead
        raise ProtocolError(f"{what} contains no certificate")
    for number, cert in enumerate(certs, 1):
        check_certificate(cert, f"{what}: certificate {number} of {len(certs)}")
    return certs


def check_certificate(cert: x509.Certificate, where: str) -> None:
    """Parse now every field est-hw reads later, so a malformed one fails here, clearly.

    cryptography parses a certificate's fields lazily: ``load_der_pkcs7_certificates``
    accepts a certificate whose subject, issuer, validity or extensions are malformed,
    and the first later use (path validation, storing it on the token, printing it) would
    raise a bare ``ValueError`` (found by fuzz/fuzz_certs_only.py and
    fuzz/fuzz_signed_data.py).

    A public key of a type cryptography does not support (``UnsupportedAlgorithm``) is not
    malformed and is let through: a CA may well send such a certificate alongside the ones
    est-hw needs.

    :raises ProtocolError: a field does not parse.
    """
    from cryptography.exceptions import UnsupportedAlgorithm

    try:
        cert.subject.rfc4514_string()
        cert.issuer.rfc4514_string()
        _ = (cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
        _ = (cert.extensions, cert.signature_algorithm_oid, cert.signature)
        with contextlib.suppress(UnsupportedAlgorithm):
            cert.public_key()
    except Exception as exc:  # ValueError and whatever else the lazy parser raises
        lines = str(exc).strip().splitlines()
        detail = (lines[0] if lines else type(exc).__name__)[:_MAX_SHOWN]
        raise ProtocolError(f"{where} is malformed: {detail}") from exc


def _is_signed_data_without_certificates(der: bytes) -> bool:
    """True for a well-formed CMS SignedData (RFC 5652 5.1) with no certificate in it."""
    from pyasn1.codec.der import decoder
    from pyasn1_modules import rfc5652

    try:
        info, rest = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
        if rest or info["contentType"] != rfc5652.id_signedData:
            return False
        signed, rest = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
    except Exception:  # malformed: not "a SignedData without certificates"
        return False
    certificates = signed["certificates"]
    return not rest and (not certificates.isValue or len(certificates) == 0)


def encode_certs_only(certs: Sequence[x509.Certificate]) -> bytes:
    """DER of a degenerate certs-only CMS SignedData holding ``certs`` (RFC 5652, RFC 7030).

    The inverse of :func:`decode_certs_only` (apply :func:`encode_base64_body` for a body),
    up to order: ``certificates`` is a DER SET OF, so cryptography sorts it by encoding.
    An empty ``certs`` gives a SignedData with no ``certificates`` field, which
    :func:`decode_certs_only` rejects -- useful in tests.
    """
    if certs:
        from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

        return pkcs7.serialize_certificates(list(certs), Encoding.DER)
    from pyasn1.codec.der import encoder
    from pyasn1.type import univ
    from pyasn1_modules import rfc5652

    signed = rfc5652.SignedData()
    signed["version"] = 1
    signed["digestAlgorithms"] = rfc5652.DigestAlgorithmIdentifiers()
    signed["encapContentInfo"]["eContentType"] = rfc5652.id_data
    signed["signerInfos"] = rfc5652.SignerInfos()
    info = rfc5652.ContentInfo()
    info["contentType"] = rfc5652.id_signedData
    info["content"] = univ.Any(encoder.encode(signed))
    return bytes(encoder.encode(info))


# --- Content-Type --------------------------------------------------------------------------


def _split_content_type(value: str) -> tuple[str, dict[str, str]]:
    """``type/subtype`` (lower case) and the parameters (names lower case, unquoted)."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == ";" and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, val = part.partition("=")
        if sep:
            params.setdefault(name.strip().lower(), val.strip().strip('"'))
    return parts[0].strip().lower(), params


def check_media_type(content_type: str | None, expected: str, *, what: str) -> None:
    """Check a response's Content-Type against ``expected`` (one of the ``*_TYPE`` constants).

    The type/subtype is compared case-insensitively and its parameters are ignored
    (``charset``, ``name`` and so on), except ``smime-type``: when both ``expected`` and the
    response carry one, they must match (case-insensitively).  A missing ``smime-type`` is
    accepted -- several servers send bare ``application/pkcs7-mime`` -- and so is the
    legacy spelling ``application/x-pkcs7-mime``; the body is parsed strictly anyway.

    :raises ProtocolError: no Content-Type, or a different one; the message names it.
    """
    want_type, want_params = _split_content_type(expected)
    if content_type is None or not content_type.strip():
        raise ProtocolError(f"{what} has no Content-Type (expected {want_type})")
    got_type, got_params = _split_content_type(content_type)
    got_type = _ALIASES.get(got_type, got_type)
    if got_type != want_type:
        raise ProtocolError(f"{what} has Content-Type {_shown(content_type)}, expected {want_type}")
    want_smime = want_params.get("smime-type")
    got_smime = got_params.get("smime-type")
    if want_smime and got_smime and want_smime.lower() != got_smime.lower():
        raise ProtocolError(
            f"{what} has Content-Type {_shown(content_type)}, "
            f"expected {want_type} with smime-type={want_smime}"
        )


# --- Retry-After ---------------------------------------------------------------------------


def parse_retry_after(value: str, *, now: datetime) -> int:
    """Seconds to wait, from a Retry-After header (RFC 7231 section 7.1.3; RFC 7030 4.2.3).

    ``value`` is delta-seconds (``1*DIGIT``) or an HTTP-date: IMF-fixdate
    (``Sun, 06 Nov 1994 08:49:37 GMT``), and the obsolete RFC 850 and asctime forms that
    RFC 7231 section 7.1.1.1 tells recipients to accept.  A date is measured from ``now``
    and rounded up to a whole second; a date in the past gives 0.  A date without a zone,
    and a naive ``now``, are taken as UTC (HTTP-dates are always GMT).

    Nothing is capped: the caller decides what to do with a wait of ten years.

    :raises ProtocolError: ``value`` is neither form.
    """
    text = value.strip(" \t")
    if _DELTA_SECONDS.fullmatch(text):
        try:
            return int(text)
        except ValueError as exc:  # more digits than int() will convert
            raise ProtocolError(f"the Retry-After header {_shown(value)} is too long") from exc
    from email.utils import parsedate_to_datetime  # 10 ms: only when a date is sent

    try:
        when = parsedate_to_datetime(text)
    except Exception as exc:  # ValueError, TypeError, IndexError: email.utils varies
        raise ProtocolError(
            f"the Retry-After header {_shown(value)} is neither delta-seconds nor an HTTP-date"
        ) from exc
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0, math.ceil((when - now).total_seconds()))

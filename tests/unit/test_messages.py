"""Examples for est_hw.est.messages: base64 bodies, certs-only, media types, Retry-After."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_hw.errors import ProtocolError
from est_hw.est import messages
from est_hw.est.messages import (
    CERTS_ONLY_TYPE,
    CSRATTRS_TYPE,
    PKCS8_TYPE,
    SERVER_GENERATED_KEY_TYPE,
    check_media_type,
    decode_base64_body,
    decode_certs_only,
    encode_base64_body,
    encode_certs_only,
    parse_retry_after,
)

WHAT = "the /simpleenroll response"
# RFC 7030 section 4.5.2 (and RFC 8951 section 4): the CSR attributes example.
RFC7030_CSRATTRS_B64 = (
    b"MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ\n"
    b"BgcrBgEBAQEWBggqhkjOPQQDAw==\n"
)
RFC7030_CSRATTRS_DER = bytes.fromhex(
    "30410609 2a864886 f70d0109 07301206 072a8648 ce3d0201 31070605 2b810400"
    "22301606 092a8648 86f70d01 090e3109 06072b06 01010101 1606082a 8648ce3d"
    "040303"
)


def _certificate(cn: str) -> x509.Certificate:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def certs() -> list[x509.Certificate]:
    return [_certificate("est-hw test one"), _certificate("est-hw test two")]


# --- encode_base64_body ----------------------------------------------------------------


def test_encode_wraps_at_64_columns_with_lf_and_trailing_lf() -> None:
    body = encode_base64_body(bytes(range(256)))
    lines = body.split(b"\n")
    assert body.endswith(b"\n")
    assert lines[-1] == b""
    assert all(len(line) == 64 for line in lines[:-2])
    assert 0 < len(lines[-2]) <= 64
    assert b"\r" not in body
    assert b"".join(lines) == base64.b64encode(bytes(range(256)))


def test_encode_rfc_example_matches_the_rfc_layout() -> None:
    assert encode_base64_body(RFC7030_CSRATTRS_DER) == RFC7030_CSRATTRS_B64


def test_encode_exact_multiple_of_64_has_no_empty_line() -> None:
    body = encode_base64_body(b"\x00" * 48)  # 64 base64 characters
    assert body == b"A" * 64 + b"\n"


def test_encode_empty_is_empty() -> None:
    assert encode_base64_body(b"") == b""


# --- decode_base64_body: what real servers send ---------------------------------------------


def test_decode_rfc_example() -> None:
    assert decode_base64_body(RFC7030_CSRATTRS_B64, what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_unwrapped_single_line_without_newline() -> None:
    body = base64.b64encode(RFC7030_CSRATTRS_DER)
    assert decode_base64_body(body, what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_trailing_nul_counted_in_content_length() -> None:
    assert decode_base64_body(RFC7030_CSRATTRS_B64 + b"\x00", what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_several_trailing_nuls_and_whitespace() -> None:
    body = RFC7030_CSRATTRS_B64 + b"\x00\x00\r\n\x00"
    assert decode_base64_body(body, what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_76_columns_crlf() -> None:
    der = bytes(range(200))
    text = base64.b64encode(der)
    body = b"".join(text[i : i + 76] + b"\r\n" for i in range(0, len(text), 76))
    assert any(len(line) == 76 for line in body.split(b"\r\n"))
    assert decode_base64_body(body, what=WHAT) == der


def test_decode_base64_encodebytes_layout() -> None:
    der = bytes(range(256)) * 3
    assert decode_base64_body(base64.encodebytes(der), what=WHAT) == der


def test_decode_spaces_and_tabs_anywhere() -> None:
    body = b"  MEEGCSqG SIb3DQEJ\tBzASBgcq hkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ\r\n"
    body += b"\tBgcrBgEBAQEWBggqhkjOPQQDAw= =  \n"
    assert decode_base64_body(body, what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_pem_armour(certs: list[x509.Certificate]) -> None:
    der = encode_certs_only(certs)
    pem = b"-----BEGIN PKCS7-----\n" + encode_base64_body(der) + b"-----END PKCS7-----\n"
    assert decode_base64_body(pem, what=WHAT) == der


def test_decode_pem_armour_with_crlf_and_explanatory_text() -> None:
    der = RFC7030_CSRATTRS_DER
    pem = (
        b"Issued by the test CA\r\n-----BEGIN CSR ATTRIBUTES-----\r\n"
        + base64.b64encode(der)
        + b"\r\n-----END CSR ATTRIBUTES-----\r\ntrailing words\r\n\x00"
    )
    assert decode_base64_body(pem, what=WHAT) == der


def test_decode_raw_der_body() -> None:
    assert decode_base64_body(RFC7030_CSRATTRS_DER, what=WHAT) == RFC7030_CSRATTRS_DER


def test_decode_raw_der_long_form_length(certs: list[x509.Certificate]) -> None:
    der = encode_certs_only(certs)
    assert der[1] & 0x80  # long-form length
    assert decode_base64_body(der, what=WHAT) == der


def test_decode_base64_text_wins_over_raw_der_reading() -> None:
    # "02" + 50 base64 characters: a SEQUENCE of length 0x32 as raw bytes, and valid base64.
    body = b"02" + b"A" * 50
    assert decode_base64_body(body, what=WHAT) == base64.b64decode(body)


# --- decode_base64_body: what is refused ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "is empty"),
        (b" \r\n\t", "is empty"),
        (b"\x00\x00", "is empty"),
        (b"MEEG*SqG", "unexpected byte 0x2a"),
        (b"MEEGCSq", "truncated or badly padded"),
        (b"MEE=CSqG", "truncated or badly padded"),
        (b"MEEGCS===", "truncated or badly padded"),
        (b"ME\x00EGCSqG", "unexpected byte 0x00"),
        (b"<html>error</html>", "unexpected byte 0x3c"),
        (b"MEEG-SqG", "unexpected byte 0x2d"),
        (b"-----BEGIN PKCS7-----\nMEEG\n", "malformed PEM armour"),
        (b"-----BEGIN PKCS7\nMEEG\n-----END PKCS7-----\n", "malformed PEM armour"),
        (
            b"-----BEGIN A-----\nMEEG\n-----END A-----\n-----BEGIN B-----\nMEEG\n-----END B-----",
            "more than one PEM block",
        ),
        (b"\x30\x05\x02\x01", "unexpected byte 0x05"),  # DER too short for its length
        (b"\x30\x80\x02\x01\x00\x00\x00", "not valid base64"),  # BER indefinite length
        (b"\x30\x81\x03\x02\x01\x00", "not valid base64"),  # non-minimal DER length
        (b"\x31\x03\x02\x01\x00", "not valid base64"),  # a SET, not a SEQUENCE
    ],
)
def test_decode_refuses_with_one_line_message_naming_the_response(body: bytes, detail: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_base64_body(body, what=WHAT)
    message = str(caught.value)
    assert message.startswith(WHAT)
    assert detail in message
    assert "\n" not in message


def test_decode_error_maps_to_the_server_exit_code() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_base64_body(b"QQ=A", what=WHAT)
    assert caught.value.exit_code == 5


# --- certs-only PKCS#7 ------------------------------------------------------------------------


def test_certs_only_round_trip(certs: list[x509.Certificate]) -> None:
    body = encode_base64_body(encode_certs_only(certs))
    decoded = decode_certs_only(body, what="the /cacerts response")
    # certificates is a DER SET OF: the encoder sorts it, so only the membership survives.
    assert sorted(decoded, key=_der) == sorted(certs, key=_der)


def _der(cert: x509.Certificate) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def test_certs_only_pem_and_raw_der(certs: list[x509.Certificate]) -> None:
    der = encode_certs_only(certs[:1])
    pem = b"-----BEGIN PKCS7-----\r\n" + base64.b64encode(der) + b"\r\n-----END PKCS7-----\r\n"
    assert decode_certs_only(pem, what="the /cacerts response") == certs[:1]
    assert decode_certs_only(der, what="the /cacerts response") == certs[:1]


def test_certs_only_without_certificates_is_refused() -> None:
    body = encode_base64_body(encode_certs_only([]))
    with pytest.raises(ProtocolError, match=r"^the /cacerts response contains no certificate$"):
        decode_certs_only(body, what="the /cacerts response")


def test_certs_only_of_something_else_is_refused() -> None:
    body = encode_base64_body(RFC7030_CSRATTRS_DER)
    with pytest.raises(ProtocolError, match="is not a PKCS#7 certs-only message"):
        decode_certs_only(body, what=WHAT)


def test_certs_only_of_a_bare_certificate_is_refused(certs: list[x509.Certificate]) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    body = encode_base64_body(certs[0].public_bytes(Encoding.DER))
    with pytest.raises(ProtocolError, match="is not a PKCS#7 certs-only message"):
        decode_certs_only(body, what=WHAT)


def test_certs_only_bad_base64_is_refused() -> None:
    with pytest.raises(ProtocolError, match=r"^the /cacerts response is not valid base64"):
        decode_certs_only(b"not base64!", what="the /cacerts response")


# --- check_media_type -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/pkcs7-mime; smime-type=certs-only",
        "application/pkcs7-mime;smime-type=certs-only",
        "Application/PKCS7-MIME; SMIME-Type=Certs-Only",
        'application/pkcs7-mime; smime-type="certs-only"; name=cert.p7c',
        "application/pkcs7-mime",
        "application/pkcs7-mime; charset=utf-8",
        "application/x-pkcs7-mime; smime-type=certs-only",
        "application/x-pkcs7-mime",
        "  application/pkcs7-mime ; smime-type=certs-only ",
    ],
)
def test_media_type_certs_only_accepted(content_type: str) -> None:
    check_media_type(content_type, CERTS_ONLY_TYPE, what=WHAT)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/pkcs7-mime; smime-type=server-generated-key",
        "application/pkcs7-mime; smime-type=CMC-response",
        "text/plain",
        "text/html; charset=utf-8",
        "application/pkcs7",
        "application/pkcs7-mimex",
        "application/csrattrs",
    ],
)
def test_media_type_certs_only_refused(content_type: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        check_media_type(content_type, CERTS_ONLY_TYPE, what=WHAT)
    assert str(caught.value).startswith(WHAT)
    assert repr(content_type) in str(caught.value)


def test_media_type_missing_is_refused() -> None:
    with pytest.raises(ProtocolError, match=r"has no Content-Type \(expected application/pkcs7"):
        check_media_type(None, CERTS_ONLY_TYPE, what=WHAT)
    with pytest.raises(ProtocolError, match="has no Content-Type"):
        check_media_type("  ", CSRATTRS_TYPE, what=WHAT)


def test_media_type_other_types() -> None:
    check_media_type("application/csrattrs", CSRATTRS_TYPE, what=WHAT)
    check_media_type("APPLICATION/CSRATTRS; charset=binary", CSRATTRS_TYPE, what=WHAT)
    check_media_type("application/pkcs8", PKCS8_TYPE, what=WHAT)
    check_media_type(
        "application/pkcs7-mime; smime-type=server-generated-key",
        SERVER_GENERATED_KEY_TYPE,
        what=WHAT,
    )
    with pytest.raises(ProtocolError):
        check_media_type("application/pkcs7-mime", CSRATTRS_TYPE, what=WHAT)


def test_media_type_message_is_one_line_and_short() -> None:
    hostile = "text/html\r\nX-Injected: yes" + "x" * 500
    with pytest.raises(ProtocolError) as caught:
        check_media_type(hostile, CSRATTRS_TYPE, what=WHAT)
    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert len(message) < 250


def test_media_type_constants() -> None:
    assert messages.PKCS10_TYPE == "application/pkcs10"
    assert messages.CSRATTRS_TYPE == "application/csrattrs"
    assert messages.PKCS8_TYPE == "application/pkcs8"
    assert messages.MULTIPART_MIXED_TYPE == "multipart/mixed"
    assert messages.CERTS_ONLY_TYPE == "application/pkcs7-mime; smime-type=certs-only"
    assert messages.CONTENT_TRANSFER_ENCODING == "base64"


# --- parse_retry_after -------------------------------------------------------------------------

NOW = datetime.datetime(1994, 11, 6, 8, 49, 0, tzinfo=datetime.UTC)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("0", 0),
        ("120", 120),
        ("  3600\t", 3600),
        ("007", 7),
        ("31536000000", 31536000000),  # a thousand years: exposed, not capped
        ("Sun, 06 Nov 1994 08:49:37 GMT", 37),  # IMF-fixdate
        ("Sunday, 06-Nov-94 08:49:37 GMT", 37),  # RFC 850
        ("Sun Nov  6 08:49:37 1994", 37),  # asctime
        ("Sun, 06 Nov 1994 08:49:00 GMT", 0),
        ("Sun, 06 Nov 1994 08:48:00 GMT", 0),  # in the past
        ("Sat, 05 Nov 1994 08:49:37 GMT", 0),
        ("Sun, 06 Nov 1994 09:49:00 GMT", 3600),
    ],
)
def test_retry_after(value: str, seconds: int) -> None:
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_rounds_up_fractions() -> None:
    now = NOW + datetime.timedelta(milliseconds=300)
    assert parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now=now) == 37


def test_retry_after_naive_now_is_utc() -> None:
    naive = NOW.replace(tzinfo=None)
    assert parse_retry_after("Sun, 06 Nov 1994 08:50:00 GMT", now=naive) == 60


def test_retry_after_other_zone_now() -> None:
    cet = datetime.timezone(datetime.timedelta(hours=1))
    now = NOW.astimezone(cet)
    assert parse_retry_after("Sun, 06 Nov 1994 08:50:00 GMT", now=now) == 60


@pytest.mark.parametrize(
    "value",
    ["", "soon", "-5", "+5", "1.5", "5s", "1e3", "٣", "Sun, 06 Nov 99999 08:49:37 GMT", "0x10"],
)
def test_retry_after_garbage(value: str) -> None:
    with pytest.raises(ProtocolError, match="Retry-After"):
        parse_retry_after(value, now=NOW)


def test_retry_after_too_many_digits_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="too long"):
        parse_retry_after("9" * 5000, now=NOW)

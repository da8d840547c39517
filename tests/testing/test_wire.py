"""Body encodings of the test server (RFC 7030 section 4, RFC 8951)."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from pyasn1.codec.der import decoder, encoder
from pyasn1_modules import rfc5652

from est_hw.testing import TestCa
from est_hw.testing.wire import (
    BodyError,
    decode_base64_body,
    encode_base64_body,
    longest_line,
    media_type,
    pkcs7_certs_only,
)


def test_empty_certs_only_is_valid_der_signed_data() -> None:
    der = pkcs7_certs_only([])
    assert pkcs7.load_der_pkcs7_certificates(der) == []
    info, rest = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    assert rest == b"" and info["contentType"] == rfc5652.id_signedData
    signed, rest = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
    assert rest == b"" and len(signed["certificates"]) == 0
    assert encoder.encode(info) == der  # canonical DER


def test_certs_only_round_trip() -> None:
    ca = TestCa.create()
    assert set(pkcs7.load_der_pkcs7_certificates(pkcs7_certs_only(ca.chain))) == set(ca.chain)


def test_base64_layouts() -> None:
    data = bytes(range(256))
    wrapped = encode_base64_body(data)
    assert wrapped.endswith(b"\n") and longest_line(wrapped) == 64
    assert encode_base64_body(data, width=0).count(b"\n") == 1
    crlf = encode_base64_body(data, width=76, eol=b"\r\n")
    assert longest_line(crlf) == 76 and crlf.endswith(b"\r\n")
    for body in (wrapped, crlf, base64.b64encode(data), b" \t" + wrapped):
        assert decode_base64_body(body) == data


@pytest.mark.parametrize("body", [b"", b"  \n", b"AAA", b"AA=A", b"****", b"AAAA\0"])
def test_bad_base64_is_refused(body: bytes) -> None:
    with pytest.raises(BodyError):
        decode_base64_body(body)


def test_media_type() -> None:
    assert media_type("Application/PKCS10; charset=x") == "application/pkcs10"
    assert media_type(None) == ""

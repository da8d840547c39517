"""CSR attributes (RFC 7030 4.5.2, RFC 8951 4, RFC 9908): the RFCs' examples and edge cases."""

from __future__ import annotations

import base64

import pytest

from est_hw.errors import ProtocolError
from est_hw.est.messages import (
    OID_CERTIFICATION_REQUEST_INFO_TEMPLATE,
    OID_CHALLENGE_PASSWORD,
    OID_EC_PUBLIC_KEY,
    OID_ED25519,
    OID_EXTENSION_REQ_TEMPLATE,
    OID_EXTENSION_REQUEST,
    OID_RSA_ENCRYPTION,
    CsrAttribute,
    CsrAttributes,
    NameAttributeTemplate,
    RequestedExtension,
    decode_csrattrs,
    decode_csrattrs_response,
    encode_base64_body,
    encode_csrattrs,
    encode_extensions_value,
    encode_integer_value,
    encode_oid_value,
    encode_template,
)
from est_hw.testing.der_writer import oid, seq, set_of, tlv, utf8

SECP256R1 = "1.2.840.10045.3.1.7"
SECP384R1 = "1.3.132.0.34"
ECDSA_SHA384 = "1.2.840.10045.4.3.3"
MAC_ADDRESS = "1.3.6.1.1.1.1.22"
SAN = "2.5.29.17"
KEY_USAGE = "2.5.29.15"
EXT_KEY_USAGE = "2.5.29.37"

# RFC 7030 section 4.5.2 (repeated in RFC 8951 section 4), exactly as printed.
RFC7030_EXAMPLE = (
    b"MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ\n"
    b"BgcrBgEBAQEWBggqhkjOPQQDAw==\n"
)
# RFC 7030 appendix A.2: unknown (2.999.x) attributes, a bare curve and a bare hash OID.
RFC7030_APPENDIX_EXAMPLE = (
    b"MHwGBysGAQEBARYwIgYDiDcBMRsTGVBhcnNlIFNFVCBhcyAyLjk5OS4xIGRhdGEG\n"
    b"CSqGSIb3DQEJBzAsBgOINwIxJQYDiDcDBgOINwQTGVBhcnNlIFNFVCBhcyAyLjk5\n"
    b"OS4yIGRhdGEGCSskAwMCCAEBCwYJYIZIAWUDBAIC\n"
)
# RFC 9908 examples (lamps-wg/lamps-rfc7030-csrattrs, examples/*.b64).
RSA_4096_EXAMPLE = b"MCkGCSqGSIb3DQEJBzARBgkqhkiG9w0BAQExBAICEAAGCSqG\nSIb3DQEBCw==\n"
P384_SERIAL_EXAMPLE = (
    b"MD0GCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBIGCSqGSIb3DQEJDjEFBgNVBAUGCCqGSM49BAMD\n"
)
ACP_EXAMPLE = (
    b"MGgwZgYJKoZIhvcNAQkOMVkwVzBVBgNVHREBAf8ESzBJoEcG\n"
    b"CCsGAQUFBwgKoDsWOXJmYzg5OTQrZmQ3MzlmYzIzYzM0NDAx\n"
    b"MTIyMzM0NDU1MDAwMDAwMDArQGFjcC5leGFtcGxlLmNvbQ==\n"
)


# est_hw.testing.der_writer: DER written by hand, so the template encoder is checked
# against something independent of it.

SAN_VALUE = seq(tlv(0x82, b"www.myServer.com"), tlv(0x87, b""))
KEY_USAGE_VALUE = tlv(0x03, b"\x03\x88")  # digitalSignature, keyAgreement

# RFC 9908 section 3.4's example CertificationRequestInfoTemplate, written by hand.
RFC9908_TEMPLATE = seq(
    tlv(0x02, b"\x00"),
    seq(
        set_of(seq(oid("2.5.4.3"))),
        set_of(seq(oid("2.5.4.11"), utf8("myDept"))),
        set_of(seq(oid("2.5.4.11"), utf8("myGroup"))),
    ),
    tlv(0xA0, seq(oid(OID_EC_PUBLIC_KEY), oid(SECP256R1))),
    tlv(
        0xA1,
        seq(
            oid(OID_EXTENSION_REQ_TEMPLATE),
            set_of(
                seq(
                    seq(oid(SAN), tlv(0x04, SAN_VALUE)),
                    seq(oid(KEY_USAGE), tlv(0x01, b"\xff"), tlv(0x04, KEY_USAGE_VALUE)),
                    seq(oid(EXT_KEY_USAGE)),
                )
            ),
        ),
    ),
)


def template_body(template_der: bytes, *more: bytes) -> bytes:
    return seq(seq(oid(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE), set_of(template_der)), *more)


# --- RFC 7030 and RFC 9908 examples -----------------------------------------------------------


def test_rfc7030_section_4_5_2_example() -> None:
    attrs = decode_csrattrs_response(RFC7030_EXAMPLE)
    assert attrs.oids == (OID_CHALLENGE_PASSWORD, ECDSA_SHA384)
    assert attrs.attributes == (
        CsrAttribute(OID_EC_PUBLIC_KEY, (oid(SECP384R1),)),
        CsrAttribute(OID_EXTENSION_REQUEST, (oid(MAC_ADDRESS),)),
    )
    assert attrs.template is None
    assert attrs.challenge_password_requested
    assert attrs.key_type_hint == "ec-p384"
    assert attrs.signature_hash_hint == "sha384"
    # RFC 9908 calls this extensionRequest value (a bare OID) incorrect: kept raw, ignored.
    assert attrs.extension_requests == ()


def test_rfc7030_example_with_a_trailing_nul_and_crlf() -> None:
    body = RFC7030_EXAMPLE.replace(b"\n", b"\r\n") + b"\x00"
    assert decode_csrattrs_response(body) == decode_csrattrs_response(RFC7030_EXAMPLE)


def test_rfc7030_example_as_raw_der_and_pem() -> None:
    der = base64.b64decode(RFC7030_EXAMPLE)
    expected = decode_csrattrs(der)
    assert decode_csrattrs_response(der) == expected
    pem = b"-----BEGIN CSRATTRS-----\n" + RFC7030_EXAMPLE + b"-----END CSRATTRS-----\n"
    assert decode_csrattrs_response(pem) == expected


def test_rfc7030_example_encodes_back_to_the_same_bytes() -> None:
    attrs = decode_csrattrs_response(RFC7030_EXAMPLE)
    der = encode_csrattrs(
        [
            OID_CHALLENGE_PASSWORD,
            CsrAttribute(OID_EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),)),
            CsrAttribute(OID_EXTENSION_REQUEST, (encode_oid_value(MAC_ADDRESS),)),
            ECDSA_SHA384,
        ]
    )
    assert encode_base64_body(der) == RFC7030_EXAMPLE
    assert decode_csrattrs(der) == attrs


def test_rfc7030_appendix_example_keeps_unknown_oids() -> None:
    attrs = decode_csrattrs_response(RFC7030_APPENDIX_EXAMPLE)
    assert attrs.oids == (
        MAC_ADDRESS,
        OID_CHALLENGE_PASSWORD,
        "1.3.36.3.3.2.8.1.1.11",
        "2.16.840.1.101.3.4.2.2",
    )
    assert [a.oid for a in attrs.attributes] == ["2.999.1", "2.999.2"]
    assert attrs.attributes[0].values == (tlv(0x13, b"Parse SET as 2.999.1 data"),)
    assert len(attrs.attributes[1].values) == 3
    assert attrs.challenge_password_requested
    assert attrs.key_type_hint == "ec-brainpoolP384r1"
    assert attrs.signature_hash_hint == "sha384"
    assert attrs.extension_requests == ()


def test_rfc9908_rsa_key_size_example() -> None:
    attrs = decode_csrattrs_response(RSA_4096_EXAMPLE)
    assert attrs.key_type_hint == "rsa-4096"
    assert attrs.signature_hash_hint == "sha256"
    assert attrs.challenge_password_requested


def test_rfc9908_p384_example() -> None:
    attrs = decode_csrattrs_response(P384_SERIAL_EXAMPLE)
    assert attrs.key_type_hint == "ec-p384"
    assert attrs.signature_hash_hint == "sha384"
    assert attrs.find_attribute(OID_EXTENSION_REQUEST) == CsrAttribute(
        OID_EXTENSION_REQUEST, (oid("2.5.4.5"),)
    )
    assert attrs.extension_requests == ()


def test_rfc9908_acp_subject_alt_name_example() -> None:
    attrs = decode_csrattrs_response(ACP_EXAMPLE)
    assert attrs.oids == ()
    (san,) = attrs.extension_requests
    assert san.oid == SAN
    assert san.critical is True
    assert san.value is not None and san.value.startswith(b"\x30\x49\xa0\x47")
    assert b"rfc8994+fd739fc23c3440112233445500000000+@acp.example.com" in san.value
    assert attrs.key_type_hint is None
    assert attrs.signature_hash_hint is None
    assert not attrs.challenge_password_requested


def test_lone_extension_as_extension_request_value_is_tolerated() -> None:
    # Early drafts of RFC 9908's ACP example put one Extension where Extensions belongs.
    lone = seq(oid(SAN), tlv(0x01, b"\xff"), tlv(0x04, SAN_VALUE))
    body = seq(seq(oid(OID_EXTENSION_REQUEST), set_of(lone)))
    assert decode_csrattrs(body).extension_requests == (RequestedExtension(SAN, True, SAN_VALUE),)


# --- the RFC 9908 template ----------------------------------------------------------------------


def test_rfc9908_template_example_decodes() -> None:
    attrs = decode_csrattrs(template_body(RFC9908_TEMPLATE))
    template = attrs.template
    assert template is not None
    assert template.der == RFC9908_TEMPLATE
    assert template.version == 0
    assert template.subject == (
        (NameAttributeTemplate("2.5.4.3", None),),
        (NameAttributeTemplate("2.5.4.11", utf8("myDept")),),
        (NameAttributeTemplate("2.5.4.11", utf8("myGroup")),),
    )
    assert [[a.text for a in rdn] for rdn in template.subject] == [
        [None],
        ["myDept"],
        ["myGroup"],
    ]
    assert template.public_key_algorithm == OID_EC_PUBLIC_KEY
    assert template.public_key_parameters == oid(SECP256R1)
    assert template.rsa_key_size is None
    assert template.extensions == (
        RequestedExtension(SAN, False, SAN_VALUE),
        RequestedExtension(KEY_USAGE, True, KEY_USAGE_VALUE),
        RequestedExtension(EXT_KEY_USAGE, False, None),
    )
    assert [a.oid for a in template.attributes] == [OID_EXTENSION_REQ_TEMPLATE]
    assert attrs.key_type_hint == "ec-p256"
    assert attrs.extension_requests == template.extensions


def test_encode_template_matches_the_hand_written_example() -> None:
    der = encode_template(
        subject=[
            [NameAttributeTemplate("2.5.4.3")],
            [NameAttributeTemplate("2.5.4.11", utf8("myDept"))],
            [NameAttributeTemplate("2.5.4.11", utf8("myGroup"))],
        ],
        public_key_algorithm=OID_EC_PUBLIC_KEY,
        public_key_parameters=encode_oid_value(SECP256R1),
        extensions=[
            RequestedExtension(SAN, False, SAN_VALUE),
            RequestedExtension(KEY_USAGE, True, KEY_USAGE_VALUE),
            RequestedExtension(EXT_KEY_USAGE),
        ],
    )
    assert der == RFC9908_TEMPLATE
    body = encode_csrattrs([CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (der,))])
    assert body == template_body(RFC9908_TEMPLATE)


def test_minimal_template_means_no_requirements() -> None:
    minimal = encode_template()
    assert minimal == seq(tlv(0x02, b"\x00"), tlv(0xA1, b""))
    attrs = decode_csrattrs(template_body(minimal))
    assert attrs.template is not None
    assert attrs.template.subject is None
    assert attrs.template.public_key_algorithm is None
    assert attrs.key_type_hint is None
    assert attrs.extension_requests == ()


def test_template_rsa_size_from_the_dummy_public_key() -> None:
    dummy = seq(tlv(0x02, b"\x00" + b"\xff" * 384), tlv(0x02, b"\x01\x00\x01"))
    der = encode_template(
        public_key_algorithm=OID_RSA_ENCRYPTION,
        public_key_parameters=b"\x05\x00",
        subject_public_key=dummy,
    )
    template = decode_csrattrs(template_body(der)).template
    assert template is not None
    assert template.rsa_key_size == 3072
    assert template.key_type_hint == "rsa-3072"


def test_template_rsa_without_size_and_other_algorithms() -> None:
    for kwargs, hint in [
        ({"public_key_algorithm": OID_RSA_ENCRYPTION}, "rsa"),
        ({"public_key_algorithm": OID_RSA_ENCRYPTION, "subject_public_key": b"junk"}, "rsa"),
        ({"public_key_algorithm": OID_EC_PUBLIC_KEY}, "ec"),
        ({"public_key_algorithm": OID_ED25519}, "ed25519"),
        ({"public_key_algorithm": "1.2.3.4"}, None),
        (
            {
                "public_key_algorithm": OID_EC_PUBLIC_KEY,
                "public_key_parameters": encode_oid_value("1.2.3.4.5"),
            },
            "ec-1.2.3.4.5",
        ),
    ]:
        template = decode_csrattrs(template_body(encode_template(**kwargs))).template  # type: ignore[arg-type]
        assert template is not None
        assert template.key_type_hint == hint, kwargs


def test_template_with_extension_request_and_other_attributes() -> None:
    extensions = encode_extensions_value([RequestedExtension(SAN, True, SAN_VALUE)])
    der = encode_template(
        attributes=[
            CsrAttribute(OID_EXTENSION_REQUEST, (extensions,)),
            CsrAttribute(OID_CHALLENGE_PASSWORD, (utf8(""),)),
            CsrAttribute("2.999.7", (b"\x05\x00",)),
        ]
    )
    attrs = decode_csrattrs(template_body(der))
    assert attrs.extension_requests == (RequestedExtension(SAN, True, SAN_VALUE),)
    assert attrs.challenge_password_requested


def test_template_takes_precedence_over_legacy_elements() -> None:
    # RFC 9908: a client that understands the template uses it and ignores the rest.
    legacy_ext = encode_extensions_value([RequestedExtension(KEY_USAGE, True, KEY_USAGE_VALUE)])
    template = encode_template(
        public_key_algorithm=OID_EC_PUBLIC_KEY,
        public_key_parameters=encode_oid_value(SECP256R1),
        extensions=[RequestedExtension(SAN, False, SAN_VALUE)],
    )
    body = encode_csrattrs(
        [
            OID_CHALLENGE_PASSWORD,
            CsrAttribute(OID_EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),)),
            CsrAttribute(OID_EXTENSION_REQUEST, (legacy_ext,)),
            ECDSA_SHA384,
            CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (template,)),
        ]
    )
    attrs = decode_csrattrs(body)
    assert attrs.key_type_hint == "ec-p256"
    assert attrs.extension_requests == (RequestedExtension(SAN, False, SAN_VALUE),)
    # A template can express neither: these still come from the other elements.
    assert attrs.signature_hash_hint == "sha384"
    assert attrs.challenge_password_requested


@pytest.mark.parametrize(
    "template",
    [
        b"\x05\x00",  # NULL
        seq(tlv(0x02, b"\x00")),  # attributes missing
        seq(oid("1.2.3"), tlv(0xA1, b"")),  # no version
        seq(tlv(0x02, b"\x00"), tlv(0xA0, b""), tlv(0xA1, b"")),  # empty subjectPKInfo
        seq(
            tlv(0x02, b"\x00"),
            tlv(0xA1, seq(oid(OID_EXTENSION_REQ_TEMPLATE), set_of(b"\x05\x00"))),
        ),
        seq(
            tlv(0x02, b"\x00"),
            tlv(0xA1, seq(oid(OID_EXTENSION_REQUEST), set_of(seq(seq(oid(SAN)))))),
        ),  # id-ExtensionReq inside a template: the extnValue is not optional there
    ],
)
def test_malformed_template_is_a_protocol_error(template: bytes) -> None:
    with pytest.raises(ProtocolError, match="CertificationRequestInfoTemplate") as caught:
        decode_csrattrs(template_body(template))
    assert str(caught.value).startswith("the /csrattrs response")
    assert "\n" not in str(caught.value)


# --- key type, hash and extension hints -----------------------------------------------------------


@pytest.mark.parametrize(
    ("items", "hint"),
    [
        ([OID_EC_PUBLIC_KEY], "ec"),
        ([OID_RSA_ENCRYPTION], "rsa"),
        ([OID_ED25519], "ed25519"),
        ([SECP256R1], "ec-p256"),
        (["1.3.132.0.35"], "ec-p521"),
        ([OID_EC_PUBLIC_KEY, SECP384R1], "ec-p384"),
        (["1.2.840.113549.1.1.11"], "rsa"),
        ([ECDSA_SHA384], "ec"),
        ([CsrAttribute(OID_EC_PUBLIC_KEY, (oid("1.2.3.4"),))], "ec-1.2.3.4"),
        ([CsrAttribute(OID_EC_PUBLIC_KEY, (b"\x05\x00",))], "ec"),
        ([CsrAttribute(OID_RSA_ENCRYPTION, (tlv(0x02, b"\x0c\x00"),))], "rsa-3072"),
        ([CsrAttribute(OID_RSA_ENCRYPTION, (tlv(0x02, b"\xff"),))], "rsa"),  # -1
        ([CsrAttribute(OID_RSA_ENCRYPTION, (utf8("big"),))], "rsa"),
        ([ECDSA_SHA384, CsrAttribute(OID_RSA_ENCRYPTION, (tlv(0x02, b"\x08\x00"),))], "rsa-2048"),
        (["2.999.1", OID_CHALLENGE_PASSWORD], None),
        ([], None),
    ],
)
def test_key_type_hint(items: list[str | CsrAttribute], hint: str | None) -> None:
    assert decode_csrattrs(encode_csrattrs(items)).key_type_hint == hint


@pytest.mark.parametrize(
    ("items", "hash_name"),
    [
        (["1.2.840.10045.4.3.2"], "sha256"),
        (["1.2.840.10045.4.3.4"], "sha512"),
        (["1.2.840.113549.1.1.12"], "sha384"),
        (["2.16.840.1.101.3.4.2.3"], "sha512"),
        (["1.2.840.113549.1.1.5"], "sha1"),
        ([OID_ED25519], None),
        ([OID_EC_PUBLIC_KEY], None),
    ],
)
def test_signature_hash_hint(items: list[str | CsrAttribute], hash_name: str | None) -> None:
    assert decode_csrattrs(encode_csrattrs(items)).signature_hash_hint == hash_name


def test_challenge_password_as_attribute() -> None:
    attrs = decode_csrattrs(encode_csrattrs([CsrAttribute(OID_CHALLENGE_PASSWORD, (utf8(""),))]))
    assert attrs.challenge_password_requested
    assert not decode_csrattrs(encode_csrattrs(["2.999.1"])).challenge_password_requested


def test_extension_requests_first_of_each_extn_id_and_bad_values_skipped() -> None:
    first = encode_extensions_value(
        [
            RequestedExtension(SAN, False, SAN_VALUE),
            RequestedExtension(KEY_USAGE, True, KEY_USAGE_VALUE),
        ]
    )
    second = encode_extensions_value([RequestedExtension(SAN, True, seq())])
    body = encode_csrattrs(
        [
            CsrAttribute(OID_EXTENSION_REQUEST, (first, oid(MAC_ADDRESS))),
            CsrAttribute(OID_EXTENSION_REQUEST, (second,)),
        ]
    )
    assert decode_csrattrs(body).extension_requests == (
        RequestedExtension(SAN, False, SAN_VALUE),
        RequestedExtension(KEY_USAGE, True, KEY_USAGE_VALUE),
    )


# --- empty, malformed, encoder input checks -------------------------------------------------------


@pytest.mark.parametrize("der", [b"", b"\x30\x00"])
def test_empty_is_no_request(der: bytes) -> None:
    attrs = decode_csrattrs(der)
    assert attrs == CsrAttributes()
    assert attrs.key_type_hint is None
    assert attrs.signature_hash_hint is None
    assert attrs.extension_requests == ()
    assert not attrs.challenge_password_requested


@pytest.mark.parametrize("body", [b"", b"\r\n", b"\x00", b"MAA=\n", b"MAA=\x00"])
def test_empty_response_bodies(body: bytes) -> None:
    assert decode_csrattrs_response(body) == CsrAttributes()


@pytest.mark.parametrize(
    "der",
    [
        b"\x31\x00",  # a SET
        b"\x30\x03\x02\x01\x00",  # an INTEGER where an OID or Attribute belongs
        b"\x30\x05\x06\x03\x88\x37",  # truncated
        b"\x30\x00\x00",  # trailing byte
        b"\x30\x80\x00\x00",  # BER indefinite length
        b"\x30\x06\x30\x04\x06\x02\x2a\x03",  # Attribute without values
        b"garbage",
    ],
)
def test_malformed_csrattrs_is_a_protocol_error(der: bytes) -> None:
    with pytest.raises(ProtocolError) as caught:
        decode_csrattrs(der)
    message = str(caught.value)
    assert message.startswith("the /csrattrs response is not a valid CsrAttrs")
    assert "\n" not in message


def test_malformed_response_body_names_the_response() -> None:
    with pytest.raises(ProtocolError, match=r"^the /csrattrs response is not valid base64"):
        decode_csrattrs_response(b"<html>oops</html>")


def test_encoders_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="dotted"):
        encode_csrattrs(["not.an.oid"])
    with pytest.raises(ValueError, match="dotted"):
        encode_oid_value("1")
    with pytest.raises(ValueError, match="no value"):
        encode_extensions_value([RequestedExtension(SAN)])


def test_encode_integer_value() -> None:
    assert encode_integer_value(4096) == tlv(0x02, b"\x10\x00")
    assert encode_integer_value(128) == tlv(0x02, b"\x00\x80")


def test_name_attribute_template_text() -> None:
    assert NameAttributeTemplate("2.5.4.3", tlv(0x13, b"Printable")).text == "Printable"
    assert NameAttributeTemplate("2.5.4.3", tlv(0x16, b"ia5")).text == "ia5"
    assert NameAttributeTemplate("2.5.4.3", tlv(0x1E, "bmp".encode("utf-16-be"))).text == "bmp"
    assert NameAttributeTemplate("2.5.4.3", tlv(0x02, b"\x01")).text is None
    assert NameAttributeTemplate("2.5.4.3", b"\xff\xff").text is None
    assert NameAttributeTemplate("2.5.4.3").text is None

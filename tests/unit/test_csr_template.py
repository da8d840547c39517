"""Applying the server's CSR attributes (RFC 7030 4.5.2, RFC 9908) to the CSR plan."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from est_hw.errors import UsageError
from est_hw.est.csrattrs import (
    OID_CERTIFICATION_REQUEST_INFO_TEMPLATE,
    CsrAttribute,
    NameAttributeTemplate,
    RequestedExtension,
    decode_csrattrs,
    encode_csrattrs,
    encode_extensions_value,
    encode_oid_value,
    encode_template,
)
from est_hw.keys.base import KeyType
from est_hw.x509.csr import CsrContent
from est_hw.x509.template import CsrPlan, apply_csrattrs

EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SECP384R1 = "1.3.132.0.34"
ECDSA_SHA384 = "1.2.840.10045.4.3.3"
EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
# keyUsage digitalSignature: BIT STRING 03 02 07 80
KEY_USAGE = RequestedExtension(ExtensionOID.KEY_USAGE.dotted_string, True, b"\x03\x02\x07\x80")
UTF8_ACME = b"\x0c\x04Acme"

BASE = CsrContent(subject=x509.Name.from_rfc4514_string("CN=dev-1"))


def _plan(items: list[str | CsrAttribute], *, key_type: KeyType = KeyType.EC_P256,
          explicit: bool = False, content: CsrContent = BASE) -> CsrPlan:  # fmt: skip
    attrs = decode_csrattrs(encode_csrattrs(items))
    return apply_csrattrs(attrs, key_type=key_type, key_type_explicit=explicit, content=content)


def test_rfc7030_style_curve_and_hash_are_followed() -> None:
    plan = _plan([CsrAttribute(EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),)), ECDSA_SHA384])
    assert plan.key_type is KeyType.EC_P384
    assert plan.content.signature_hash == "sha384"
    assert plan.notes == ()


def test_an_explicit_key_type_wins_with_a_note() -> None:
    plan = _plan([CsrAttribute(EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),))],
                 key_type=KeyType.RSA_2048, explicit=True)  # fmt: skip
    assert plan.key_type is KeyType.RSA_2048
    assert plan.notes == ("the server asks for a ec-p384 key; keeping --key-type rsa-2048",)


def test_any_curve_keeps_the_chosen_ec_key_and_unknown_oids_are_ignored() -> None:
    plan = _plan([EC_PUBLIC_KEY, "2.999.7"], key_type=KeyType.EC_P384)
    assert plan.key_type is KeyType.EC_P384
    assert plan.content == BASE


def test_unmakeable_key_type_is_noted() -> None:
    plan = _plan(["1.3.101.112"])  # id-Ed25519
    assert plan.key_type is KeyType.EC_P256
    assert plan.notes == ("the server asks for a ed25519 key, which est-hw does not make",)


def test_extension_requests_with_values_are_added_once() -> None:
    value = encode_extensions_value([KEY_USAGE])
    plan = _plan([CsrAttribute(EXTENSION_REQUEST, (value,))])
    (ext,) = plan.content.extensions
    assert ext.oid == ExtensionOID.KEY_USAGE
    assert ext.critical is True
    assert isinstance(ext.value, x509.UnrecognizedExtension)
    assert ext.value.value == b"\x03\x02\x07\x80"


def test_user_san_wins_over_a_requested_san() -> None:
    san = RequestedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string, False,
                             b"\x30\x0b\x82\x09x.example")  # fmt: skip
    mine = CsrContent(subject=BASE.subject, sans=(x509.DNSName("mine.example"),))
    plan = _plan([CsrAttribute(EXTENSION_REQUEST, (encode_extensions_value([san]),))],
                 content=mine)  # fmt: skip
    assert plan.content.extensions == ()
    assert plan.content.sans == (x509.DNSName("mine.example"),)


def _template(**kwargs: object) -> CsrAttribute:
    return CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (encode_template(**kwargs),))  # type: ignore[arg-type]


def test_rfc9908_template_subject_fixed_and_filled() -> None:
    subject = [
        [NameAttributeTemplate(NameOID.ORGANIZATION_NAME.dotted_string, UTF8_ACME)],
        [NameAttributeTemplate(NameOID.COMMON_NAME.dotted_string)],
    ]
    given = CsrContent(subject=x509.Name.from_rfc4514_string("CN=dev-9,OU=lab"))
    plan = _plan([_template(subject=subject, public_key_algorithm=EC_PUBLIC_KEY,
                            public_key_parameters=encode_oid_value(SECP384R1),
                            extensions=[KEY_USAGE])], content=given)  # fmt: skip
    assert plan.content.subject.rfc4514_string() == "CN=dev-9,O=Acme"
    assert plan.key_type is KeyType.EC_P384
    assert [e.oid for e in plan.content.extensions] == [ExtensionOID.KEY_USAGE]
    assert plan.notes == ("the server's CSR template has no place for OU; left out",)


def test_rfc9908_template_value_to_fill_must_be_given() -> None:
    subject = [[NameAttributeTemplate(NameOID.SERIAL_NUMBER.dotted_string)]]
    with pytest.raises(UsageError, match="serialNumber in the subject"):
        _plan([_template(subject=subject)])

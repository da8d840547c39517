"""CMS SignedData signature checks (RFC 5652 sections 5.4-5.6), against cryptography's
own PKCS#7 signer as the independent producer."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from hypothesis import given, settings
from hypothesis import strategies as st

from est_hw.errors import EstHwError, ProtocolError, TrustError
from est_hw.est.signed_data import hash_for, parse_signed_data
from tests.pki import make_ca, make_leaf

CONTENT = b"\x30\x03\x02\x01\x00 a OneAsymmetricKey, say"
ISSUER = make_ca("signed-data EC CA")
EC_CA, EC_CA_KEY = ISSUER.cert, ISSUER.key
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
RSA_SIGNER = make_leaf(ISSUER, RSA_KEY.public_key(), "rsa signer")
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _sign(
    cert: x509.Certificate,
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    *options: pkcs7.PKCS7Options,
    digest: hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None = None,
    rsa_padding: padding.PSS | padding.PKCS1v15 | None = None,
    content: bytes = CONTENT,
) -> bytes:
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, digest or hashes.SHA256(), rsa_padding=rsa_padding)
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary, *options])
    )


@pytest.mark.parametrize(
    "digest", [hashes.SHA256(), hashes.SHA384(), hashes.SHA512()], ids=lambda d: d.name
)
@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
def test_ecdsa_signature_verifies(
    digest: hashes.SHA256 | hashes.SHA384 | hashes.SHA512, attributes: bool
) -> None:
    options = [] if attributes else [pkcs7.PKCS7Options.NoAttributes]
    signed = parse_signed_data(_sign(EC_CA, EC_CA_KEY, *options, digest=digest), what="t")
    assert signed.content == CONTENT
    assert signed.content_type == "1.2.840.113549.1.7.1"  # id-data, as cryptography writes
    assert signed.certificates == (EC_CA,)
    assert signed.verify() == EC_CA


@pytest.mark.parametrize(
    "rsa_padding",
    [padding.PKCS1v15(), padding.PSS(padding.MGF1(hashes.SHA256()), 32)],
    ids=["pkcs1v15", "pss"],
)
def test_rsa_signature_verifies(rsa_padding: padding.PSS | padding.PKCS1v15) -> None:
    der = _sign(RSA_SIGNER, RSA_KEY, rsa_padding=rsa_padding)
    assert parse_signed_data(der, what="t").verify() == RSA_SIGNER


def test_a_signer_certificate_left_out_is_found_among_the_candidates() -> None:
    signed = parse_signed_data(_sign(EC_CA, EC_CA_KEY, pkcs7.PKCS7Options.NoCerts), what="t")
    assert signed.certificates == ()
    with pytest.raises(TrustError, match="not sent and is not known"):
        signed.verify()
    assert signed.verify([RSA_SIGNER, EC_CA]) == EC_CA


def test_changed_content_fails_the_digest() -> None:
    der = _sign(EC_CA, EC_CA_KEY, content=CONTENT)
    changed = der.replace(CONTENT, CONTENT[:-1] + b"?")
    assert changed != der
    signed = parse_signed_data(changed, what="the key")
    with pytest.raises(TrustError, match="the key: the SignedData is not validly signed"):
        signed.verify()


@pytest.mark.parametrize("attributes", [True, False], ids=["signed-attrs", "no-attrs"])
def test_broken_signature_fails(attributes: bool) -> None:
    options = [] if attributes else [pkcs7.PKCS7Options.NoAttributes]
    der = _sign(RSA_SIGNER, RSA_KEY, *options)
    broken = der[:-1] + bytes([der[-1] ^ 0x01])  # the signature value ends the DER
    with pytest.raises(TrustError, match="the signature does not verify"):
        parse_signed_data(broken, what="t").verify()


def test_a_certificate_with_the_signers_name_but_another_key_fails() -> None:
    """The sid names issuer and serial; a look-alike certificate (same issuer and serial,
    another key) is found, and its key does not verify the signature."""
    impostor = (
        x509.CertificateBuilder()
        .subject_name(EC_CA.subject)
        .issuer_name(EC_CA.issuer)
        .serial_number(EC_CA.serial_number)
        .public_key(OTHER_KEY.public_key())
        .not_valid_before(EC_CA.not_valid_before_utc)
        .not_valid_after(EC_CA.not_valid_after_utc)
        .sign(OTHER_KEY, hashes.SHA256())
    )
    signed = parse_signed_data(_sign(EC_CA, EC_CA_KEY, pkcs7.PKCS7Options.NoCerts), what="t")
    with pytest.raises(TrustError, match="the signature does not verify"):
        signed.verify([impostor])


def test_sha1_and_unknown_digests_are_refused() -> None:
    with pytest.raises(ProtocolError, match="SHA-1 is not accepted"):
        hash_for("1.3.14.3.2.26", what="t")
    with pytest.raises(ProtocolError, match=r"unsupported digest algorithm 1\.2\.3"):
        hash_for("1.2.3", what="t")
    assert isinstance(hash_for("2.16.840.1.101.3.4.2.1", what="t"), hashes.SHA256)


def test_the_content_is_not_in_the_repr() -> None:
    """The content of the SignedData around a server-generated key is a private key."""
    signed = parse_signed_data(_sign(EC_CA, EC_CA_KEY), what="t")
    assert CONTENT not in repr(signed).encode()
    assert repr(CONTENT)[2:-1] not in repr(signed)


@pytest.mark.parametrize(
    "der",
    [
        b"",
        b"0\x00",
        b"\x30\x03\x06\x01\x00",
        pkcs7.serialize_certificates([EC_CA], serialization.Encoding.DER),
    ],
    ids=["empty", "empty-seq", "bad-oid", "certs-only"],
)
def test_not_a_signed_data_with_content_is_a_protocol_error(der: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_signed_data(der, what="t")


UNMUTATED = _sign(EC_CA, EC_CA_KEY, pkcs7.PKCS7Options.NoCerts)  # ECDSA: sign once


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_is_refused_or_still_verifies_the_same_content(data: st.DataObject) -> None:
    """Flip any byte of a signed message: est-hw raises its own error, or (a byte outside
    what is signed, such as a certificate it then does not need) the content is intact."""
    der = bytearray(UNMUTATED)
    index = data.draw(st.integers(0, len(der) - 1))
    der[index] ^= data.draw(st.integers(1, 255))
    try:
        signed = parse_signed_data(bytes(der), what="t")
        assert signed.verify([EC_CA]) == EC_CA
    except EstHwError:
        return
    assert signed.content == CONTENT


def test_a_signer_named_by_key_identifier_is_found_among_the_sent_certificates() -> None:
    """RFC 5652 5.3 lets a SignerInfo name its signer by subjectKeyIdentifier; cryptography
    will not read the certificates of such a SignedData, so est-hw reads them itself."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5652

    info, _ = decoder.decode(_sign(EC_CA, EC_CA_KEY), asn1Spec=rfc5652.ContentInfo())
    signed, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
    ski = EC_CA.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for signer in signed["signerInfos"]:
        signer["version"] = 3
        signer["sid"]["subjectKeyIdentifier"] = ski.digest
    signed["version"] = 3
    info["content"] = encoder.encode(signed)
    with pytest.raises(ValueError):  # why est-hw cannot leave this to cryptography
        pkcs7.load_der_pkcs7_certificates(encoder.encode(info))
    by_key_id = parse_signed_data(encoder.encode(info), what="t")
    assert by_key_id.certificates == (EC_CA,)
    assert by_key_id.verify() == EC_CA
    assert by_key_id.verify([RSA_SIGNER]) == EC_CA

"""Decoding /serverkeygen answers (RFC 7030 4.4.2, RFC 8951 5): multipart, keys, certs."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from est_hw.errors import EstHwError, ProtocolError
from est_hw.est.codec import encode_base64_body, encode_certs_only
from est_hw.est.multipart import parse_multipart
from est_hw.est.serverkeygen import decode_serverkeygen, decrypt_server_generated_key
from tests.pki import make_ca, make_leaf

EC_KEY = ec.generate_private_key(ec.SECP256R1())
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
CA = make_ca()


def _pkcs8(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _body(parts: list[tuple[str, bytes]], boundary: str = "estb", eol: bytes = b"\r\n") -> bytes:
    out = b"preamble" + eol
    for content_type, der in parts:
        out += f"--{boundary}".encode() + eol
        out += f"Content-Type: {content_type}".encode() + eol
        out += b"Content-Transfer-Encoding: base64" + eol + eol
        out += encode_base64_body(der).replace(b"\n", eol)
    return out + f"--{boundary}--".encode() + eol


CERTS = "application/pkcs7-mime; smime-type=certs-only"


@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
@pytest.mark.parametrize("key_first", [True, False])
def test_both_orders_and_line_ends(eol: bytes, key_first: bool) -> None:
    cert = make_leaf(CA, EC_KEY.public_key())
    parts = [("application/pkcs8", _pkcs8(EC_KEY)), (CERTS, encode_certs_only([cert]))]
    body = _body(parts if key_first else parts[::-1], eol=eol)
    answer = decode_serverkeygen(body, 'multipart/mixed; boundary="estb"', what="t")
    assert answer.private_key.public_key() == EC_KEY.public_key()
    assert answer.certificates == [cert]
    assert "PrivateKey" in repr(answer)
    assert str(EC_KEY.private_numbers().private_value) not in repr(answer)


def test_pkcs1_rsa_key_labelled_pkcs8_is_accepted() -> None:
    pkcs1 = RSA_KEY.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert = make_leaf(CA, EC_KEY.public_key())
    body = _body([("application/pkcs8", pkcs1), (CERTS, encode_certs_only([cert]))])
    answer = decode_serverkeygen(body, "multipart/mixed; boundary=estb", what="t")
    assert answer.private_key.public_key() == RSA_KEY.public_key()


@pytest.mark.parametrize(
    ("parts", "match"),
    [
        ([("application/pkcs8", b"0\x03\x02\x01\x00")], "expected a key part"),
        ([(CERTS, b"0\x00")], "expected a key part"),
        (
            [("application/pkcs7-mime; smime-type=server-generated-key", b"0\x00"),
             (CERTS, b"0\x00")],
            "CMS-encrypted",
        ),
        ([("application/pkcs8", b"0\x03\x02\x01\x00"), (CERTS, b"0\x00")], "not a PKCS#8"),
    ],
)  # fmt: skip
def test_bad_answers(parts: list[tuple[str, bytes]], match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        decode_serverkeygen(_body(parts), "multipart/mixed; boundary=estb", what="t")


@pytest.mark.parametrize(
    "content_type", [None, "application/pkcs7-mime", "multipart/mixed", "text/plain"]
)
def test_not_multipart(content_type: str | None) -> None:
    with pytest.raises(ProtocolError):
        parse_multipart(b"--x\r\n\r\nAA==\r\n--x--\r\n", content_type, what="t")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["estb", "x", "a'b"]))
def test_any_body_gives_an_est_error_or_parts(body: bytes, boundary: str) -> None:
    with contextlib.suppress(EstHwError):
        decode_serverkeygen(body, f"multipart/mixed; boundary={boundary}", what="t")


def test_part_base64_layouts_are_tolerated() -> None:
    der = _pkcs8(EC_KEY)
    unwrapped = base64.b64encode(der) + b"\x00"
    body = b"--b\nContent-Type: application/pkcs8\n\n" + unwrapped + b"\n--b--\n"
    (part,) = parse_multipart(body, "multipart/mixed;boundary=b", what="t")
    assert part.content == der


# --- CMS-encrypted keys (section 4.4.2): EnvelopedData(SignedData(OneAsymmetricKey)) ------

DECRYPT_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _encrypted_answer(*, rsa_key: bool = False) -> tuple[bytes, str]:
    from cryptography import x509

    from est_hw.testing.ca import TestCa
    from est_hw.testing.keygen import serverkeygen_response

    test_ca = TestCa.create()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=enc"))
        .sign(EC_KEY, hashes.SHA256())
    )
    response = serverkeygen_response(
        test_ca, csr, days=1, rsa_key=rsa_key, pkcs1=False, encrypt_to=DECRYPT_KEY.public_key()
    )
    return response.body, dict(response.headers)["Content-Type"]


@pytest.mark.parametrize("rsa_key", [False, True], ids=["ec", "rsa"])
def test_encrypted_key_is_decrypted_with_the_decryption_key(rsa_key: bool) -> None:
    body, content_type = _encrypted_answer(rsa_key=rsa_key)
    assert b"server-generated-key" in body
    answer = decode_serverkeygen(body, content_type, what="t", decrypt_key=DECRYPT_KEY)
    (cert,) = answer.certificates
    assert cert.public_key() == answer.private_key.public_key()


def test_encrypted_key_without_a_decryption_key_is_refused() -> None:
    body, content_type = _encrypted_answer()
    with pytest.raises(ProtocolError, match="CMS-encrypted"):
        decode_serverkeygen(body, content_type, what="t")


def test_encrypted_key_to_another_key_does_not_decrypt() -> None:
    body, content_type = _encrypted_answer()
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(ProtocolError):
        decode_serverkeygen(body, content_type, what="t", decrypt_key=other)


@pytest.mark.parametrize(
    "der", [b"0\x00", b"\x30\x03\x06\x01\x00", _pkcs8(EC_KEY)], ids=["empty", "oid", "pkcs8"]
)
def test_garbage_encrypted_key_is_a_protocol_error(der: bytes) -> None:
    with pytest.raises(ProtocolError):
        decrypt_server_generated_key(der, DECRYPT_KEY, what="t")


def test_oaep_key_transport_is_understood() -> None:
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc4055, rfc5280

    from est_hw.est.serverkeygen import _key_transport_padding

    params = rfc4055.RSAES_OAEP_params()
    params["hashFunc"]["algorithm"] = rfc4055.id_sha256
    mgf = params["maskGenFunc"]
    mgf["algorithm"] = rfc4055.id_mgf1
    inner = rfc5280.AlgorithmIdentifier()
    inner["algorithm"] = rfc4055.id_sha256
    mgf["parameters"] = encoder.encode(inner)
    algorithm = rfc5280.AlgorithmIdentifier()
    algorithm["algorithm"] = rfc4055.id_RSAES_OAEP
    algorithm["parameters"] = encoder.encode(params)
    algorithm, _ = decoder.decode(encoder.encode(algorithm), asn1Spec=rfc5280.AlgorithmIdentifier())
    pad = _key_transport_padding(algorithm, what="t")
    assert isinstance(pad, padding.OAEP)
    assert isinstance(pad._algorithm, hashes.SHA256)
    ciphertext = DECRYPT_KEY.public_key().encrypt(b"k" * 16, pad)
    assert DECRYPT_KEY.decrypt(ciphertext, pad) == b"k" * 16


def _edited_envelope(edit: Callable[[Any], None]) -> bytes:
    """The test server's encrypted key part, its EnvelopedData changed by ``edit``."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5652

    body, content_type = _encrypted_answer()
    parts = parse_multipart(body, content_type, what="t")
    (key_part,) = [p for p in parts if p.params.get("smime-type") == "server-generated-key"]
    info, _ = decoder.decode(key_part.content, asn1Spec=rfc5652.ContentInfo())
    enveloped, _ = decoder.decode(info["content"], asn1Spec=rfc5652.EnvelopedData())
    edit(enveloped)
    info["content"] = encoder.encode(enveloped)
    return bytes(encoder.encode(info))


def test_an_iv_that_is_a_huge_integer_is_refused_without_allocating_it() -> None:
    """A schemaless decode would hand back an INTEGER, and bytes() of it would allocate
    2**40 zero bytes; the IV is decoded as the OCTET STRING it must be."""
    from pyasn1.codec.der import encoder
    from pyasn1.type import univ

    def huge_iv(enveloped: Any) -> None:
        algorithm = enveloped["encryptedContentInfo"]["contentEncryptionAlgorithm"]
        algorithm["parameters"] = encoder.encode(univ.Integer(2**40))

    with pytest.raises(ProtocolError, match="does not parse"):
        decrypt_server_generated_key(_edited_envelope(huge_iv), DECRYPT_KEY, what="t")


@pytest.mark.parametrize(
    ("mgf_oid", "parameters", "match"),
    [("1.2.3.4", None, "other than MGF1"), ("1.2.840.113549.1.1.8", b"\x02\x01\x05", "parse")],
    ids=["not-mgf1", "mgf1-params-not-an-algorithm"],
)
def test_oaep_with_a_bad_mask_generation_is_a_protocol_error(
    mgf_oid: str, parameters: bytes | None, match: str
) -> None:
    from pyasn1.codec.der import encoder
    from pyasn1_modules import rfc4055

    def bad_oaep(enveloped: Any) -> None:
        params = rfc4055.RSAES_OAEP_params()
        params["maskGenFunc"]["algorithm"] = mgf_oid
        if parameters is not None:
            params["maskGenFunc"]["parameters"] = parameters
        for recipient in enveloped["recipientInfos"]:
            algorithm = recipient["ktri"]["keyEncryptionAlgorithm"]
            algorithm["algorithm"] = rfc4055.id_RSAES_OAEP
            algorithm["parameters"] = encoder.encode(params)

    with pytest.raises(ProtocolError, match=match):
        decrypt_server_generated_key(_edited_envelope(bad_oaep), DECRYPT_KEY, what="t")

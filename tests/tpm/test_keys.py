"""Keys generated in swtpm: types, attributes (seen by tpm2-tools), CSR and TLS signing."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.x509.oid import NameOID

from est_hw.errors import (
    KeyNotFoundError,
    PinIncorrectError,
    TokenError,
    TokenNotFoundError,
    UnsupportedKeyError,
    UsageError,
)
from est_hw.keys.base import KeyType, Secret, TokenKey
from est_hw.keys.tpm import TpmBackend, TpmSelector, open_tpm
from est_hw.keys.tpm_keys import TpmEcPrivateKey, TpmRsaPrivateKey
from tests.tpm.conftest import Swtpm, readpublic

DER = serialization.Encoding.DER
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

KEY_TYPES = [
    KeyType.EC_P256,
    KeyType.EC_P384,
    KeyType.RSA_2048,
    pytest.param(KeyType.RSA_3072, marks=pytest.mark.slow),
]


def _csr(key: TokenKey, **options: Any) -> Any:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(key.private_key, hashes.SHA256(), **options)


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(DER, SPKI))


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=lambda kt: kt.value)
def test_generated_key_signs_a_valid_csr(
    backend: TpmBackend, swtpm: Swtpm, key_type: KeyType
) -> None:
    key = backend.generate_key(key_type, f"gen-{key_type.value}")

    assert key.key_type is key_type
    assert key.key_id == bytes.fromhex("81000100")  # the first handle of the default range
    assert KeyType.of_public_key(key.public_key()) is key_type
    if key_type.is_ec:
        assert isinstance(key.private_key, TpmEcPrivateKey)
        assert isinstance(key.private_key, ec.EllipticCurvePrivateKey)
        assert key.private_key.curve.name == key_type.curve.name  # type: ignore[union-attr]
    else:
        assert isinstance(key.private_key, TpmRsaPrivateKey)
        assert isinstance(key.private_key, rsa.RSAPrivateKey)
        assert key.private_key.key_size == key_type.rsa_bits
    csr = _csr(key)
    assert csr.is_signature_valid
    assert _spki(csr.public_key()) == _spki(key.public_key())

    # the TPM's own view, through tpm2-tools
    assert 0x81000100 in swtpm.handles("persistent")
    public = readpublic(swtpm, 0x81000100)
    attributes = set(public["attributes"].split("|"))
    assert {"fixedtpm", "fixedparent", "sensitivedataorigin", "userwithauth", "sign"} <= attributes
    assert "decrypt" not in attributes and "restricted" not in attributes
    assert public["type"] == ("ecc" if key_type.is_ec else "rsa")
    assert swtpm.handles("transient") == []

    # found again by id and by label
    again = backend.find_key(key_id=key.key_id)
    assert again.label == key.label and _spki(again.public_key()) == _spki(key.public_key())
    assert backend.find_key(label=key.label).key_id == key.key_id


def test_keys_take_consecutive_handles_and_honour_a_chosen_one(
    backend: TpmBackend, swtpm: Swtpm, selector: TpmSelector
) -> None:
    first = backend.generate_key(KeyType.EC_P256, "one")
    second = backend.generate_key(KeyType.EC_P256, "two")
    assert (first.key_id.hex(), second.key_id.hex()) == ("81000100", "81000101")
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, handle=0x81000042)
    with open_tpm(chosen) as other:
        planned = other.new_key_id()
        assert planned == bytes.fromhex("81000042")
        third = other.generate_key(KeyType.EC_P256, "three", key_id=planned)
        assert third.key_id == planned
        assert other.selected_key().label == "three"
        # a complete key at that id is never replaced
        with pytest.raises(UsageError, match="holds key 'three'"):
            other.generate_key(KeyType.EC_P256, "four", key_id=planned)
    assert swtpm.handles("persistent") == [0x81000042, 0x81000100, 0x81000101]
    # found by label although outside the default range: its record names it
    assert backend.find_key(label="three").key_id == planned
    with pytest.raises(UsageError, match="not a persistent handle"):
        backend.generate_key(KeyType.EC_P256, "bad", key_id=bytes(8))


def test_rsa_4096_is_refused_clearly(backend: TpmBackend, swtpm: Swtpm) -> None:
    with pytest.raises(UnsupportedKeyError, match="does not support rsa-4096 keys"):
        backend.generate_key(KeyType.RSA_4096, "big")
    assert swtpm.handles("persistent") == []
    assert swtpm.handles("transient") == []
    assert list(backend.state_dir.iterdir()) == []


def test_tls_style_signatures_verify(backend: TpmBackend) -> None:
    """What the TLS adapter does: whole messages, ECDSA or RSA PSS / PKCS#1 v1.5."""
    message = b"TLS 1.3, server CertificateVerify" + bytes(range(64))
    ec_key = backend.generate_key(KeyType.EC_P256, "ec").private_key
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    for algorithm in (hashes.SHA256(), hashes.SHA384()):
        signature = ec_key.sign(message, ec.ECDSA(algorithm))
        ec_key.public_key().verify(signature, message, ec.ECDSA(algorithm))

    rsa_key = backend.generate_key(KeyType.RSA_2048, "rsa").private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    for algorithm in (hashes.SHA256(), hashes.SHA384()):
        pss = padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
        rsa_key.public_key().verify(rsa_key.sign(message, pss, algorithm), message, pss, algorithm)
        exact = padding.PSS(padding.MGF1(algorithm), algorithm.digest_size)
        rsa_key.public_key().verify(
            rsa_key.sign(message, exact, algorithm),
            message,
            padding.PSS(padding.MGF1(algorithm), padding.PSS.AUTO),
            algorithm,
        )
        pkcs1 = padding.PKCS1v15()
        rsa_key.public_key().verify(
            rsa_key.sign(message, pkcs1, algorithm), message, pkcs1, algorithm
        )


def test_rsa_pss_csr_verifies(backend: TpmBackend) -> None:
    key = backend.generate_key(KeyType.RSA_2048, "pss")
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.DIGEST_LENGTH)
    assert _csr(key, rsa_padding=pss).is_signature_valid


def test_what_a_tpm_cannot_sign_is_refused_before_it_is_asked(backend: TpmBackend) -> None:
    rsa_key = backend.generate_key(KeyType.RSA_2048, "rsa").private_key
    ec_key = backend.generate_key(KeyType.EC_P256, "ec").private_key
    assert isinstance(rsa_key, rsa.RSAPrivateKey) and isinstance(ec_key, ec.EllipticCurvePrivateKey)
    sha256 = hashes.SHA256()
    refused: list[tuple[str, Any]] = [
        ("MAX_LENGTH", lambda: rsa_key.sign(b"m", padding.PSS(padding.MGF1(sha256),
                                                            padding.PSS.MAX_LENGTH), sha256)),
        ("MAX_LENGTH", lambda: _csr(TokenKey(rsa_key, b"", "", KeyType.RSA_2048),
                                    rsa_padding=padding.PSS(padding.MGF1(sha256),
                                                            padding.PSS.MAX_LENGTH))),
        ("PSS.AUTO", lambda: rsa_key.sign(b"m", padding.PSS(padding.MGF1(sha256),
                                                          padding.PSS.AUTO), sha256)),
        ("20 bytes", lambda: rsa_key.sign(b"m", padding.PSS(padding.MGF1(sha256), 20), sha256)),
        ("MGF1", lambda: rsa_key.sign(b"m", padding.PSS(padding.MGF1(hashes.SHA384()),
                                                      padding.PSS.DIGEST_LENGTH), sha256)),
        ("Prehashed", lambda: rsa_key.sign(bytes(32), padding.PKCS1v15(),
                                           utils.Prehashed(sha256))),
        ("Prehashed", lambda: ec_key.sign(bytes(32), ec.ECDSA(utils.Prehashed(sha256)))),
        ("md5", lambda: rsa_key.sign(b"m", padding.PKCS1v15(), hashes.MD5())),
        ("deterministic", lambda: ec_key.sign(b"m", ec.ECDSA(sha256, deterministic_signing=True))),
        ("decryption", lambda: rsa_key.decrypt(b"x", padding.PKCS1v15())),
        ("ECDH", lambda: ec_key.exchange(ec.ECDH(), ec_key.public_key())),
        ("cannot leave", ec_key.private_numbers),
        ("cannot leave", lambda: rsa_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
    ]  # fmt: skip
    for message, call in refused:
        with pytest.raises(UnsupportedKeyError, match=message):
            call()
    assert copy.copy(ec_key) is ec_key and copy.deepcopy(rsa_key) is rsa_key


def test_wrong_key_auth_is_pin_incorrect_without_the_value(
    swtpm: Swtpm, selector: TpmSelector
) -> None:
    right = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_auth=Secret("right-auth-value")
    )
    with open_tpm(right) as backend:
        key = backend.generate_key(KeyType.EC_P256, "guarded")
        assert _csr(key).is_signature_valid
    wrong = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_auth=Secret("wrong-auth-value")
    )
    with open_tpm(wrong) as backend:
        key = backend.find_key(label="guarded")
        with pytest.raises(PinIncorrectError) as caught:
            _csr(key)
    text = f"{caught.value} {caught.value!r} {caught.value.__cause__}"
    assert "wrong-auth" not in text and "right-auth" not in text
    assert "key 0x81000100" in str(caught.value)
    assert swtpm.handles("transient") == []


def test_closed_backend_and_unreachable_tpm(selector: TpmSelector) -> None:
    backend = open_tpm(selector)
    key = backend.generate_key(KeyType.EC_P256, "k")
    backend.close()
    backend.close()  # idempotent
    with pytest.raises(TokenError, match="closed"):
        _csr(key)
    with pytest.raises(TokenError, match="closed"):
        backend.inventory()
    gone = TpmSelector(tcti="swtpm:port=1", state_dir=selector.state_dir)
    with pytest.raises(TokenNotFoundError, match="cannot talk to the TPM 'swtpm:port=1'"):
        open_tpm(gone)
    with pytest.raises(TokenNotFoundError):
        open_tpm(TpmSelector(tcti="no-such-tcti", state_dir=selector.state_dir))


def test_find_key_misses(backend: TpmBackend) -> None:
    backend.generate_key(KeyType.EC_P256, "same")
    backend.generate_key(KeyType.EC_P256, "same")
    with pytest.raises(UsageError):
        backend.find_key()
    with pytest.raises(KeyNotFoundError, match="2 TPM keys"):
        backend.find_key(label="same")
    with pytest.raises(KeyNotFoundError, match="no TPM key"):
        backend.find_key(label="other")
    with pytest.raises(KeyNotFoundError, match="no TPM key"):
        backend.find_key(key_id=bytes.fromhex("81000180"))
    with pytest.raises(KeyNotFoundError, match="no TPM key"):
        backend.find_key(key_id=bytes.fromhex("81000100"), label="other")
    with pytest.raises(UsageError, match="non-empty label"):
        backend.generate_key(KeyType.EC_P256, "")


def test_delete_key(backend: TpmBackend, swtpm: Swtpm) -> None:
    key = backend.generate_key(KeyType.EC_P256, "doomed")
    backend.delete_key(key)
    assert swtpm.handles("persistent") == []
    assert backend.inventory().keys == []
    with pytest.raises(KeyNotFoundError):
        backend.delete_key(key)
    # the handle is free again
    assert backend.generate_key(KeyType.EC_P256, "next").key_id == key.key_id


def test_a_key_object_never_signs_with_a_replacement(
    backend: TpmBackend, selector: TpmSelector
) -> None:
    old = backend.generate_key(KeyType.EC_P256, "old")
    with open_tpm(selector) as other:
        other.delete_key(other.find_key(key_id=old.key_id))
        assert other.generate_key(KeyType.EC_P256, "new").key_id == old.key_id
    with pytest.raises(KeyNotFoundError, match="it was replaced"):
        _csr(old)
    assert _csr(backend.find_key(key_id=old.key_id)).is_signature_valid

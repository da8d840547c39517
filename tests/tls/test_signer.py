"""TlsliteSigningKey: tlslite-ng's digest-signing calls, served by whole-message signing."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from tlslite.utils.rsakey import RSAKey

from est_hw.tls.signer import SigningMismatchError, TlsliteSigningKey
from tests.tls.keys import TokenLikeEcKey, TokenLikeRsaKey
from tests.tls.pki import ec_key, rsa_key

TRANSCRIPT = b"ClientHello...ClientKeyExchange" * 10


def test_ecdsa_signs_the_whole_message_never_the_digest() -> None:
    key = TokenLikeEcKey(ec_key())
    signer = TlsliteSigningKey(key, lambda: [b"other", TRANSCRIPT])
    digest = hashlib.sha256(TRANSCRIPT).digest()
    signature = signer.sign(bytearray(digest), None, "sha256", None)
    key.public_key().verify(bytes(signature), TRANSCRIPT, ec.ECDSA(hashes.SHA256()))
    assert key.signed == [(len(TRANSCRIPT), "sha256")]
    assert signer.verify(signature, bytearray(digest), None, "sha256", None)


def test_ecdsa_digest_truncated_by_tlslite_is_recognised() -> None:
    # TLS 1.2: tlslite-ng cuts a SHA-384 digest to the P-256 size before signing.
    key = TokenLikeEcKey(ec_key())
    signer = TlsliteSigningKey(key, lambda: [TRANSCRIPT])
    assert signer.private_key.curve.baselen == 32
    truncated = hashlib.sha384(TRANSCRIPT).digest()[:32]
    signature = signer.sign(bytearray(truncated), None, "sha384", None)
    key.public_key().verify(bytes(signature), TRANSCRIPT, ec.ECDSA(hashes.SHA384()))


def test_rsa_pkcs1_from_a_digest_info() -> None:
    key = TokenLikeRsaKey(rsa_key())
    signer = TlsliteSigningKey(key, lambda: [TRANSCRIPT])
    digest_info = RSAKey.addPKCS1Prefix(bytearray(hashlib.sha384(TRANSCRIPT).digest()), "sha384")
    signature = signer.sign(digest_info, "pkcs1", None, 0)
    key.public_key().verify(bytes(signature), TRANSCRIPT, padding.PKCS1v15(), hashes.SHA384())
    assert key.signed == [(len(TRANSCRIPT), "EMSA-PKCS1-v1_5", "sha384")]
    assert signer.n == key.public_key().public_numbers().n
    assert len(signer) == 2048


def test_rsa_pss_with_digest_length_salt() -> None:
    key = TokenLikeRsaKey(rsa_key())
    signer = TlsliteSigningKey(key, lambda: [TRANSCRIPT])
    digest = hashlib.sha256(TRANSCRIPT).digest()
    signature = signer.sign(bytearray(digest), "pss", "sha256", 32)
    key.public_key().verify(
        bytes(signature),
        TRANSCRIPT,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),
    )
    assert signer.verify(signature, bytearray(digest), "pss", "sha256", 32)
    assert not signer.verify(signature, bytearray(32), "pss", "sha256", 32)


def test_unknown_digest_is_refused_not_signed() -> None:
    key = TokenLikeEcKey(ec_key())
    signer = TlsliteSigningKey(key, lambda: [TRANSCRIPT])
    with pytest.raises(SigningMismatchError):
        signer.sign(bytearray(32), None, "sha256", None)
    assert key.signed == []

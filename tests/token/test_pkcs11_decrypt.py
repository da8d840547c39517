"""RSA decryption inside the token (CKM_RSA_PKCS, CKM_RSA_PKCS_OAEP) for CMS key transport."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from est_hw.errors import TokenError, UnsupportedKeyError
from est_hw.keys.base import KeyType
from est_hw.keys.pkcs11 import Pkcs11Backend
from tests.conftest import SoftHsmToken
from tests.decrypt_key import make_decrypt_key

PADDINGS = [
    padding.PKCS1v15(),
    padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None),
    pytest.param(
        padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        marks=pytest.mark.xfail(
            raises=TokenError,
            reason="SoftHSM2 decrypts OAEP with SHA-1 only (CKR_ARGUMENTS_BAD otherwise)",
        ),
    ),
]


@pytest.fixture
def decrypt_public(softhsm_token: SoftHsmToken) -> object:
    return make_decrypt_key(softhsm_token)


@pytest.mark.parametrize("pad", PADDINGS, ids=["pkcs1v15", "oaep-sha1", "oaep-sha256"])
def test_token_key_with_cka_decrypt_decrypts(
    decrypt_public: object, backend: Pkcs11Backend, pad: padding.AsymmetricPadding
) -> None:
    private = backend.find_key(label="decrypt").private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.public_key() == decrypt_public
    secret = bytes(range(16))
    ciphertext = private.public_key().encrypt(secret, pad)
    assert private.decrypt(ciphertext, pad) == secret


def test_sign_only_key_refuses_to_decrypt(backend: Pkcs11Backend) -> None:
    private = backend.generate_key(KeyType.RSA_2048, "signer").private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    with pytest.raises(UnsupportedKeyError, match="CKA_DECRYPT"):
        private.decrypt(b"\x00" * 256, padding.PKCS1v15())


def test_oaep_with_a_label_is_refused(decrypt_public: object, backend: Pkcs11Backend) -> None:
    private = backend.find_key(label="decrypt").private_key
    assert isinstance(private, rsa.RSAPrivateKey)
    pad = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=b"x")
    with pytest.raises(UnsupportedKeyError, match="no label"):
        private.decrypt(b"\x00" * 256, pad)

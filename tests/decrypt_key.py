"""An RSA key with CKA_DECRYPT on a SoftHSM2 token, made with python-pkcs11 directly
(est-hw generates sign-only keys; a decryption key is provisioned beforehand)."""

from __future__ import annotations

import pkcs11
from cryptography.hazmat.primitives.asymmetric import rsa
from pkcs11 import Attribute, MechanismFlag

from tests.conftest import SoftHsmToken

DECRYPT_KEY_ID = b"\xde\xc0"


def make_decrypt_key(
    token: SoftHsmToken, label: str = "decrypt", key_id: bytes = DECRYPT_KEY_ID
) -> rsa.RSAPublicKey:
    """Generate an RSA-2048 sign+decrypt key pair on ``token``; its public key."""
    p11_token = pkcs11.lib(token.module).get_token(token_label=token.label)
    with p11_token.open(user_pin=token.pin, rw=True) as session:
        public, _private = session.generate_keypair(
            pkcs11.KeyType.RSA,
            2048,
            id=key_id,
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN
            | MechanismFlag.VERIFY
            | MechanismFlag.ENCRYPT
            | MechanismFlag.DECRYPT,
        )
        modulus = int.from_bytes(public[Attribute.MODULUS], "big")
        exponent = int.from_bytes(public[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()

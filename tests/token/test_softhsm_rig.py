"""The test rig itself: a real SoftHSM2 token signs, and pkcs11-tool sees what we made."""

from __future__ import annotations

import pkcs11
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key
from pkcs11.util.ec import (
    encode_ec_public_key,
    encode_ecdsa_signature,
    encode_named_curve_parameters,
)

from tests.conftest import SoftHsmToken
from tests.pkcs11_tool import list_objects_text


def test_fresh_token_signs_and_pkcs11_tool_lists_the_key(softhsm_token: SoftHsmToken) -> None:
    token = pkcs11.lib(softhsm_token.module).get_token(token_label=softhsm_token.label)
    with token.open(user_pin=softhsm_token.pin, rw=True) as session:
        params = session.create_domain_parameters(
            pkcs11.KeyType.EC,
            {pkcs11.Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")},
            local=True,
        )
        public, private = params.generate_keypair(store=True, label="rig", id=b"\x42")
        digest = hashes.Hash(hashes.SHA256())
        digest.update(b"rig")
        raw = private.sign(digest.finalize(), mechanism=pkcs11.Mechanism.ECDSA)
        spki = load_der_public_key(encode_ec_public_key(public))
        assert isinstance(spki, ec.EllipticCurvePublicKey)
        spki.verify(encode_ecdsa_signature(raw), b"rig", ec.ECDSA(hashes.SHA256()))

    listing = list_objects_text(softhsm_token)
    assert "Private Key Object; EC" in listing
    assert "label:      rig" in listing
    assert "ID:         42" in listing

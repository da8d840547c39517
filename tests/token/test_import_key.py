"""Importing a server-generated key into the token (RFC 7030 4.4): it cannot leave again."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from est_hw.errors import UnsupportedKeyError
from est_hw.keys.base import PrivateKey
from est_hw.keys.pkcs11 import Pkcs11Backend
from tests.conftest import SoftHsmToken
from tests.pkcs11_tool import list_objects, public_key_matches


@pytest.mark.parametrize(
    "make",
    [
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
        lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
    ],
    ids=["ec-p256", "ec-p384", "rsa-2048"],
)
def test_imported_key_signs_inside_and_is_sensitive(
    backend: Pkcs11Backend, softhsm_token: SoftHsmToken, make: object
) -> None:
    software: PrivateKey = make()  # type: ignore[operator]
    key = backend.import_key(software, "server-made")
    assert key.public_key() == software.public_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=imported"))
        .sign(key.private_key, hashes.SHA256())
    )
    assert csr.is_signature_valid
    if isinstance(software, rsa.RSAPrivateKey):
        signature = key.private_key.sign(b"data", padding.PKCS1v15(), hashes.SHA256())  # type: ignore[call-arg]
        software.public_key().verify(signature, b"data", padding.PKCS1v15(), hashes.SHA256())
    with pytest.raises(UnsupportedKeyError):
        key.private_key.private_numbers()

    (private,) = [o for o in list_objects(softhsm_token) if o.kind.startswith("Private Key")]
    assert private.id == key.key_id.hex()
    assert "sensitive" in private.attrs["Access"].split(", ")
    assert "extractable" not in private.attrs["Access"].replace("never extractable", "")
    assert public_key_matches(softhsm_token, key.key_id.hex(), software.public_key())

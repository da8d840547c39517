"""Software keys (as from /serverkeygen) imported so that they cannot leave the TPM."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from est_hw.errors import UnsupportedKeyError
from est_hw.keys.base import KeyType, PrivateKey, Secret, TokenKey
from est_hw.keys.tpm import TpmBackend, TpmSelector, open_tpm
from tests.tpm.conftest import Swtpm, readpublic

PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


def _csr_valid(key: TokenKey) -> bool:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "served")])
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return builder.sign(key.private_key, hashes.SHA256()).is_signature_valid


@pytest.mark.parametrize(
    "software",
    [ec.generate_private_key(ec.SECP256R1()), rsa.generate_private_key(65537, 2048)],
    ids=["ec-p256", "rsa-2048"],
)
def test_imported_key_is_persisted_and_signs(
    swtpm: Swtpm, selector: TpmSelector, software: PrivateKey
) -> None:
    guarded = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_auth=Secret("pw"))
    with open_tpm(guarded) as backend:
        key = backend.import_key(software, "served")
        assert key.key_id == bytes.fromhex("81000100")
        assert key.public_key() == software.public_key()
        assert key.key_type is KeyType.of_public_key(software.public_key())
        assert _csr_valid(key)
        assert backend.find_key(label="served").key_id == key.key_id
    attributes = set(readpublic(swtpm, 0x81000100)["attributes"].split("|"))
    assert attributes == {"userwithauth", "sign"}
    assert swtpm.handles("transient") == []


def test_imported_key_file_loads_in_tpm2_openssl(
    swtpm: Swtpm, selector: TpmSelector, tmp_path: Path
) -> None:
    software = ec.generate_private_key(ec.SECP384R1())
    key_file = tmp_path / "served.pem"
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file)
    with open_tpm(chosen) as backend:
        key = backend.import_key(software, "served")
        assert _csr_valid(key)
    if Path("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so").exists():
        shown = swtpm.tool("openssl", "pkey", "-provider", "tpm2", "-provider", "default",
                           "-in", str(key_file), "-pubout").stdout  # fmt: skip
        assert shown == software.public_key().public_bytes(PEM, SPKI)


def test_unsupported_imports_are_refused(backend: TpmBackend, swtpm: Swtpm) -> None:
    with pytest.raises(UnsupportedKeyError):
        backend.import_key(ec.generate_private_key(ec.SECP521R1()), "p521")
    assert swtpm.handles("persistent") == [] and swtpm.handles("transient") == []

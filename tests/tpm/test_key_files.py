"""Keys kept as TSS2 PRIVATE KEY files, read by the tpm2 OpenSSL provider and vice versa."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from est_hw.errors import KeyNotFoundError, TokenError, UsageError
from est_hw.keys.base import KeyType, Secret, TokenKey
from est_hw.keys.tpm import TpmSelector, open_tpm
from est_hw.keys.tpm_tcti import key_file_key_id
from tests.pki import TwoTierCa
from tests.tpm.conftest import Swtpm, nvread

DER = serialization.Encoding.DER
PEM = serialization.Encoding.PEM
SPKI = serialization.PublicFormat.SubjectPublicKeyInfo

needs_provider = pytest.mark.skipif(
    not Path("/usr/lib/x86_64-linux-gnu/ossl-modules/tpm2.so").exists()
    and not list(Path("/usr/lib").glob("*/ossl-modules/tpm2.so")),
    reason="needs the tpm2 OpenSSL provider (tpm2-openssl)",
)


def _csr_valid(key: TokenKey) -> bool:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return csr.sign(key.private_key, hashes.SHA256()).is_signature_valid


def _openssl_public_key(swtpm: Swtpm, key_file: Path) -> bytes:
    """The public key tpm2-openssl gets by loading ``key_file`` into the TPM."""
    result = swtpm.tool(
        "openssl", "pkey", "-provider", "tpm2", "-provider", "default",
        "-in", str(key_file), "-pubout",
    )  # fmt: skip
    return result.stdout


@needs_provider
@pytest.mark.parametrize("key_type", [KeyType.EC_P256, KeyType.RSA_2048], ids=lambda k: k.value)
def test_key_file_loads_in_tpm2_openssl(
    swtpm: Swtpm, selector: TpmSelector, tmp_path: Path, key_type: KeyType
) -> None:
    key_file = tmp_path / "device.key.pem"
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file)
    with open_tpm(chosen) as backend:
        key = backend.generate_key(key_type, "filed")
        assert _csr_valid(key)
        assert len(key.key_id) == 8
        assert backend.selected_key().key_id == key.key_id
    assert key_file.read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----\n")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert swtpm.handles("persistent") == [] and swtpm.handles("transient") == []
    assert _openssl_public_key(swtpm, key_file) == key.public_key().public_bytes(PEM, SPKI)


@needs_provider
def test_a_key_file_made_by_tpm2_openssl_is_usable(
    swtpm: Swtpm, selector: TpmSelector, tmp_path: Path
) -> None:
    key_file = tmp_path / "openssl.key.pem"
    swtpm.tool(
        "openssl", "genpkey", "-provider", "tpm2", "-provider", "default",
        "-algorithm", "EC", "-pkeyopt", "group:P-256", "-out", str(key_file),
    )  # fmt: skip
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file)
    with open_tpm(chosen) as backend:
        key = backend.selected_key()
        assert key.label == ""  # est-hw has no record of it
        assert key.key_id == key_file_key_id(key.public_key().public_bytes(DER, SPKI))
        assert _csr_valid(key)
        assert backend.find_key(key_id=key.key_id).public_key() == key.public_key()
    assert swtpm.handles("transient") == []


def test_key_file_certificates_go_to_the_state_dir_unless_given_an_index(
    swtpm: Swtpm, selector: TpmSelector, tmp_path: Path, throwaway_ca: TwoTierCa
) -> None:
    first = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_file=tmp_path / "a.pem"
    )
    with open_tpm(first) as backend:
        key = backend.generate_key(KeyType.EC_P256, "a")
        certificate = throwaway_ca.issue(key.public_key(), "a")
        backend.store_certificate(key, certificate, throwaway_ca.chain)
        stored = [c for c in backend.inventory().certificates if c.key_id == key.key_id]
        cert_file = selector.state_dir / f"tpm-{key.key_id.hex()}.cert.pem"
        assert (stored[0].certificate, stored[0].location) == (certificate, f"file:{cert_file}")
        assert [c.certificate for c in stored[1:]] == throwaway_ca.chain
    assert swtpm.handles("nv-index") == []

    second = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_file=tmp_path / "b.pem",
        nv_index=0x01000200,
    )  # fmt: skip
    with open_tpm(second) as backend:
        key = backend.generate_key(KeyType.EC_P256, "b")
        certificate = throwaway_ca.issue(key.public_key(), "b")
        backend.store_certificate(key, certificate, [])
        assert {k.label for k in backend.inventory().keys} == {"a", "b"}
    der = certificate.public_bytes(DER)
    assert nvread(swtpm, 0x01000200, len(der)) == der


def test_key_files_are_never_overwritten_and_deleted_on_request(
    selector: TpmSelector, tmp_path: Path
) -> None:
    key_file = tmp_path / "k.pem"
    chosen = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file, key_auth=Secret("pw")
    )
    with open_tpm(chosen) as backend:
        key = backend.generate_key(KeyType.EC_P256, "k")
        assert _csr_valid(key)  # with its auth value
        before = key_file.read_bytes()
        with pytest.raises(UsageError, match="never overwrites"):
            backend.generate_key(KeyType.EC_P256, "again")
        assert key_file.read_bytes() == before
        backend.delete_key(key)
        assert not key_file.exists()
        with pytest.raises(KeyNotFoundError):
            backend.selected_key()
        assert backend.inventory().keys == []


def test_a_broken_key_file_is_reported(selector: TpmSelector, tmp_path: Path) -> None:
    key_file = tmp_path / "broken.pem"
    key_file.write_text("-----BEGIN TSS2 PRIVATE KEY-----\nAAAA\n-----END TSS2 PRIVATE KEY-----\n")
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file)
    with open_tpm(chosen) as backend:
        with pytest.raises(TokenError, match="not a usable TSS2 PRIVATE KEY"):
            backend.selected_key()
        assert backend.inventory().keys == []  # skipped (and logged)


@needs_provider
def test_moved_key_file_keeps_working(swtpm: Swtpm, selector: TpmSelector, tmp_path: Path) -> None:
    """The file is self-contained: its parent is recreated from the owner seed."""
    key_file = tmp_path / "k.pem"
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_file=key_file)
    with open_tpm(chosen) as backend:
        key = backend.generate_key(KeyType.RSA_2048, "k")
    moved = tmp_path / "elsewhere.pem"
    shutil.copy(key_file, moved)
    elsewhere = TpmSelector(tcti=selector.tcti, state_dir=tmp_path / "other-state", key_file=moved)
    with open_tpm(elsewhere) as backend:
        again = backend.selected_key()
        assert again.public_key() == key.public_key()
        assert _csr_valid(again)

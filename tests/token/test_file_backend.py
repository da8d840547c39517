"""The software key store behind the same KeyBackend contract as the token backends."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_hw.errors import CertificateMismatchError, KeyNotFoundError, TokenError, UsageError
from est_hw.keys.base import KeyBackend, KeyType
from est_hw.keys.file import FileKeyBackend, open_file_store
from tests.pki import TwoTierCa
from tests.token.conftest import KEY_TYPES


@pytest.fixture
def store(tmp_path: Path) -> FileKeyBackend:
    return open_file_store(tmp_path / "keys")


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


@pytest.mark.parametrize("key_type", KEY_TYPES, ids=lambda kt: kt.value)
def test_generate_find_and_sign_a_csr(store: FileKeyBackend, key_type: KeyType) -> None:
    key = store.generate_key(key_type, f"k-{key_type.value}")
    assert isinstance(store, KeyBackend)
    assert key.key_type is key_type
    assert KeyType.of_public_key(key.public_key()) is key_type

    key_file = store.directory / f"{key.key_id.hex()}.key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    meta = json.loads((store.directory / f"{key.key_id.hex()}.json").read_text())
    assert meta == {"id": key.key_id.hex(), "label": key.label, "key_type": key_type.value}

    found = store.find_key(label=key.label)
    assert found.key_id == key.key_id
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "d")]))
        .sign(found.private_key, hashes.SHA256())
    )
    assert csr.is_signature_valid


def test_store_certificate_replace_and_inventory(
    store: FileKeyBackend, throwaway_ca: TwoTierCa
) -> None:
    key = store.generate_key(KeyType.EC_P256, "device")
    first = throwaway_ca.issue(key.public_key(), "first")
    store.store_certificate(key, first, throwaway_ca.chain)
    second = throwaway_ca.issue(key.public_key(), "second")
    store.store_certificate(key, second, throwaway_ca.chain)

    cert_file = store.directory / f"{key.key_id.hex()}.cert.pem"
    assert x509.load_pem_x509_certificate(cert_file.read_bytes()) == second
    chain_file = store.directory / f"{key.key_id.hex()}.chain.pem"
    assert x509.load_pem_x509_certificates(chain_file.read_bytes()) == throwaway_ca.chain
    assert not [p for p in store.directory.iterdir() if p.name.endswith(".tmp")]

    inventory = store.inventory()
    assert [k.key_id for k in inventory.keys] == [key.key_id]
    assert [(c.certificate, c.is_ca) for c in inventory.certificates] == [
        (second, False),
        (throwaway_ca.issuing.cert, True),
        (throwaway_ca.root.cert, True),
    ]
    assert inventory.certificates[0].label == "device"


def test_mismatch_refused_and_files_unchanged(
    store: FileKeyBackend, throwaway_ca: TwoTierCa
) -> None:
    key = store.generate_key(KeyType.EC_P256, "device")
    store.store_certificate(key, throwaway_ca.issue(key.public_key()), throwaway_ca.chain)
    before = _snapshot(store.directory)
    stranger = ec.generate_private_key(ec.SECP256R1()).public_key()
    with pytest.raises(CertificateMismatchError):
        store.store_certificate(key, throwaway_ca.issue(stranger), [])
    assert _snapshot(store.directory) == before


def test_failed_certificate_write_puts_the_old_chain_back(
    store: FileKeyBackend, throwaway_ca: TwoTierCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = store.generate_key(KeyType.EC_P256, "device")
    store.store_certificate(key, throwaway_ca.issue(key.public_key()), [throwaway_ca.root.cert])
    before = _snapshot(store.directory)
    real_replace = os.replace

    def failing_replace(src: str, dst: str | Path) -> None:
        if str(dst).endswith(".cert.pem"):
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(TokenError, match="No space left"):
        store.store_certificate(
            key, throwaway_ca.issue(key.public_key(), "new"), throwaway_ca.chain
        )
    monkeypatch.undo()
    assert _snapshot(store.directory) == before


def test_find_delete_and_close(store: FileKeyBackend, throwaway_ca: TwoTierCa) -> None:
    first = store.generate_key(KeyType.EC_P256, "twin")
    second = store.generate_key(KeyType.EC_P256, "twin")
    with pytest.raises(KeyNotFoundError, match="2 keys"):
        store.find_key(label="twin")
    assert store.find_key(key_id=second.key_id).label == "twin"
    with pytest.raises(UsageError):
        store.find_key()

    store.store_certificate(first, throwaway_ca.issue(first.public_key()), throwaway_ca.chain)
    store.delete_certificates(first.key_id)
    assert store.inventory().certificates == []
    store.delete_key(first)
    with pytest.raises(KeyNotFoundError):
        store.find_key(key_id=first.key_id)
    with pytest.raises(KeyNotFoundError):
        store.delete_key(first)
    assert [k.key_id for k in store.inventory().keys] == [second.key_id]

    with store:
        pass
    store.close()
    with pytest.raises(TokenError, match="closed"):
        store.inventory()


def test_reopened_store_sees_the_keys(tmp_path: Path) -> None:
    with open_file_store(tmp_path) as store:
        key = store.generate_key(KeyType.EC_P384, "persisted")
    with open_file_store(tmp_path) as again:
        found = again.find_key(key_id=key.key_id)
    assert found.public_key() == key.public_key()
    assert found.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ) == key.private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def test_bad_directory_and_corrupt_key(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(TokenError, match="cannot use key directory"):
        open_file_store(not_a_dir)
    store = open_file_store(tmp_path / "keys")
    key = store.generate_key(KeyType.EC_P256, "k")
    (store.directory / f"{key.key_id.hex()}.key.pem").write_text("garbage")
    with pytest.raises(TokenError, match="unreadable key"):
        store.inventory()

"""Certificates in NV indices (read back with tpm2_nvread) and the file fallback."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_hw.errors import CertificateMismatchError, TokenError
from est_hw.keys import tpm_certs, tpm_nv
from est_hw.keys.base import KeyType, StoredCertificate, TokenKey
from est_hw.keys.tpm import TpmBackend, TpmSelector, open_tpm
from tests.pki import Issuer, TwoTierCa, make_ca, make_leaf
from tests.tpm.conftest import Swtpm, nvread

DER = serialization.Encoding.DER


def _der(*certificates: x509.Certificate) -> bytes:
    return b"".join(cert.public_bytes(DER) for cert in certificates)


def _long_chain(depth: int = 4) -> tuple[Issuer, list[x509.Certificate]]:
    """An issuing CA ``depth`` levels below a root, and its chain (issuing CA first)."""
    issuer = make_ca("est-hw test root, deep")
    chain = [issuer.cert]
    for level in range(1, depth):
        issuer = make_ca(f"est-hw test CA level {level} with a long name", issuer)
        chain.insert(0, issuer.cert)
    return issuer, chain


def _mine(backend: TpmBackend, key: TokenKey) -> list[StoredCertificate]:
    return [c for c in backend.inventory().certificates if c.key_id == key.key_id]


def test_certificate_and_chain_fit_in_the_key_nv_index(
    backend: TpmBackend, swtpm: Swtpm, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "device")
    certificate = throwaway_ca.issue(key.public_key())
    backend.store_certificate(key, certificate, throwaway_ca.chain)

    assert 0x01000100 in swtpm.handles("nv-index")
    leaf = _der(certificate)
    assert nvread(swtpm, 0x01000100, len(leaf)) == leaf
    stored = _der(certificate, *throwaway_ca.chain)
    assert nvread(swtpm, 0x01000100, len(stored)) == stored
    assert list(backend.state_dir.glob("*.pem")) == []

    found = _mine(backend, key)
    assert [(c.certificate, c.is_ca, c.location) for c in found] == [
        (certificate, False, "nv:0x01000100"),
        (throwaway_ca.issuing.cert, True, "nv:0x01000100"),
        (throwaway_ca.root.cert, True, "nv:0x01000100"),
    ]
    assert found[0].label == "device"
    assert found[1].label == "est-hw test issuing CA"
    assert swtpm.handles("transient") == []


def test_a_chain_too_large_for_nv_goes_to_a_file(backend: TpmBackend, swtpm: Swtpm) -> None:
    issuer, chain = _long_chain()
    key = backend.generate_key(KeyType.EC_P256, "deep")
    certificate = make_leaf(issuer, key.public_key(), "deep")
    assert len(_der(certificate, *chain)) > 2048
    backend.store_certificate(key, certificate, chain)

    leaf = _der(certificate)
    assert nvread(swtpm, 0x01000100, len(leaf)) == leaf
    chain_file = backend.state_dir / "tpm-81000100.chain.pem"
    assert x509.load_pem_x509_certificates(chain_file.read_bytes()) == chain
    found = _mine(backend, key)
    assert (found[0].certificate, found[0].location) == (certificate, "nv:0x01000100")
    assert [c.certificate for c in found[1:]] == chain
    assert {c.location for c in found[1:]} == {f"file:{chain_file}"}
    assert all(c.is_ca for c in found[1:])


def test_a_certificate_too_large_for_nv_goes_to_files(
    backend: TpmBackend, swtpm: Swtpm, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "big")
    names: list[x509.GeneralName] = [
        x509.DNSName(f"device-{n:03}.factory.example.com") for n in range(80)
    ]
    certificate = make_leaf(throwaway_ca.issuing, key.public_key(), "big", names=names)
    assert len(_der(certificate)) > 2048
    backend.store_certificate(key, certificate, throwaway_ca.chain)

    assert 0x01000100 not in swtpm.handles("nv-index")
    found = _mine(backend, key)
    assert found[0].certificate == certificate and not found[0].is_ca
    assert found[0].location == f"file:{backend.state_dir / 'tpm-81000100.cert.pem'}"
    assert [c.certificate for c in found[1:]] == throwaway_ca.chain


def test_storing_again_replaces_and_moves_between_nv_and_files(
    backend: TpmBackend, swtpm: Swtpm, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "renewed")
    issuer, deep_chain = _long_chain()
    deep = make_leaf(issuer, key.public_key(), "renewed")
    backend.store_certificate(key, deep, deep_chain)
    assert (backend.state_dir / "tpm-81000100.chain.pem").exists()

    renewed = throwaway_ca.issue(key.public_key(), "renewed")
    backend.store_certificate(key, renewed, throwaway_ca.chain)
    assert not (backend.state_dir / "tpm-81000100.chain.pem").exists()
    assert [c.certificate for c in _mine(backend, key)] == [renewed, *throwaway_ca.chain]
    stored = _der(renewed, *throwaway_ca.chain)
    assert nvread(swtpm, 0x01000100, len(stored)) == stored
    assert [p.name for p in backend.state_dir.iterdir() if p.name.startswith(".")] == []


def test_a_failed_store_leaves_everything_as_it_was(
    backend: TpmBackend, swtpm: Swtpm, throwaway_ca: TwoTierCa, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "atomic")
    first = throwaway_ca.issue(key.public_key(), "first")
    backend.store_certificate(key, first, throwaway_ca.chain)
    before = _mine(backend, key)
    stored = _der(first, *throwaway_ca.chain)

    # 1. the TPM refuses the new index (as when it is out of NV space)
    original = tpm_nv.define_and_write
    calls = []

    def refuse_once(*args: object, **kwargs: object) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise TokenError("out of NV space (simulated)")
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tpm_certs, "define_and_write", refuse_once)
    issuer, deep_chain = _long_chain()
    second = make_leaf(issuer, key.public_key(), "second")
    with pytest.raises(TokenError, match="simulated"):
        backend.store_certificate(key, second, deep_chain)
    assert len(calls) == 2  # the refused define, then the old index put back
    assert nvread(swtpm, 0x01000100, len(stored)) == stored
    assert _mine(backend, key) == before
    monkeypatch.setattr(tpm_certs, "define_and_write", original)

    # 2. moving the chain file into place fails after the NV index was rewritten
    def broken_replace(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tpm_certs, "_replace_file", broken_replace)
    with pytest.raises(OSError, match="No space"):
        backend.store_certificate(key, second, deep_chain)
    assert nvread(swtpm, 0x01000100, len(stored)) == stored
    assert _mine(backend, key) == before
    assert sorted(p.name for p in backend.state_dir.iterdir()) == ["tpm-81000100.json"]
    assert swtpm.handles("transient") == []


def test_refusals_change_nothing(
    backend: TpmBackend, swtpm: Swtpm, selector: TpmSelector, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "first")
    other = backend.generate_key(KeyType.EC_P256, "second")
    with pytest.raises(CertificateMismatchError):
        backend.store_certificate(key, throwaway_ca.issue(other.public_key()), [])

    # an index somebody else defined is not touched
    swtpm.tool("tpm2_nvdefine", "-C", "o", "-s", "32", "-a",
               "ownerread|ownerwrite|authread|authwrite", "0x01000101")  # fmt: skip
    with pytest.raises(TokenError, match="not defined by est-hw"):
        backend.store_certificate(other, throwaway_ca.issue(other.public_key()), [])
    assert 0x01000101 in swtpm.handles("nv-index")

    # another key's certificate is not overwritten through an explicit NV index
    backend.store_certificate(key, throwaway_ca.issue(key.public_key()), [])
    clash = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, handle=0x81000102, nv_index=0x01000100
    )
    with open_tpm(clash) as explicit:
        third = explicit.generate_key(KeyType.EC_P256, "third")
        with pytest.raises(TokenError, match="certificate of another key"):
            explicit.store_certificate(third, throwaway_ca.issue(third.public_key()), [])
    assert [c.certificate.subject for c in _mine(backend, key)] == [
        throwaway_ca.issue(key.public_key()).subject
    ]
    assert swtpm.handles("transient") == []


def test_explicit_nv_index_is_remembered(
    selector: TpmSelector, swtpm: Swtpm, throwaway_ca: TwoTierCa
) -> None:
    chosen = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, nv_index=0x01500000)
    with open_tpm(chosen) as backend:
        key = backend.generate_key(KeyType.EC_P256, "explicit")
    certificate = throwaway_ca.issue(key.public_key())
    with open_tpm(selector) as backend:  # no NV index given this time: the record knows it
        backend.store_certificate(backend.find_key(label="explicit"), certificate, [])
        assert [c.location for c in backend.inventory().certificates] == ["nv:0x01500000"]
    assert nvread(swtpm, 0x01500000, len(_der(certificate))) == _der(certificate)
    assert 0x01000100 not in swtpm.handles("nv-index")


def test_delete_certificates_and_keys(
    backend: TpmBackend, swtpm: Swtpm, throwaway_ca: TwoTierCa
) -> None:
    key = backend.generate_key(KeyType.EC_P256, "gone")
    issuer, chain = _long_chain()
    backend.store_certificate(key, make_leaf(issuer, key.public_key()), chain)

    # the key goes; its certificates stay, still listed under its id and label
    backend.delete_key(key)
    assert swtpm.handles("persistent") == []
    inventory = backend.inventory()
    assert inventory.keys == []
    assert {c.key_id for c in inventory.certificates} == {key.key_id}
    assert inventory.certificates[0].label == "gone"

    backend.delete_certificates(key.key_id)
    assert backend.inventory().certificates == []
    assert 0x01000100 not in swtpm.handles("nv-index")
    assert list(Path(backend.state_dir).iterdir()) == []

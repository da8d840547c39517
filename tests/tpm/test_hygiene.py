"""TPM hygiene: no transient object left behind, leftovers from crashes, many cycles."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_hw.errors import (
    CertificateMismatchError,
    KeyNotFoundError,
    PinIncorrectError,
    TokenError,
    UnsupportedKeyError,
)
from est_hw.keys.base import KeyType, Secret, TokenKey
from est_hw.keys.tpm import TpmBackend, TpmSelector, open_tpm
from tests.pki import TwoTierCa
from tests.tpm.conftest import Swtpm


def _sign_csr(key: TokenKey) -> bool:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "device-1")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject)
    return csr.sign(key.private_key, hashes.SHA256()).is_signature_valid


def test_leftover_transient_objects_are_flushed_at_open(
    swtpm: Swtpm, selector: TpmSelector
) -> None:
    from tpm2_pytss import ESAPI

    esapi = ESAPI(swtpm.tcti)
    for _ in range(3):  # every object slot of swtpm, left loaded by a "crashed" client
        esapi.create_primary(None, "ecc256")
    esapi.close()
    assert len(swtpm.handles("transient")) == 3
    with open_tpm(selector) as backend:
        assert swtpm.handles("transient") == []
        assert _sign_csr(backend.generate_key(KeyType.EC_P256, "after-leftovers"))


def test_no_transient_object_leaks_even_after_errors(
    swtpm: Swtpm, selector: TpmSelector, throwaway_ca: TwoTierCa, tmp_path: object
) -> None:
    guarded = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_auth=Secret("a"))
    with open_tpm(guarded) as backend:
        ec_key = backend.generate_key(KeyType.EC_P256, "ec")
        rsa_key = backend.generate_key(KeyType.RSA_2048, "rsa")
        backend.store_certificate(ec_key, throwaway_ca.issue(ec_key.public_key()), [])
    file_selector = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_file=selector.state_dir / "k.pem"
    )
    with open_tpm(file_selector) as backend:
        file_key = backend.generate_key(KeyType.EC_P256, "file")
        for _ in range(5):
            assert _sign_csr(file_key)
    wrong = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, key_auth=Secret("b"))
    with open_tpm(wrong) as backend:
        with pytest.raises(PinIncorrectError):  # one failure: below swtpm's lockout of 3
            _sign_csr(backend.find_key(label="ec"))
        with pytest.raises(UnsupportedKeyError):
            backend.generate_key(KeyType.RSA_4096, "too big")
        with pytest.raises(KeyNotFoundError):
            backend.find_key(label="nothing")
        with pytest.raises(CertificateMismatchError):
            backend.store_certificate(ec_key, throwaway_ca.issue(rsa_key.public_key()), [])
        assert swtpm.handles("transient") == []
    with open_tpm(guarded) as backend:
        for _ in range(10):
            assert _sign_csr(backend.find_key(label="ec"))
            assert _sign_csr(backend.find_key(label="rsa"))
        inventory = backend.inventory()
        assert {key.label for key in inventory.keys} == {"ec", "rsa", "file"}
        assert swtpm.handles("transient") == []
    assert swtpm.handles("transient") == []


def test_twenty_generate_and_store_cycles(
    swtpm: Swtpm, selector: TpmSelector, throwaway_ca: TwoTierCa
) -> None:
    """A factory line: one run per device, each its own process-like open/close."""
    for number in range(20):
        with open_tpm(selector) as backend:
            key = backend.generate_key(KeyType.EC_P256, f"device-{number}")
            certificate = throwaway_ca.issue(key.public_key(), f"device-{number}")
            backend.store_certificate(key, certificate, throwaway_ca.chain)
    assert len(swtpm.handles("persistent")) == 20
    assert len(swtpm.handles("nv-index")) == 20
    assert swtpm.handles("transient") == []
    with open_tpm(selector) as backend:
        inventory = backend.inventory()
    assert sorted(key.label for key in inventory.keys) == sorted(f"device-{n}" for n in range(20))
    leaves = [c for c in inventory.certificates if not c.is_ca]
    assert len(leaves) == 20
    for leaf in leaves:
        key = next(k for k in inventory.keys if k.key_id == leaf.key_id)
        assert leaf.label == key.label
        assert leaf.certificate.public_key() == key.public_key()


def test_a_half_made_key_is_shown_and_replaced(
    swtpm: Swtpm, selector: TpmSelector, throwaway_ca: TwoTierCa, caplog: pytest.LogCaptureFixture
) -> None:
    """A key persisted by a run that died before its record (or whose record was lost)."""
    at_handle = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, handle=0x81000100)
    with open_tpm(at_handle) as backend:
        half_made = backend.generate_key(KeyType.EC_P256, "half-made")
    (selector.state_dir / "tpm-81000100.json").unlink()

    with open_tpm(selector) as backend:
        # listed, without a label
        (listed,) = backend.inventory().keys
        assert (listed.key_id, listed.label) == (half_made.key_id, "")
        # a key without a handle of its own goes to the next free one
        assert backend.generate_key(KeyType.EC_P256, "next").key_id.hex() == "81000101"
    with open_tpm(at_handle) as backend, caplog.at_level(logging.WARNING):
        replacement = backend.generate_key(KeyType.EC_P256, "device")
        assert replacement.key_id == half_made.key_id
        assert replacement.public_key() != half_made.public_key()
        assert "replacing the half-made key" in caplog.text
        assert sorted(k.label for k in backend.inventory().keys) == ["device", "next"]
    assert swtpm.handles("persistent") == [0x81000100, 0x81000101]
    assert swtpm.handles("transient") == []


def test_a_key_without_record_but_with_a_certificate_is_not_replaced(
    swtpm: Swtpm, selector: TpmSelector, throwaway_ca: TwoTierCa
) -> None:
    at_handle = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, handle=0x81000100)
    with open_tpm(at_handle) as backend:
        key = backend.generate_key(KeyType.EC_P256, "enrolled")
        backend.store_certificate(key, throwaway_ca.issue(key.public_key()), [])
    (selector.state_dir / "tpm-81000100.json").unlink()
    with open_tpm(at_handle) as backend:
        with pytest.raises(TokenError, match="with a certificate"):
            backend.generate_key(KeyType.EC_P256, "again")
        assert backend.selected_key().public_key() == key.public_key()


def test_objects_est_hw_did_not_make_are_left_alone(swtpm: Swtpm, selector: TpmSelector) -> None:
    swtpm.tool("tpm2_createprimary", "-C", "o", "-c", str(selector.state_dir.parent / "p.ctx"))
    swtpm.tool("tpm2_evictcontrol", "-C", "o", "-c", str(selector.state_dir.parent / "p.ctx"),
               "0x81000100")  # fmt: skip
    swtpm.tool("tpm2_flushcontext", "-t")
    with open_tpm(selector) as backend:
        assert backend.inventory().keys == []  # a storage key: not a signing key
        assert backend.generate_key(KeyType.EC_P256, "mine").key_id.hex() == "81000101"
    at_handle = TpmSelector(tcti=selector.tcti, state_dir=selector.state_dir, handle=0x81000100)
    with open_tpm(at_handle) as backend, pytest.raises(TokenError, match="did not make"):
        backend.generate_key(KeyType.EC_P256, "clobber")
    assert swtpm.handles("persistent") == [0x81000100, 0x81000101]


def test_a_record_written_before_a_failed_persist_is_removed(
    swtpm: Swtpm, backend: TpmBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tpm2_pytss import ESAPI, TSS2_Exception

    def refuse(*args: object, **kwargs: object) -> None:
        raise TSS2_Exception(0x14B)  # TPM_RC_NV_SPACE: no room for another persistent object

    monkeypatch.setattr(ESAPI, "evict_control", refuse)
    with pytest.raises(TokenError, match="out of NV space"):
        backend.generate_key(KeyType.EC_P256, "no room")
    monkeypatch.undo()
    assert list(backend.state_dir.iterdir()) == []
    assert swtpm.handles("persistent") == [] and swtpm.handles("transient") == []

    # a stale record (its key never persisted) does not confuse the next run
    stale = {"key_id": "81000100", "label": "ghost", "key_type": "ec-p256",
             "public_key_sha256": "00" * 32, "handle": "0x81000100", "key_file": None,
             "nv_index": "0x01000100"}  # fmt: skip
    (backend.state_dir / "tpm-81000100.json").write_text(json.dumps(stale))
    assert backend.inventory().keys == []
    key = backend.generate_key(KeyType.EC_P256, "real")
    assert (key.key_id.hex(), backend.find_key(key_id=key.key_id).label) == ("81000100", "real")


def test_a_persisted_srk_is_used_as_parent(swtpm: Swtpm, selector: TpmSelector) -> None:
    context = str(selector.state_dir.parent / "srk.ctx")
    swtpm.tool("tpm2_createprimary", "-C", "o", "-G", "ecc", "-c", context)
    swtpm.tool("tpm2_evictcontrol", "-C", "o", "-c", context, "0x81000001")
    swtpm.tool("tpm2_flushcontext", "-t")
    with open_tpm(selector) as backend:
        key = backend.generate_key(KeyType.EC_P256, "under-srk")
        assert _sign_csr(key)
        assert swtpm.handles("transient") == []
    assert swtpm.handles("persistent") == [0x81000001, 0x81000100]


def test_owner_auth(swtpm: Swtpm, selector: TpmSelector) -> None:
    swtpm.tool("tpm2_changeauth", "-c", "o", "owner-secret")
    with open_tpm(selector) as backend, pytest.raises(PinIncorrectError) as caught:
        backend.generate_key(KeyType.EC_P256, "no owner auth")
    assert "owner hierarchy" in str(caught.value)
    with_auth = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, owner_auth=Secret("owner-secret")
    )
    with open_tpm(with_auth) as backend:
        assert _sign_csr(backend.generate_key(KeyType.EC_P256, "owned"))
    assert swtpm.handles("persistent") == [0x81000100]


def test_journal_records_and_key_ids(backend: TpmBackend, selector: TpmSelector) -> None:
    assert backend.get_record("est-hw/pending/a") is None
    backend.put_record("est-hw/pending/a", b'{"step": 1}')
    backend.put_record("est-hw/pending/a", b'{"step": 2}')
    assert backend.get_record("est-hw/pending/a") == b'{"step": 2}'
    backend.delete_record("est-hw/pending/a")
    backend.delete_record("est-hw/pending/a")
    assert backend.get_record("est-hw/pending/a") is None

    assert backend.new_key_id() == bytes.fromhex("81000100")
    file_selector = TpmSelector(
        tcti=selector.tcti, state_dir=selector.state_dir, key_file=selector.state_dir / "k.pem"
    )
    with open_tpm(file_selector) as files:
        planned = files.new_key_id()
        assert len(planned) == 8
        key = files.generate_key(KeyType.EC_P256, "planned", key_id=planned)
        assert key.key_id == planned
        assert files.find_key(key_id=planned).label == "planned"


def test_signing_from_threads_is_serialised(backend: TpmBackend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    key = backend.generate_key(KeyType.EC_P256, "threads").private_key
    assert isinstance(key, ec.EllipticCurvePrivateKey)

    def sign(n: int) -> None:
        data = n.to_bytes(4, "big")
        key.public_key().verify(key.sign(data, ec.ECDSA(hashes.SHA256())), data,
                                ec.ECDSA(hashes.SHA256()))  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(sign, range(40)))

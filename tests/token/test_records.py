"""Records kept in the key store (the enrollment journal) and planned key ids."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from est_hw.errors import UsageError
from est_hw.keys.base import KeyBackend, KeyType, Secret
from est_hw.keys.file import open_file_store
from est_hw.keys.pkcs11 import TokenSelector, open_pkcs11
from tests.conftest import SoftHsmToken
from tests.pkcs11_tool import list_objects


@pytest.fixture(params=["pkcs11", "file"])
def store(
    request: pytest.FixtureRequest, softhsm_token: SoftHsmToken, tmp_path: Path
) -> Iterator[KeyBackend]:
    if request.param == "file":
        with open_file_store(tmp_path / "keys") as files:
            yield files
        return
    selector = TokenSelector(module=softhsm_token.module, token_label=softhsm_token.label)
    with open_pkcs11(selector, Secret(softhsm_token.pin)) as backend:
        yield backend


def test_records_round_trip_replace_and_delete(store: KeyBackend) -> None:
    assert store.get_record("est-hw/pending/a") is None
    store.put_record("est-hw/pending/a", b'{"step": 1}')
    store.put_record("est-hw/pending/b", b"other")
    assert store.get_record("est-hw/pending/a") == b'{"step": 1}'
    store.put_record("est-hw/pending/a", b'{"step": 2}')
    assert store.get_record("est-hw/pending/a") == b'{"step": 2}'
    assert store.get_record("est-hw/pending/b") == b"other"
    store.delete_record("est-hw/pending/a")
    store.delete_record("est-hw/pending/a")  # absent: no error
    assert store.get_record("est-hw/pending/a") is None
    assert store.get_record("est-hw/pending/b") == b"other"


def test_generate_key_honours_a_planned_id(store: KeyBackend) -> None:
    planned = store.new_key_id()
    assert len(planned) == 8
    key = store.generate_key(KeyType.EC_P256, "planned", key_id=planned)
    assert key.key_id == planned
    assert store.find_key(key_id=planned).public_key() == key.public_key()
    with pytest.raises(UsageError, match="already used"):
        store.generate_key(KeyType.EC_P256, "again", key_id=planned)


def test_pkcs11_record_is_a_private_data_object(softhsm_token: SoftHsmToken) -> None:
    selector = TokenSelector(module=softhsm_token.module, token_label=softhsm_token.label)
    with open_pkcs11(selector, Secret(softhsm_token.pin)) as backend:
        backend.put_record("est-hw/pending/dev-1", b"journal")
    (data,) = [o for o in list_objects(softhsm_token) if o.kind.startswith("Data object")]
    assert data.attrs["label"] == "'est-hw/pending/dev-1'"
    assert data.attrs["application"] == "'est-hw'"
    assert "private" in data.attrs["flags"].split()

"""Fixtures for the key-backend tests: an open PKCS#11 backend and a throwaway CA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from est_hw.keys.base import KeyType, Secret
from est_hw.keys.pkcs11 import Pkcs11Backend, TokenSelector, open_pkcs11
from tests.conftest import SoftHsmToken
from tests.pki import TwoTierCa, make_two_tier_ca

#: every key type a backend generates (the large RSA keys are slow to make)
KEY_TYPES = [
    KeyType.EC_P256,
    KeyType.EC_P384,
    KeyType.RSA_2048,
    pytest.param(KeyType.RSA_3072, marks=pytest.mark.slow),
    pytest.param(KeyType.RSA_4096, marks=pytest.mark.slow),
]


@pytest.fixture
def backend(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11Backend]:
    """A logged-in backend on a fresh SoftHSM2 token; closed after the test."""
    opened = open_pkcs11(
        TokenSelector(module=softhsm_token.module, token_label=softhsm_token.label),
        Secret(softhsm_token.pin),
    )
    with opened:
        yield opened


@pytest.fixture(scope="session")
def throwaway_ca() -> TwoTierCa:
    """A root ("est-hw test root") and an issuing CA ("est-hw test issuing CA")."""
    return make_two_tier_ca()

"""TlsSettings and ClientIdentity validation."""

from __future__ import annotations

import pytest

from est_hw.errors import UsageError
from est_hw.tls import ClientIdentity, ServerTrust, TlsSettings
from est_hw.tls.connection import handshake_settings
from tests.tls.pki import Pki, ec_key


def test_versions_are_checked(pki: Pki) -> None:
    trust = ServerTrust((pki.root,))
    with pytest.raises(UsageError, match="unsupported TLS version"):
        TlsSettings(trust, min_version="1.1")
    with pytest.raises(UsageError, match="above"):
        TlsSettings(trust, min_version="1.3", max_version="1.2")


def test_client_certificate_must_match_the_key(pki: Pki) -> None:
    with pytest.raises(UsageError, match="does not carry"):
        ClientIdentity(ec_key(), pki.client_ec.chain)
    with pytest.raises(UsageError, match="at least"):
        ClientIdentity(pki.client_ec.key, ())


def test_only_ecdhe_aead_and_modern_versions_are_offered(pki: Pki) -> None:
    hs = handshake_settings(TlsSettings(ServerTrust((pki.root,)), min_version="1.2"))
    assert hs.versions == [(3, 4), (3, 3)]
    assert set(hs.cipherNames) == {"aes256gcm", "aes128gcm", "chacha20-poly1305"}
    assert hs.macNames == ["aead"]
    assert set(hs.keyExchangeNames) == {"ecdhe_ecdsa", "ecdhe_rsa"}
    assert hs.dhGroups == []
    assert hs.certificate_compression_send == []
    hs13 = handshake_settings(TlsSettings(ServerTrust((pki.root,)), min_version="1.3"))
    assert hs13.versions == [(3, 4)]

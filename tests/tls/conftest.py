"""Fixtures for the TLS adapter tests: a throwaway PKI and settings built from it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from est_hw.tls import ClientIdentity, ServerTrust, TlsSettings
from tests.tls.keys import token_like
from tests.tls.pki import Issued, Pki, build_pki

requires_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
requires_gnutls = pytest.mark.skipif(
    shutil.which("gnutls-serv") is None, reason="needs gnutls-serv (gnutls-bin)"
)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return build_pki(tmp_path_factory.mktemp("tls-pki"))


@pytest.fixture
def trust(pki: Pki) -> ServerTrust:
    return ServerTrust(anchors=(pki.root,))


def identity(issued: Issued) -> ClientIdentity:
    """A client identity whose key behaves like a token key (signs, never reveals)."""
    return ClientIdentity(token_like(issued.key), issued.chain)


@pytest.fixture
def make_settings(pki: Pki) -> Callable[..., TlsSettings]:
    def make(
        version: str | None = None, client: Issued | None = None, verify: bool = True
    ) -> TlsSettings:
        low, high = (version, version) if version else ("1.2", "1.3")
        return TlsSettings(
            ServerTrust(anchors=(pki.root,), verify=verify),
            identity(client) if client else None,
            min_version=low,
            max_version=high,
        )

    return make


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "server.log"

"""TCP and TLS misbehaviours: nothing but a clean error, and nothing ever sent.

A server that cannot be authenticated never sees a request: no CSR, and above all no
credentials (RFC 7030 section 3.3.1, DESIGN.md)."""

from __future__ import annotations

import pytest

from est_hw.testing.misbehaviour import Layer, Misbehaviour
from est_hw.x509.trust import fingerprint
from tests.hostile.conftest import (
    PASSWORD,
    USERNAME,
    Batch,
    Case,
    Hostile,
    batch_fixture,
    cases_of,
)
from tests.hostile.expectations import TRUST, Expect, modes, params

M = Misbehaviour
UNAUTHENTICATED = [M.TLS_SELF_SIGNED, M.TLS_WRONG_NAME, M.TLS_EXPIRED]
CREDENTIALS = Expect(TRUST, credentials=True)
AUTH_CONFIG = {"auth": "basic", "users": {USERNAME: PASSWORD}}

batch = batch_fixture(
    cases_of(modes(Layer.TCP, Layer.TLS))
    | {f"credentials:{m.value}": Case(m, CREDENTIALS, config=AUTH_CONFIG) for m in UNAUTHENTICATED}
)


@pytest.mark.parametrize("mode", params(Layer.TCP, Layer.TLS))
def test_connection_misbehaviour(batch: Batch, mode: Misbehaviour) -> None:
    outcome = batch.outcome(mode.value)
    assert list(outcome.server.requests) == []


@pytest.mark.parametrize("mode", UNAUTHENTICATED, ids=lambda m: m.value)
def test_credentials_never_reach_an_unauthenticated_server(
    batch: Batch, mode: Misbehaviour
) -> None:
    outcome = batch.outcome(f"credentials:{mode.value}")
    assert list(outcome.server.requests) == []


def test_bootstrap_fingerprint_does_not_vouch_for_a_foreign_tls_certificate(
    hostile: Hostile,
) -> None:
    """--ca-fingerprint pins the EST CA; a TLS certificate outside it is still refused
    after bootstrap (only the provisional /cacerts fetch was unauthenticated)."""
    server, _ = hostile.server(M.TLS_SELF_SIGNED)
    result = hostile.cli(
        "enroll", "--server", server.url, "--ca-fingerprint", fingerprint(server.ca.anchor),
        "--token", hostile.token.label, "--subject", "CN=hostile-1", "--json",
        "--username", USERNAME, env={"EST_HW_PASSWORD": PASSWORD},
    )  # fmt: skip
    assert result.code == 6, result.stderr
    assert result.stderr.startswith("est-hw: error: ")
    assert [r.path.rsplit("/", 1)[-1] for r in server.requests] == ["cacerts"]
    assert all("authorization" not in r.headers for r in server.requests)

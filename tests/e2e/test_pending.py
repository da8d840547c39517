"""HTTP 202 + Retry-After (RFC 7030 4.2.3): --wait polls and resends the same CSR."""

from __future__ import annotations

import time

from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer
from tests.pkcs11_tool import list_objects


def test_wait_polls_until_issued_with_the_same_csr(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(pending=2, retry_after=1)
    started = time.monotonic()
    result = cli("enroll", "--server", server.url, "--ca-file", str(ca_file), "--token",
                 softhsm_token.label, "--subject", "CN=patient-1", "--wait", "--json")  # fmt: skip
    elapsed = time.monotonic() - started
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "issued"
    posts = [r for r in server.requests if r.path.endswith("/simpleenroll")]
    assert [r.status for r in posts] == [202, 202, 200]
    assert len({r.body for r in posts}) == 1
    assert elapsed >= 2  # honoured Retry-After: 1 s twice
    assert not [o for o in list_objects(softhsm_token) if o.kind.startswith("Data object")]


def test_wait_gives_up_beyond_max_wait(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(pending=5, retry_after=3600)
    started = time.monotonic()
    result = cli("enroll", "--server", server.url, "--ca-file", str(ca_file), "--token",
                 softhsm_token.label, "--subject", "CN=patient-2", "--wait",
                 "--max-wait", "10m", "--json")  # fmt: skip
    assert result.code == 7, result.stderr
    assert time.monotonic() - started < 30
    assert result.json()["retry_after"] == 3600
    assert "beyond --max-wait" in result.stderr
    # the key and the pending record stay for the next run
    objects = list_objects(softhsm_token)
    assert len([o for o in objects if o.kind.startswith("Private Key Object")]) == 1
    assert len([o for o in objects if o.kind.startswith("Data object")]) == 1


def test_a_pending_enrollment_is_not_resumed_against_another_server(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    first, ca_first = est_server(pending=1, retry_after=5)
    other, ca_other = est_server()
    args = ["--token", softhsm_token.label, "--subject", "CN=patient-3", "--json"]
    assert cli("enroll", "--server", first.url, "--ca-file", str(ca_first), *args).code == 7
    result = cli("enroll", "--server", other.url, "--ca-file", str(ca_other), *args)
    assert result.code == 2
    assert "unfinished /simpleenroll" in result.stderr
    assert len([o for o in list_objects(softhsm_token) if o.kind.startswith("Private Key")]) == 1

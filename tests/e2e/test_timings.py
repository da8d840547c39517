"""--timings: time per phase and counts of handshakes, requests and token signatures."""

from __future__ import annotations

from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer


def test_enroll_timings_count_one_handshake_and_the_minimum_requests(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    base = ["enroll", "--server", server.url, "--ca-file", str(ca_file),
            "--token", softhsm_token.label, "--json", "--timings"]  # fmt: skip
    lean = cli(*base, "--subject", "CN=t-1", "--no-csrattrs", "--channel-binding", "none")
    assert lean.code == 0, lean.stderr
    timings = lean.json()["timings"]
    assert timings["counts"] == {
        "tls_handshakes": 1,
        "http_requests": 2,  # /simpleenroll, then /cacerts for the intermediate
        "token_signatures": 1,  # the CSR
    }
    phases = ("token_open", "keygen", "csr_sign", "tls_handshake", "http", "verify", "store",
              "journal")  # fmt: skip
    for phase in phases:
        assert timings["phases_ms"][phase] >= 0
    # the journal is not nested in another phase: the disjoint ones fit in the total
    assert timings["total_ms"] >= sum(
        timings["phases_ms"][p] for p in ("keygen", "csr_sign", "verify", "store", "journal")
    )
    assert timings["phases_ms"]["journal"] > 0  # a record written, updated and removed
    posts = [r for r in server.requests if r.method == "POST"]
    assert len({r.connection for r in server.requests}) == 1 and len(posts) == 1

    full = cli(*base, "--subject", "CN=t-2")
    assert full.json()["timings"]["counts"]["http_requests"] == 3  # + /csrattrs


def test_reenroll_counts_the_tls_client_signature(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    args = ["--server", server.url, "--ca-file", str(ca_file), "--token", softhsm_token.label]
    assert cli("enroll", *args, "--subject", "CN=t-3").code == 0
    result = cli("reenroll", *args, "--json", "--timings", "--channel-binding", "none")
    assert result.code == 0, result.stderr
    counts = result.json()["timings"]["counts"]
    assert counts["tls_handshakes"] == 1
    assert counts["token_signatures"] == 2  # CertificateVerify + the CSR

"""HTTPS_PROXY / NO_PROXY: the TLS session (server verified as always) runs inside a
CONNECT tunnel, so the proxy sees only host and port."""

from __future__ import annotations

from tests.conftest import SoftHsmToken
from tests.connect_proxy import ConnectProxy
from tests.e2e.conftest import Cli, StartServer


def _enroll(cli: Cli, url: str, ca_file: str, token: SoftHsmToken, env: dict[str, str]) -> int:
    result = cli("enroll", "--server", url, "--ca-file", ca_file, "--token", token.label,
                 "--subject", "CN=proxied-1", "--json", env=env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "issued"
    return result.code


def test_enroll_through_https_proxy(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(auth="basic", users={"u": "proxied-pw"})
    with ConnectProxy() as proxy:
        env = {"HTTPS_PROXY": proxy.url, "NO_PROXY": "", "EST_HW_USERNAME": "u",
               "EST_HW_PASSWORD": "proxied-pw"}  # fmt: skip
        _enroll(cli, server.url, str(ca_file), softhsm_token, env)
        assert proxy.seen
        assert all(line == f"CONNECT 127.0.0.1:{server.port} HTTP/1.1" for line in proxy.seen)


def test_no_proxy_goes_direct(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    with ConnectProxy() as proxy:
        env = {"https_proxy": proxy.url, "no_proxy": "localhost,127.0.0.1"}
        _enroll(cli, server.url, str(ca_file), softhsm_token, env)
        assert proxy.seen == []


def test_a_dead_proxy_is_a_connection_error(cli: Cli, softhsm_token: SoftHsmToken) -> None:
    fingerprint = "sha256:" + "00" * 32
    result = cli("cacerts", "--server", "https://127.0.0.1:9", "--ca-fingerprint", fingerprint,
                 env={"HTTPS_PROXY": "http://127.0.0.1:1", "NO_PROXY": ""})  # fmt: skip
    assert result.code == 5
    assert result.stderr.startswith("est-hw: error: ")

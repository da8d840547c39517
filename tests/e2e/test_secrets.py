"""PINs and passwords never reach argv, logs (even -vv), --json output or error messages."""

from __future__ import annotations

import base64

import pytest

from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer

PASSWORD = "pw-Zq81-never-printed"


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_debug_logs_and_json_carry_no_secret(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, auth: str
) -> None:
    server, ca_file = est_server(auth=auth, users={"line7": PASSWORD})
    result = cli("enroll", "--server", server.url, "--ca-file", str(ca_file), "--token",
                 softhsm_token.label, "--subject", "CN=quiet-1", "--username", "line7",
                 "--json", "-vv", env={"EST_HW_PASSWORD": PASSWORD})  # fmt: skip
    assert result.code == 0, result.stderr
    assert "est-hw: DEBUG" in result.stderr  # -vv did log
    basic = base64.b64encode(f"line7:{PASSWORD}".encode()).decode()
    for secret in (PASSWORD, basic):
        assert secret not in result.stdout
        assert secret not in result.stderr


def test_wrong_pin_error_names_no_pin(cli: Cli, softhsm_token: SoftHsmToken) -> None:
    result = cli("show", "--token", softhsm_token.label, "-vv", "--json",
                 env={"EST_HW_PIN": "pin-Xy7-wrong"})  # fmt: skip
    assert result.code == 4
    assert "pin-Xy7-wrong" not in result.stdout + result.stderr

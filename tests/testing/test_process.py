"""``python -m est_hw.testing.server`` as a real process, through start_server_process."""

from __future__ import annotations

import http.client
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from est_hw.testing import start_server_process
from est_hw.testing.cli import read_users_file

from .helpers import PKCS10, basic, csr_body, make_csr, wait_for


def _get(port: int, ca_file: Path, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(ca_file))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        conn.request("POST" if body is not None else "GET", path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_process_serves_authenticates_and_stops_on_sigterm(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("# test users\nestuser:estpwd\n\n")
    attrs = tmp_path / "attrs.b64"
    attrs.write_text("MAsGCSqGSIb3DQEJBw==\n")
    proc = start_server_process(
        ["--auth", "basic", "--users-file", str(users), "--label", "lab",
         "--csrattrs-file", str(attrs), "--pending", "1"],
        tmp_path / "srv",
    )  # fmt: skip
    try:
        assert proc.running() and proc.port > 0
        assert proc.url == f"https://127.0.0.1:{proc.port}"
        x509.load_pem_x509_certificate(proc.ca_file.read_bytes())
        assert _get(proc.port, proc.ca_file, "/.well-known/est/lab/cacerts")[0] == 200
        assert _get(proc.port, proc.ca_file, "/.well-known/est/lab/csrattrs") == (
            200,
            b"MAsGCSqGSIb3DQEJBw==\n",
        )
        csr, _ = make_csr()
        path = "/.well-known/est/lab/simpleenroll"
        assert _get(proc.port, proc.ca_file, path, csr_body(csr), PKCS10)[0] == 401
        headers = {**PKCS10, "Authorization": basic("estuser", "estpwd")}
        assert _get(proc.port, proc.ca_file, path, csr_body(csr), headers)[0] == 202
        assert _get(proc.port, proc.ca_file, path, csr_body(csr), headers)[0] == 200
    finally:
        code = proc.stop()
    assert code == 0  # SIGTERM is a clean stop
    assert not proc.running()
    log = proc.log()
    assert "simpleenroll 200 user=estuser" in log
    assert "estpwd" not in log


def test_state_dir_keeps_the_ca_across_restarts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    anchors = []
    for run in range(2):
        proc = start_server_process(["--state-dir", str(state), "--quiet"], tmp_path / f"r{run}")
        try:
            anchors.append(proc.ca_file.read_bytes())
            assert _get(proc.port, proc.ca_file, "/.well-known/est/cacerts")[0] == 200
        finally:
            proc.stop()
    assert anchors[0] == anchors[1]
    assert (state / "issuing.key").exists()


def test_sigint_also_stops_cleanly(tmp_path: Path) -> None:
    proc = start_server_process(["--tls-version", "1.2"], tmp_path)
    try:
        os.kill(proc.pid, signal.SIGINT)
        assert wait_for(lambda: not proc.running())
    finally:
        code = proc.stop()
    assert code == 0


def test_bad_arguments_fail_fast_with_the_log(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="users-file"):
        start_server_process(["--auth", "digest"], tmp_path)


def test_help_runs_without_warnings() -> None:
    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "est_hw.testing.server", "--help"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert "--users-file" in result.stdout
    assert result.stderr == ""


def test_read_users_file(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("a:b\n# comment\n\nc:d:e\n")
    assert read_users_file(path) == {"a": "b", "c": "d:e"}
    path.write_text("no-colon\n")
    with pytest.raises(ValueError, match="users:1"):
        read_users_file(path)

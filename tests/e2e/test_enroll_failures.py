"""Bad input gets a clear one-line error, the documented exit code, and the token is left
exactly as it was (pkcs11-tool lists the same objects before and after)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding

from est_hw.testing.config import Response
from est_hw.testing.wire import encode_base64_body, pkcs7_certs_only
from est_hw.x509.trust import fingerprint
from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, CliResult, StartServer
from tests.pkcs11_tool import list_objects
from tests.pki import make_ca


def _snapshot(token: SoftHsmToken) -> list[tuple[str, dict[str, str]]]:
    return [(o.kind, o.attrs) for o in list_objects(token)]


def _enroll(
    cli: Cli,
    url: str,
    ca_file: Path,
    token: SoftHsmToken,
    *extra: str,
    env: dict[str, str] | None = None,
) -> CliResult:
    return cli("enroll", "--server", url, "--ca-file", str(ca_file), "--token", token.label,
               "--subject", "CN=fail-1", "--json", *extra, env=env)  # fmt: skip


def _assert_clean_failure(result: CliResult, code: int, *needles: str) -> None:
    assert result.code == code, (result.code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr  # one line, no traceback
    assert lines[0].startswith("est-hw: error: ")
    for needle in needles:
        assert needle in lines[0]
    assert result.json()["exit_code"] == code


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_wrong_pin(cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer) -> None:
    server, ca_file = est_server()
    before = _snapshot(softhsm_token)
    result = _enroll(cli, server.url, ca_file, softhsm_token, env={"EST_HW_PIN": "987654"})
    _assert_clean_failure(result, 4, "PIN")
    assert "987654" not in result.stdout + result.stderr
    assert _snapshot(softhsm_token) == before


def test_unknown_token_and_slot(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    result = cli("enroll", "--server", server.url, "--ca-file", str(ca_file),
                 "--token", "no-such-token", "--subject", "CN=x", "--json")  # fmt: skip
    _assert_clean_failure(result, 4, "no-such-token")
    result = cli("show", "--slot", "4242424242", "--json")
    _assert_clean_failure(result, 4)


def test_no_pin_without_a_terminal(cli: Cli, softhsm_token: SoftHsmToken) -> None:
    result = cli("show", "--token", softhsm_token.label, "--json", env={"EST_HW_PIN": ""})
    _assert_clean_failure(result, 2, "EST_HW_PIN")


def test_server_down(cli: Cli, softhsm_token: SoftHsmToken, tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(make_ca().cert.public_bytes(Encoding.PEM))
    before = _snapshot(softhsm_token)
    result = _enroll(cli, f"https://127.0.0.1:{_free_port()}", ca_file, softhsm_token)
    _assert_clean_failure(result, 5)
    assert _snapshot(softhsm_token) == before


def test_untrusted_server(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    server, _ = est_server()
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(make_ca("Stranger").cert.public_bytes(Encoding.PEM))
    before = _snapshot(softhsm_token)
    _assert_clean_failure(_enroll(cli, server.url, stranger, softhsm_token), 6)
    assert _snapshot(softhsm_token) == before
    assert not [r for r in server.requests if r.path.endswith("simpleenroll")]


def test_wrong_server_name(cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer) -> None:
    server, ca_file = est_server(server_names=("other.example",))
    before = _snapshot(softhsm_token)
    _assert_clean_failure(_enroll(cli, server.url, ca_file, softhsm_token), 6, "127.0.0.1")
    assert _snapshot(softhsm_token) == before


def test_fingerprint_mismatch(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, _ = est_server()
    wrong = fingerprint(make_ca("Other").cert)
    before = _snapshot(softhsm_token)
    result = cli("enroll", "--server", server.url, "--ca-fingerprint", wrong,
                 "--token", softhsm_token.label, "--subject", "CN=x", "--json")  # fmt: skip
    _assert_clean_failure(result, 6, "fingerprint")
    assert _snapshot(softhsm_token) == before


def test_no_trust_anchor_is_refused(cli: Cli, softhsm_token: SoftHsmToken) -> None:
    result = cli("enroll", "--server", "https://127.0.0.1:1", "--token", softhsm_token.label,
                 "--subject", "CN=x", "--json")  # fmt: skip
    _assert_clean_failure(result, 2, "--ca-file")


def test_wrong_password_is_401(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(auth="basic", users={"line7": "right-pw"})
    before = _snapshot(softhsm_token)
    result = _enroll(cli, server.url, ca_file, softhsm_token, "--username", "line7",
                     env={"EST_HW_PASSWORD": "wrong-pw"})  # fmt: skip
    _assert_clean_failure(result, 3, "401")
    assert "wrong-pw" not in result.stdout + result.stderr
    assert _snapshot(softhsm_token) == before


Hook = Callable[[str, Response], Response]


def _replace_enroll_answer(body_for: Callable[[], bytes], status: int = 200) -> Hook:
    def hook(operation: str, response: Response) -> Response:
        if operation != "simpleenroll":
            return response
        return Response(status, body_for(), list(response.headers))

    return hook


def _other_key_certificate(server_ca: object) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=fail-1"))
        .sign(key, hashes.SHA256())
    )
    cert = server_ca.issue(csr)  # type: ignore[attr-defined]
    return encode_base64_body(pkcs7_certs_only([cert]))


@pytest.mark.parametrize(
    ("case", "code", "needle"),
    [
        ("garbage", 5, "base64"),
        ("empty-body", 5, "simpleenroll"),
        ("pkcs7-without-certificate", 5, "no certificate"),
        ("csr-instead-of-pkcs7", 5, "simpleenroll"),
        ("certificate-for-another-key", 6, "token key"),
        ("forbidden", 3, "403"),
        ("server-error", 5, "500"),
    ],
)
def test_bad_enroll_answers_leave_the_token_untouched(
    cli: Cli,
    softhsm_token: SoftHsmToken,
    est_server: StartServer,
    case: str,
    code: int,
    needle: str,
) -> None:
    holder: dict[str, object] = {}

    def body() -> bytes:
        if case == "garbage":
            return b"%%% this is not base64 %%%\n"
        if case == "empty-body":
            return b""
        if case == "pkcs7-without-certificate":
            return encode_base64_body(pkcs7_certs_only([]))
        if case == "csr-instead-of-pkcs7":
            key = ec.generate_private_key(ec.SECP256R1())
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
            der = csr.sign(key, hashes.SHA256()).public_bytes(Encoding.DER)
            return encode_base64_body(der)
        if case == "certificate-for-another-key":
            return _other_key_certificate(holder["ca"])
        return b"go away\n"

    status = {"forbidden": 403, "server-error": 500}.get(case, 200)
    server, ca_file = est_server(response_hook=_replace_enroll_answer(body, status))
    holder["ca"] = server.ca
    before = _snapshot(softhsm_token)
    _assert_clean_failure(_enroll(cli, server.url, ca_file, softhsm_token), code, needle)
    assert _snapshot(softhsm_token) == before


def test_pending_exits_7_and_the_next_run_resumes_with_the_same_key_and_csr(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(pending=1, retry_after=42)
    result = _enroll(cli, server.url, ca_file, softhsm_token)
    assert result.code == 7, result.stderr
    assert result.json() == {
        "status": "pending",
        "error": result.json()["error"],
        "exit_code": 7,
        "retry_after": 42,
    }
    # RFC 7030 4.2.3: the key stays, with the pending state recorded on the token
    objects = list_objects(softhsm_token)
    (private,) = [o for o in objects if o.kind.startswith("Private Key Object")]
    (record,) = [o for o in objects if o.kind.startswith("Data object")]
    assert record.attrs["label"] == "'est-hw/pending/fail-1'"

    again = _enroll(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    assert again.json()["key_id"] == private.id
    objects = list_objects(softhsm_token)
    assert [o.id for o in objects if o.kind.startswith("Private Key Object")] == [private.id]
    assert not [o for o in objects if o.kind.startswith("Data object")]
    first, second = [r.body for r in server.requests if r.path.endswith("/simpleenroll")]
    assert first == second  # the same CSR, signed by the same key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enroll", "--json", "--bogus"], "No such option '--bogus'"),
        (["enroll", "--key-type", "ec-p999", "--json"], "Invalid value for '--key-type'"),
    ],
)
def test_command_line_errors_are_json_with_json(cli: Cli, args: list[str], message: str) -> None:
    """click's own parse errors: usage on stderr, exit 2, and the error object on stdout."""
    result = cli(*args)
    assert result.code == 2
    assert "Usage: est-hw enroll" in result.stderr
    error = result.json()
    assert error["status"] == "error"
    assert error["exit_code"] == 2
    assert message in error["error"]
    assert cli("enroll", "--bogus").stdout == ""  # without --json: nothing on stdout

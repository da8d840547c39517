"""Crash safety: a run killed with SIGKILL at any point of enroll, reenroll or rekey, then
run again, ends with exactly one valid key + certificate and no orphaned objects.

The fault points (EST_HW_CRASH_AT, est_hw.faults) make the real process kill itself with
SIGKILL; one test also kills a real client with SIGKILL while a slow server holds its
request."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from est_hw.faults import POINTS
from est_hw.testing.config import Response
from tests.conftest import SoftHsmToken
from tests.e2e.conftest import EST_HW, Cli, CliResult, StartServer
from tests.pkcs11_tool import list_objects, public_key_matches, read_object

ENROLL_POINTS = [p for p in POINTS if p != "before-retire"]


def _enroll(cli: Cli, url: str, ca: Path, token: SoftHsmToken, **env: str) -> CliResult:
    return cli("enroll", "--server", url, "--ca-file", str(ca), "--token", token.label,
               "--subject", "CN=crash-1", "--json", env=env)  # fmt: skip


def _reenroll(
    cli: Cli, url: str, ca: Path, token: SoftHsmToken, *extra: str, **env: str
) -> CliResult:
    return cli("reenroll", "--server", url, "--ca-file", str(ca), "--token", token.label,
               "--json", *extra, env=env)  # fmt: skip


def _assert_one_key_one_certificate(token: SoftHsmToken, ca_file: Path) -> str:
    """Exactly one key pair and one end-entity certificate that matches it; no journal."""
    objects = list_objects(token)
    private = [o for o in objects if o.kind.startswith("Private Key Object")]
    public = [o for o in objects if o.kind.startswith("Public Key Object")]
    assert len(private) == 1, objects
    assert [o.id for o in public] == [private[0].id]
    assert not [o for o in objects if o.kind.startswith("Data object")]
    leaves = [
        o for o in objects if o.kind.startswith("Certificate Object") and o.id == private[0].id
    ]
    assert len(leaves) == 1, objects
    cert = x509.load_der_x509_certificate(read_object(token, "cert", private[0].id))
    assert public_key_matches(token, private[0].id, cert.public_key())
    anchor = x509.load_pem_x509_certificate(ca_file.read_bytes())
    issuers = [
        x509.load_der_x509_certificate(read_object(token, "cert", o.id))
        for o in objects
        if o.kind.startswith("Certificate Object") and o.id != private[0].id
    ]
    assert anchor in issuers
    return private[0].id


@pytest.mark.parametrize("point", ENROLL_POINTS)
def test_enroll_killed_then_rerun(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, point: str
) -> None:
    server, ca_file = est_server()
    killed = _enroll(cli, server.url, ca_file, softhsm_token, EST_HW_CRASH_AT=point)
    assert killed.code == -signal.SIGKILL
    again = _enroll(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    key_id = _assert_one_key_one_certificate(softhsm_token, ca_file)
    assert again.json()["key_id"] == key_id
    assert again.json()["resumed"] is (point != "before-keygen")


@pytest.mark.parametrize("point", ["before-send", "after-answer", "after-store"])
def test_reenroll_killed_then_rerun(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, point: str
) -> None:
    server, ca_file = est_server()
    first = _enroll(cli, server.url, ca_file, softhsm_token).json()
    killed = _reenroll(cli, server.url, ca_file, softhsm_token, EST_HW_CRASH_AT=point)
    assert killed.code == -signal.SIGKILL
    again = _reenroll(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    assert _assert_one_key_one_certificate(softhsm_token, ca_file) == first["key_id"]
    assert again.json()["serial_number"] != first["serial_number"]


@pytest.mark.parametrize("point", POINTS)
def test_rekey_killed_then_rerun(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, point: str
) -> None:
    server, ca_file = est_server()
    first = _enroll(cli, server.url, ca_file, softhsm_token).json()
    killed = _reenroll(cli, server.url, ca_file, softhsm_token, "--rekey", EST_HW_CRASH_AT=point)
    assert killed.code == -signal.SIGKILL
    again = _reenroll(cli, server.url, ca_file, softhsm_token, "--rekey")
    assert again.code == 0, again.stderr
    key_id = _assert_one_key_one_certificate(softhsm_token, ca_file)
    assert key_id != first["key_id"]
    assert again.json()["key_id"] == key_id


def test_real_sigkill_while_the_server_holds_the_request(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    arrived = threading.Event()
    release = threading.Event()

    def slow(operation: str, response: Response) -> Response:
        if operation == "simpleenroll" and not release.is_set():
            arrived.set()
            release.wait(timeout=30)
        return response

    server, ca_file = est_server(response_hook=slow)
    args = [EST_HW, "enroll", "--server", server.url, "--ca-file", str(ca_file),
            "--token", softhsm_token.label, "--subject", "CN=crash-1", "--json"]  # fmt: skip
    proc = subprocess.Popen(args, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert arrived.wait(timeout=60), "the request never reached the server"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stderr.close()  # type: ignore[union-attr]
    time.sleep(0.1)
    again = _enroll(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    assert again.json()["resumed"] is True
    _assert_one_key_one_certificate(softhsm_token, ca_file)


def _cut_short(token: SoftHsmToken, key_id: str) -> None:
    """Make the private key ``key_id`` what SoftHSM leaves when a process is killed inside
    C_GenerateKeyPair: id, label and every flag in place, but no usable private value
    (here: the scalar 1, whose signatures the public key object does not verify)."""
    import pkcs11
    from pkcs11 import Attribute, KeyType, ObjectClass
    from pkcs11.util.ec import encode_named_curve_parameters

    lib = pkcs11.lib(token.module)
    with lib.get_token(token_label=token.label).open(rw=True, user_pin=token.pin) as session:
        (private,) = session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.ID: bytes.fromhex(key_id)}
        )
        label = private[Attribute.LABEL]
        private.destroy()
        session.create_object({
            Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.KEY_TYPE: KeyType.EC,
            Attribute.TOKEN: True, Attribute.PRIVATE: True, Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False, Attribute.SIGN: True, Attribute.ID: bytes.fromhex(key_id),
            Attribute.LABEL: label, Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1"),
            Attribute.VALUE: (1).to_bytes(32, "big"),
        })  # fmt: skip


def test_a_key_generation_cut_short_is_made_again_by_the_rerun(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    killed = _enroll(cli, server.url, ca_file, softhsm_token, EST_HW_CRASH_AT="after-keygen")
    assert killed.code == -signal.SIGKILL
    (planned,) = [o for o in list_objects(softhsm_token) if o.kind.startswith("Private Key")]
    _cut_short(softhsm_token, planned.id)

    again = _enroll(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    assert again.json()["resumed"] is False  # the key is new, as after "before-keygen"
    # the same planned id, now on a key pair that works (the certificate matches it)
    assert _assert_one_key_one_certificate(softhsm_token, ca_file) == planned.id

"""est-hw enroll end to end: a key made in a real SoftHSM2 token, a real test EST server
over TLS, and pkcs11-tool as the independent witness of what lands on the token."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.verification import PolicyBuilder, Store

from est_hw.x509.names import serial_hex
from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer
from tests.pkcs11_tool import list_objects, public_key_matches, read_object


def _enroll_args(server_url: str, ca_file: str, token: SoftHsmToken, *extra: str) -> list[str]:
    return ["enroll", "--server", server_url, "--ca-file", ca_file, "--token", token.label,
            "--subject", "CN=dev-1,O=est-hw tests", "--san", "dns:dev-1.example",
            "--san", "ip:192.0.2.1", "--json", *extra]  # fmt: skip


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048"])
def test_enroll_stores_a_matching_certificate_beside_a_sensitive_key(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, key_type: str
) -> None:
    server, ca_file = est_server()
    result = cli(*_enroll_args(server.url, str(ca_file), softhsm_token, "--key-type", key_type))
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "issued"
    assert out["subject"] == "CN=dev-1,O=est-hw tests"
    assert out["token"] == softhsm_token.label
    assert out["key_type"] == key_type
    not_after = datetime.datetime.fromisoformat(out["not_after"])
    assert not_after > datetime.datetime.now(datetime.UTC)
    key_id = out["key_id"]
    assert len(key_id) >= 2

    # pkcs11-tool, not est-hw, says what is on the token.
    objects = list_objects(softhsm_token)
    private = [o for o in objects if o.kind.startswith("Private Key Object")]
    assert len(private) == 1
    assert private[0].id == key_id
    assert private[0].label == "dev-1"
    access = private[0].attrs["Access"]
    assert "sensitive" in access
    assert "never extractable" in access
    certs = [o for o in objects if o.kind.startswith("Certificate Object")]
    leaf_objects = [o for o in certs if o.id == key_id]
    assert len(leaf_objects) == 1
    assert leaf_objects[0].label == "dev-1"

    cert = x509.load_der_x509_certificate(read_object(softhsm_token, "cert", key_id))
    assert serial_hex(cert.serial_number) == out["serial_number"]
    assert public_key_matches(softhsm_token, key_id, cert.public_key())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["dev-1.example"]

    # The CA chain is on the token too, and it validates the leaf to the anchor.
    chain = [
        x509.load_der_x509_certificate(read_object(softhsm_token, "cert", o.id))
        for o in certs
        if o.id != key_id
    ]
    assert len(chain) == out["chain_length"] == 2
    anchor = x509.load_pem_x509_certificate(ca_file.read_bytes())
    assert anchor in chain
    verifier = PolicyBuilder().store(Store([anchor])).build_client_verifier()
    path = verifier.verify(cert, [c for c in chain if c != anchor]).chain
    assert path[-1] == anchor

    # what went over the wire: one CSR, 64-column base64 with Content-Length
    enrolls = [r for r in server.requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) == 1
    lines = enrolls[0].body.split(b"\n")
    assert max(len(line) for line in lines) == 64
    assert enrolls[0].body.endswith(b"\n")


def test_show_lists_the_key_and_its_certificate(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    enrolled = cli(*_enroll_args(server.url, str(ca_file), softhsm_token))
    assert enrolled.code == 0, enrolled.stderr
    shown = cli("show", "--token", softhsm_token.label, "--json")
    assert shown.code == 0, shown.stderr
    data = shown.json()
    assert data["token"] == softhsm_token.label
    (key,) = data["keys"]
    assert key["id"] == enrolled.json()["key_id"]
    assert key["key_type"] == "ec-p256"
    assert key["certificate"]["matches_key"] is True
    assert key["certificate"]["serial_number"] == enrolled.json()["serial_number"]
    assert len(data["other_certificates"]) == 2
    assert all(c["is_ca"] for c in data["other_certificates"])
    human = cli("show", "--token", softhsm_token.label)
    assert human.code == 0
    assert "matches key: yes" in human.stdout
    assert "CN=dev-1" in human.stdout


@pytest.mark.parametrize("auth", ["basic", "digest"])
def test_enroll_with_uri_label_auth_and_out_file(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, auth: str
) -> None:
    server, ca_file = est_server(auth=auth, users={"line7": "s3cret-pw"}, label="tray7")
    pw = ca_file.with_name("pw")
    pw.write_text("s3cret-pw\n")
    out_pem = ca_file.with_name("issued.pem")
    uri = f"pkcs11:token={softhsm_token.label};object=tray-key"
    result = cli("enroll", "--server", server.url, "--label", "tray7", "--ca-file", str(ca_file),
                 "--key-uri", uri, "--username", "line7", "--password-file", str(pw),
                 "--san", "dns:only-san.example", "--out", str(out_pem), "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["key_label"] == "tray-key"
    certs = x509.load_pem_x509_certificates(out_pem.read_bytes())
    assert len(certs) == 3
    assert serial_hex(certs[0].serial_number) == result.json()["serial_number"]
    assert all(r.path.startswith("/.well-known/est/tray7/") for r in server.requests)
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_fingerprint_bootstrap_then_enroll(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    from est_hw.x509.trust import fingerprint

    server, _ = est_server()
    fp = fingerprint(server.ca.anchor)
    cacerts = cli("cacerts", "--server", server.url, "--ca-fingerprint", fp, "--json")
    assert cacerts.code == 0, cacerts.stderr
    assert fp in [c["fingerprint"] for c in cacerts.json()["certificates"]]
    result = cli("enroll", "--server", server.url, "--ca-fingerprint", fp,
                 "--token", softhsm_token.label, "--subject", "CN=boot-1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "issued"


@pytest.mark.parametrize("versions", [("1.2",), ("1.3",)])
def test_enroll_over_each_tls_version(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, versions: tuple[str, ...]
) -> None:
    server, ca_file = est_server(tls_versions=versions)
    result = cli(*_enroll_args(server.url, str(ca_file), softhsm_token))
    assert result.code == 0, result.stderr
    assert {r.tls_version for r in server.requests} == {f"TLSv{versions[0]}"}


def test_cacerts_pem_output(cli: Cli, est_server: StartServer) -> None:
    server, ca_file = est_server()
    result = cli("cacerts", "--server", server.url, "--ca-file", str(ca_file))
    assert result.code == 0, result.stderr
    certs = x509.load_pem_x509_certificates(result.stdout.encode())
    # PKCS#7 is a SET OF certificates: order carries no meaning on the wire.
    assert {c.public_bytes(Encoding.DER) for c in certs} == {
        c.public_bytes(Encoding.DER) for c in server.ca.chain
    }


def test_enroll_against_the_server_as_a_separate_process(
    cli: Cli, softhsm_token: SoftHsmToken, tmp_path: Path
) -> None:
    from est_hw.testing.process import start_server_process

    users = tmp_path / "users"
    users.write_text("line7:proc-pw\n")
    server = start_server_process(
        ["--auth", "digest", "--users-file", str(users), "--tls-version", "1.2"], tmp_path
    )
    try:
        args = _enroll_args(server.url, str(server.ca_file), softhsm_token, "--username", "line7")
        result = cli(*args, env={"EST_HW_PASSWORD": "proc-pw"})
    finally:
        assert server.stop() == 0
    assert result.code == 0, result.stderr
    assert result.json()["status"] == "issued"


def test_software_key_dir_for_development(
    cli: Cli, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    keys = tmp_path / "keys"
    result = cli("enroll", "--server", server.url, "--ca-file", str(ca_file), "--key-dir",
                 str(keys), "--subject", "CN=soft-1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    shown = cli("show", "--key-dir", str(keys), "--json").json()
    (key,) = shown["keys"]
    assert key["id"] == result.json()["key_id"]
    assert key["certificate"]["matches_key"] is True


def test_if_missing_enrolls_once(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    args = [*_enroll_args(server.url, str(ca_file), softhsm_token), "--if-missing"]
    first = cli(*args)
    assert first.code == 0, first.stderr
    assert first.json()["status"] == "issued"
    second = cli(*args)
    assert second.code == 0, second.stderr
    assert second.json()["status"] == "skipped"
    assert second.json()["serial_number"] == first.json()["serial_number"]
    assert len([r for r in server.requests if r.path.endswith("/simpleenroll")]) == 1
    private = [o for o in list_objects(softhsm_token) if o.kind.startswith("Private Key")]
    assert len(private) == 1

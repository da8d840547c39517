"""The same CLI with the key in a TPM 2.0 (swtpm): enroll, show, reenroll, rekey, key files,
a tray of 20 enrollments; tpm2-tools and openssl's tpm2 provider as independent witnesses."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key

from tests.e2e.conftest import Cli, CliResult, StartServer
from tests.tpm.conftest import Swtpm, nvread, readpublic, start_swtpm

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "swtpm"], capture_output=True, check=False).returncode != 0,
    reason="needs swtpm",
)


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    running = start_swtpm(tmp_path / "swtpm-state")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def tpm_cli(swtpm: Swtpm, tmp_path: Path) -> Cli:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EST_HW_")}
    env.update(TPM2TOOLS_TCTI=swtpm.tcti, TSS2_LOG="all+none")
    return Cli(env)


def _tpm(tmp_path: Path) -> list[str]:
    return ["--tpm", "--state-dir", str(tmp_path / "state")]


def _enroll(tpm_cli: Cli, url: str, ca: Path, tmp_path: Path, *extra: str) -> CliResult:
    result = tpm_cli("enroll", "--server", url, "--ca-file", str(ca), *_tpm(tmp_path),
                     "--subject", "CN=tpm-dev-1", "--san", "dns:tpm-dev-1.example",
                     "--json", *extra)  # fmt: skip
    assert result.code == 0, result.stderr
    return result


def _public_pem(swtpm: Swtpm, handle: int, tmp_path: Path) -> bytes:
    out = tmp_path / f"pub-{handle:x}.pem"
    swtpm.tool("tpm2_readpublic", "-c", f"0x{handle:08x}", "-f", "pem", "-o", str(out))
    return out.read_bytes()


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_enroll_reenroll_rekey_in_the_tpm(
    tpm_cli: Cli, swtpm: Swtpm, est_server: StartServer, tmp_path: Path, key_type: str, tls: str
) -> None:
    server, ca_file = est_server(tls_versions=(tls,))
    issued = tmp_path / "issued.pem"
    first = _enroll(tpm_cli, server.url, ca_file, tmp_path, "--key-type", key_type,
                    "--out", str(issued)).json()  # fmt: skip
    handle = int(first["key_id"], 16)
    assert swtpm.handles("persistent") == [handle]
    public = readpublic(swtpm, handle)
    for attribute in ("fixedtpm", "fixedparent", "sensitivedataorigin", "sign"):
        assert attribute in public["attributes"]
    assert "decrypt" not in public["attributes"]
    cert = x509.load_pem_x509_certificates(issued.read_bytes())[0]
    assert cert.public_key() == load_pem_public_key(_public_pem(swtpm, handle, tmp_path))
    der = cert.public_bytes(Encoding.DER)
    assert nvread(swtpm, 0x01000000 | (handle & 0xFFFFFF), len(der)) == der

    again = tpm_cli("reenroll", "--server", server.url, "--ca-file", str(ca_file),
                    *_tpm(tmp_path), "--json")  # fmt: skip
    assert again.code == 0, again.stderr
    assert again.json()["key_id"] == first["key_id"]
    assert again.json()["serial_number"] != first["serial_number"]
    (post,) = [r for r in server.requests if r.path.endswith("/simplereenroll")]
    assert post.peer_cert and post.tls_version == f"TLSv{tls}"

    rekeyed = tpm_cli("reenroll", "--server", server.url, "--ca-file", str(ca_file),
                      *_tpm(tmp_path), "--rekey", "--json")  # fmt: skip
    assert rekeyed.code == 0, rekeyed.stderr
    assert rekeyed.json()["rekeyed"] is True
    new_handle = int(rekeyed.json()["key_id"], 16)
    assert swtpm.handles("persistent") == [new_handle]
    assert new_handle != handle
    assert swtpm.handles("transient") == []


def test_key_file_loads_in_the_openssl_tpm2_provider(
    tpm_cli: Cli, swtpm: Swtpm, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    key_file = tmp_path / "device.key"
    out = tmp_path / "device.pem"
    result = _enroll(tpm_cli, server.url, ca_file, tmp_path, "--key-file", str(key_file),
                     "--out", str(out))  # fmt: skip
    assert key_file.read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY-----")
    assert swtpm.handles("persistent") == []
    pub = swtpm.tool("openssl", "pkey", "-provider", "tpm2", "-provider", "default",
                     "-in", str(key_file), "-pubout").stdout  # fmt: skip
    cert = x509.load_pem_x509_certificates(out.read_bytes())[0]
    assert load_pem_public_key(pub) == cert.public_key()
    shown = tpm_cli("show", *_tpm(tmp_path), "--key-file", str(key_file), "--json")
    assert shown.code == 0, shown.stderr
    (key,) = shown.json()["keys"]
    assert key["id"] == result.json()["key_id"]
    assert key["certificate"]["matches_key"] is True


def test_a_tray_of_20_enrollments_leaves_20_keys_and_no_transients(
    tpm_cli: Cli, swtpm: Swtpm, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    for number in range(20):
        result = tpm_cli("enroll", "--server", server.url, "--ca-file", str(ca_file),
                         *_tpm(tmp_path), "--subject", f"CN=tray-{number}",
                         "--no-csrattrs", "--channel-binding", "none", "--json")  # fmt: skip
        assert result.code == 0, result.stderr
    assert len(swtpm.handles("persistent")) == 20
    assert len(swtpm.handles("nv-index")) == 20
    assert swtpm.handles("transient") == []
    shown = tpm_cli("show", *_tpm(tmp_path), "--json").json()
    assert len(shown["keys"]) == 20
    assert all(k["certificate"]["matches_key"] for k in shown["keys"])
    assert {k["certificate"]["location"].split(":")[0] for k in shown["keys"]} == {"nv"}


def test_tpm_enroll_killed_then_rerun(
    tpm_cli: Cli, swtpm: Swtpm, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    args = ["enroll", "--server", server.url, "--ca-file", str(ca_file), *_tpm(tmp_path),
            "--subject", "CN=crash-tpm", "--json"]  # fmt: skip
    killed = tpm_cli(*args, env={"EST_HW_CRASH_AT": "after-keygen"})
    assert killed.code == -signal.SIGKILL
    again = tpm_cli(*args)
    assert again.code == 0, again.stderr
    assert again.json()["resumed"] is True
    assert swtpm.handles("persistent") == [int(again.json()["key_id"], 16)]
    assert swtpm.handles("transient") == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--handle", "0x81000100"], "need --tpm"),
        (["--tpm", "--handle", "129"], "0x"),
        (["--tpm", "--token", "x"], "cannot be combined"),
        (["--tpm", "--handle", "0x81000100", "--key-file", "k.pem"], "not both"),
    ],
)
def test_tpm_option_mistakes_are_usage_errors(
    tpm_cli: Cli, tmp_path: Path, args: list[str], needle: str
) -> None:
    result = tpm_cli("show", "--state-dir", str(tmp_path), *args)
    assert result.code == 2, result.stderr
    assert needle in result.stderr


def test_tpm_unreachable_is_a_token_error(tpm_cli: Cli, tmp_path: Path) -> None:
    result = tpm_cli("show", *_tpm(tmp_path), "--tcti", "swtpm:port=1", "--json")
    assert result.code == 4, result.stderr
    assert result.stderr.startswith("est-hw: error: ")


def test_serverkeygen_imports_the_key_into_the_tpm(
    tpm_cli: Cli, swtpm: Swtpm, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    out = tmp_path / "msk.pem"
    result = tpm_cli("serverkeygen", "--server", server.url, "--ca-file", str(ca_file),
                     *_tpm(tmp_path), "--subject", "CN=tpm-msk", "--out", str(out),
                     "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    handle = int(result.json()["key_id"], 16)
    assert swtpm.handles("persistent") == [handle]
    assert swtpm.handles("transient") == []
    cert = x509.load_pem_x509_certificates(out.read_bytes())[0]
    assert cert.public_key() == load_pem_public_key(_public_pem(swtpm, handle, tmp_path))


def test_pkcs11_settings_of_the_config_file_do_not_break_tpm_commands(
    tpm_cli: Cli, est_server: StartServer, tmp_path: Path
) -> None:
    """A shared config (docs/configuration.md) may hold a PKCS#11 module, token and PIN
    source for other commands and machines; --tpm uses the TPM and ignores them.  Given
    as flags, the same options still conflict with --tpm."""
    server, ca_file = est_server()
    config = tmp_path / "config.toml"
    config.write_text(
        "[common]\n"
        'module = "/usr/lib/softhsm/libsofthsm2.so"\n'
        'token = "line-7"\n'
        'pin_source = "env:EST_HW_PIN"\n'
    )
    result = tpm_cli("--config", str(config), "enroll", "--server", server.url,
                     "--ca-file", str(ca_file), *_tpm(tmp_path), "--subject", "CN=cfg",
                     "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["subject"] == "CN=cfg"
    shown = tpm_cli("--config", str(config), "show", *_tpm(tmp_path))
    assert shown.code == 0, shown.stderr
    assert "CN=cfg" in shown.stdout
    clash = tpm_cli("--config", str(config), "show", *_tpm(tmp_path), "--pin-source", "env:X")
    assert clash.code == 2
    assert "--tpm takes --key-auth-source, not --key-dir or --pin-source" in clash.stderr

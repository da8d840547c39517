"""/serverkeygen into the token and /fullcmc as a pass-through (RFC 7030 4.4, 4.3)."""

from __future__ import annotations

import base64
import os
import signal
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key, pkcs7

from est_hw.testing.config import Response
from est_hw.testing.keygen import build_full_pki_request, decrypt_key_id
from tests.conftest import SoftHsmToken
from tests.decrypt_key import DECRYPT_KEY_ID, make_decrypt_key
from tests.e2e.conftest import Cli, CliResult, StartServer
from tests.pkcs11_tool import list_objects, public_key_matches, read_object


def _keygen(
    cli: Cli, url: str, ca: Path, token: SoftHsmToken, *extra: str, **env: str
) -> CliResult:
    return cli("serverkeygen", "--server", url, "--ca-file", str(ca), "--token", token.label,
               "--subject", "CN=made-by-server", "--san", "dns:msk.example", "--json", *extra,
               env=env)  # fmt: skip


@pytest.mark.parametrize(
    ("config", "key_type"),
    [({}, "ec-p256"), ({"serverkeygen_rsa": True}, "rsa-2048"),
     ({"serverkeygen_pkcs1": True}, "rsa-2048")],
    ids=["ec-pkcs8", "rsa-pkcs8", "rsa-pkcs1-labelled-pkcs8"],
)  # fmt: skip
def test_server_generated_key_lands_in_the_token_non_extractable(
    cli: Cli,
    softhsm_token: SoftHsmToken,
    est_server: StartServer,
    config: dict[str, bool],
    key_type: str,
) -> None:
    server, ca_file = est_server(**config)
    result = _keygen(cli, server.url, ca_file, softhsm_token)
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["key_type"] == key_type
    objects = list_objects(softhsm_token)
    (private,) = [o for o in objects if o.kind.startswith("Private Key Object")]
    assert private.id == out["key_id"]
    assert "sensitive" in private.attrs["Access"].split(", ")
    assert "extractable" not in private.attrs["Access"].replace("never extractable", "")
    cert = x509.load_der_x509_certificate(read_object(softhsm_token, "cert", out["key_id"]))
    assert public_key_matches(softhsm_token, out["key_id"], cert.public_key())
    assert not [o for o in objects if o.kind.startswith("Data object")]


def test_key_out_only_when_asked_mode_0600_never_overwritten(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server()
    key_out = tmp_path / "copy.key"
    result = _keygen(cli, server.url, ca_file, softhsm_token, "--key-out", str(key_out))
    assert result.code == 0, result.stderr
    assert stat.S_IMODE(os.stat(key_out).st_mode) == 0o600
    copy = load_pem_private_key(key_out.read_bytes(), password=None)
    cert = x509.load_der_x509_certificate(
        read_object(softhsm_token, "cert", result.json()["key_id"])
    )
    assert copy.public_key() == cert.public_key()
    again = _keygen(cli, server.url, ca_file, softhsm_token, "--key-out", str(key_out),
                    "--key-label", "second")  # fmt: skip
    assert again.code == 2
    assert "never overwrites" in again.stderr


@pytest.mark.parametrize("point", ["before-send", "after-answer", "after-import"])
def test_serverkeygen_killed_then_rerun(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, point: str
) -> None:
    server, ca_file = est_server()
    killed = _keygen(cli, server.url, ca_file, softhsm_token, EST_HW_CRASH_AT=point)
    assert killed.code == -signal.SIGKILL
    again = _keygen(cli, server.url, ca_file, softhsm_token)
    assert again.code == 0, again.stderr
    objects = list_objects(softhsm_token)
    assert [o.id for o in objects if o.kind.startswith("Private Key Object")] == [
        again.json()["key_id"]
    ]
    assert not [o for o in objects if o.kind.startswith("Data object")]


def test_fullcmc_pass_through(cli: Cli, est_server: StartServer, tmp_path: Path) -> None:
    server, ca_file = est_server()
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=cmc-1"))
        .sign(key, hashes.SHA256())
    )
    request = tmp_path / "req.der"
    request.write_bytes(build_full_pki_request(csr, key))
    response = tmp_path / "resp.der"
    result = cli("fullcmc", "--server", server.url, "--ca-file", str(ca_file),
                 "--in", str(request), "--out", str(response), "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    certs = pkcs7.load_der_pkcs7_certificates(response.read_bytes())
    assert any(c.public_key() == key.public_key() for c in certs)
    assert result.json()["response_bytes"] == len(response.read_bytes())
    (post,) = [r for r in server.requests if r.path.endswith("/fullcmc")]
    assert post.headers["content-type"] == "application/pkcs7-mime; smime-type=CMC-request"

    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x01\x02 not a request")
    bad = cli("fullcmc", "--server", server.url, "--ca-file", str(ca_file),
              "--in", str(garbage), "--out", str(response), "--json")  # fmt: skip
    assert bad.code == 2
    assert bad.stderr.startswith("est-hw: error: ")


@pytest.mark.parametrize("signer", ["ca", "ca-not-included", "keygen-service"])
def test_cms_encrypted_key_is_decrypted_by_the_token_key(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, signer: str
) -> None:
    """Signed by the issuing CA (its certificate sent, or only known from the chain), or
    by a key generation service the CA certified (RFC 7030 4.4.2: "the party that
    generated the private key, which may or may not be the EST server or the EST CA")."""
    recipient = make_decrypt_key(softhsm_token, label="decrypt")
    key_parts: list[bytes] = []

    def spy(op: str, response: Response) -> Response:
        if op == "serverkeygen":
            key_parts.append(response.body)
        return response

    server, ca_file = est_server(
        serverkeygen_recipient=recipient, serverkeygen_signer=signer, response_hook=spy
    )
    result = _keygen(cli, server.url, ca_file, softhsm_token,
                     "--decrypt-key-uri", "pkcs11:object=decrypt")  # fmt: skip
    assert result.code == 0, result.stderr
    (post,) = [r for r in server.requests if r.path.endswith("/serverkeygen")]
    csr = x509.load_der_x509_csr(base64.b64decode(post.body))
    assert decrypt_key_id(csr) == DECRYPT_KEY_ID
    assert len(key_parts) == 1
    assert b"smime-type=server-generated-key" in key_parts[0]
    out = result.json()
    objects = list_objects(softhsm_token)
    privates = [o for o in objects if o.kind.startswith("Private Key Object")]
    assert sorted(o.id for o in privates) == sorted([out["key_id"], DECRYPT_KEY_ID.hex()])
    (private,) = [o for o in privates if o.id == out["key_id"]]
    assert "sensitive" in private.attrs["Access"].split(", ")
    cert = x509.load_der_x509_certificate(read_object(softhsm_token, "cert", out["key_id"]))
    assert public_key_matches(softhsm_token, out["key_id"], cert.public_key())


@pytest.mark.parametrize(
    ("signer", "message"),
    [("foreign", "the signer of the server-generated key (CN=foreign Issuing CA"),
     ("tampered", "the signature does not verify")],
)  # fmt: skip
def test_encrypted_key_signed_outside_the_pki_is_refused_and_not_kept(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, signer: str, message: str
) -> None:
    """RFC 7030 4.4.2: the SignedData around the key is signed by the party that made it;
    a signature that does not verify, or a signer that does not chain to the anchors, is
    a trust failure (exit 6) and the imported key is deleted again."""
    recipient = make_decrypt_key(softhsm_token, label="decrypt")
    server, ca_file = est_server(serverkeygen_recipient=recipient, serverkeygen_signer=signer)
    result = _keygen(cli, server.url, ca_file, softhsm_token,
                     "--decrypt-key-uri", "pkcs11:object=decrypt")  # fmt: skip
    assert result.code == 6, result.stderr
    assert message in result.json()["error"]
    objects = list_objects(softhsm_token)
    privates = [o for o in objects if o.kind.startswith("Private Key Object")]
    assert [o.id for o in privates] == [DECRYPT_KEY_ID.hex()]
    assert not [o for o in objects if o.kind.startswith(("Certificate Object", "Data object"))]


def test_encrypted_key_needs_an_rsa_decryption_key(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    result = _keygen(cli, server.url, ca_file, softhsm_token,
                     "--decrypt-key-uri", "pkcs11:object=nothing-here")  # fmt: skip
    assert result.code != 0
    assert "nothing-here" in result.stderr

"""est-hw csrattrs against the test server (RFC 7030 section 4.5)."""

from __future__ import annotations

from cryptography import x509

from est_hw.est.messages import CsrAttribute, encode_csrattrs, encode_oid_value
from est_hw.testing.wire import decode_base64_body
from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer

CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
SECP384R1 = "1.3.132.0.34"
ECDSA_WITH_SHA384 = "1.2.840.10045.4.3.3"


def test_csrattrs_decoded(cli: Cli, est_server: StartServer) -> None:
    body = encode_csrattrs(
        [
            CHALLENGE_PASSWORD,
            CsrAttribute(EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),)),
            ECDSA_WITH_SHA384,
            "2.999.1",  # unknown OIDs are kept and ignored
        ]
    )
    server, ca_file = est_server(csrattrs=body)
    result = cli("csrattrs", "--server", server.url, "--ca-file", str(ca_file), "--json")
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["challenge_password_requested"] is True
    assert out["key_type_hint"] == "ec-p384"
    assert out["signature_hash_hint"] == "sha384"
    assert "2.999.1" in out["oids"]
    assert out["attributes"] == [EC_PUBLIC_KEY]


def test_no_csrattrs_is_not_an_error(cli: Cli, est_server: StartServer) -> None:
    server, ca_file = est_server(csrattrs=None)
    result = cli("csrattrs", "--server", server.url, "--ca-file", str(ca_file), "--json")
    assert result.code == 0, result.stderr
    assert result.json()["oids"] == []
    assert result.json()["key_type_hint"] is None
    human = cli("csrattrs", "--server", server.url, "--ca-file", str(ca_file))
    assert "challenge_password_requested: False" in human.stdout


def test_enroll_follows_the_servers_csrattrs(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    body = encode_csrattrs(
        [CsrAttribute(EC_PUBLIC_KEY, (encode_oid_value(SECP384R1),)), ECDSA_WITH_SHA384]
    )
    server, ca_file = est_server(csrattrs=body)
    args = ["enroll", "--server", server.url, "--ca-file", str(ca_file),
            "--token", softhsm_token.label, "--json"]  # fmt: skip
    followed = cli(*args, "--subject", "CN=p384-1")
    assert followed.code == 0, followed.stderr
    assert followed.json()["key_type"] == "ec-p384"
    (post,) = [r for r in server.requests if r.path.endswith("/simpleenroll")]
    csr = x509.load_der_x509_csr(decode_base64_body(post.body))
    assert csr.signature_hash_algorithm is not None
    assert csr.signature_hash_algorithm.name == "sha384"

    explicit = cli(*args, "--subject", "CN=p256-1", "--key-type", "ec-p256")
    assert explicit.code == 0, explicit.stderr
    assert explicit.json()["key_type"] == "ec-p256"
    assert "keeping --key-type ec-p256" in explicit.stderr

    skipped = cli(*args, "--subject", "CN=plain-1", "--no-csrattrs", "--channel-binding", "none")
    assert skipped.code == 0, skipped.stderr
    assert skipped.json()["key_type"] == "ec-p256"
    assert len([r for r in server.requests if r.path.endswith("/csrattrs")]) == 2

"""est-hw csrattrs against the test server (RFC 7030 section 4.5)."""

from __future__ import annotations

from est_hw.est.messages import CsrAttribute, encode_csrattrs, encode_oid_value
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

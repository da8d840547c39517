"""Token-signed TLS client authentication: reenroll, rekey, renew, enrollment authenticated
by a bootstrap certificate, and channel binding (RFC 7030 3.3.2, 3.5, 4.2.2).

The token key signs the TLS handshake itself; pkcs11-tool checks the token afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from est_hw.est.messages import encode_csrattrs
from est_hw.keys.base import KeyType, Secret
from est_hw.keys.pkcs11 import TokenSelector, open_pkcs11
from est_hw.testing.config import Response
from est_hw.x509.names import serial_hex
from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, CliResult, StartServer
from tests.e2e.test_enroll_failures import _other_key_certificate, _snapshot
from tests.pkcs11_tool import list_objects, public_key_matches, read_object
from tests.pki import make_ca, make_leaf

CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"


def _server_args(server_url: str, ca_file: Path) -> list[str]:
    return ["--server", server_url, "--ca-file", str(ca_file)]


def _enroll(cli: Cli, url: str, ca_file: Path, token: SoftHsmToken, *extra: str) -> CliResult:
    result = cli("enroll", *_server_args(url, ca_file), "--token", token.label,
                 "--subject", "CN=dev-7,O=Fleet", "--san", "dns:dev-7.example",
                 "--json", *extra)  # fmt: skip
    assert result.code == 0, result.stderr
    return result


def _private_keys(token: SoftHsmToken) -> list[str]:
    return [o.id for o in list_objects(token) if o.kind.startswith("Private Key Object")]


def _leaf_certs(token: SoftHsmToken, key_ids: list[str]) -> list[x509.Certificate]:
    return [
        x509.load_der_x509_certificate(read_object(token, "cert", o.id))
        for o in list_objects(token)
        if o.kind.startswith("Certificate Object") and o.id in key_ids
    ]


@pytest.mark.parametrize("key_type", ["ec-p256", "rsa-2048"])
@pytest.mark.parametrize("tls", ["1.2", "1.3"])
def test_reenroll_with_the_token_key_signing_tls(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, key_type: str, tls: str
) -> None:
    server, ca_file = est_server(tls_versions=(tls,), require_client_cert=False)
    first = _enroll(cli, server.url, ca_file, softhsm_token, "--key-type", key_type).json()
    result = cli("reenroll", *_server_args(server.url, ca_file), "--token",
                 softhsm_token.label, "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["status"] == "issued"
    assert out["key_id"] == first["key_id"]
    assert out["previous_serial_number"] == first["serial_number"]
    assert out["serial_number"] != first["serial_number"]
    assert out["rekeyed"] is False
    assert out["subject"] == first["subject"]

    (reenroll_request,) = [r for r in server.requests if r.path.endswith("/simplereenroll")]
    assert reenroll_request.status == 200
    assert reenroll_request.peer_cert is True
    assert reenroll_request.tls_version == f"TLSv{tls}"

    # Exactly one key, still sensitive, and only the new certificate beside it.
    assert _private_keys(softhsm_token) == [first["key_id"]]
    (private,) = [o for o in list_objects(softhsm_token) if o.kind.startswith("Private Key")]
    assert "never extractable" in private.attrs["Access"]
    (leaf,) = _leaf_certs(softhsm_token, [first["key_id"]])
    assert serial_hex(leaf.serial_number) == out["serial_number"]
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["dev-7.example"]
    assert public_key_matches(softhsm_token, first["key_id"], leaf.public_key())


def test_rekey_replaces_key_and_certificate_only_after_storing(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    first = _enroll(cli, server.url, ca_file, softhsm_token).json()
    result = cli("reenroll", *_server_args(server.url, ca_file), "--token",
                 softhsm_token.label, "--rekey", "--key-type", "ec-p384", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    out = result.json()
    assert out["rekeyed"] is True
    assert out["key_id"] != first["key_id"]
    assert out["key_type"] == "ec-p384"
    assert out["key_label"] == first["key_label"]
    assert _private_keys(softhsm_token) == [out["key_id"]]
    (leaf,) = _leaf_certs(softhsm_token, [out["key_id"], first["key_id"]])
    assert public_key_matches(softhsm_token, out["key_id"], leaf.public_key())


@pytest.mark.parametrize("rekey", [False, True])
def test_failed_reenroll_keeps_the_old_key_and_certificate_usable(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, rekey: bool
) -> None:
    holder: dict[str, object] = {"bad": True}

    def hook(operation: str, response: Response) -> Response:
        if operation != "simplereenroll" or not holder["bad"]:
            return response
        return Response(200, _other_key_certificate(holder["ca"]), list(response.headers))

    server, ca_file = est_server(response_hook=hook)
    holder["ca"] = server.ca
    _enroll(cli, server.url, ca_file, softhsm_token)
    before = _snapshot(softhsm_token)
    args = ["reenroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
            "--json", *(["--rekey"] if rekey else [])]  # fmt: skip
    failed = cli(*args)
    assert failed.code == 6, failed.stderr
    assert "token key" in failed.stderr
    assert _snapshot(softhsm_token) == before
    holder["bad"] = False
    again = cli(*args)  # the old key and certificate still authenticate TLS
    assert again.code == 0, again.stderr


def test_enroll_authenticated_by_a_bootstrap_certificate(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    manufacturer = make_ca("Manufacturer CA")
    with open_pkcs11(
        TokenSelector(module=softhsm_token.module, token_label=softhsm_token.label),
        Secret(softhsm_token.pin),
    ) as backend:
        idevid = backend.generate_key(KeyType.EC_P256, "idevid")
        public = idevid.public_key()
        assert isinstance(public, type(manufacturer.key.public_key()))
        backend.store_certificate(
            idevid, make_leaf(manufacturer, public, "serial-0042"), [manufacturer.cert]
        )
    server, ca_file = est_server(require_client_cert=True, client_ca_certs=(manufacturer.cert,))

    without = cli("enroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                  "--subject", "CN=ldevid-1", "--json")  # fmt: skip
    assert without.code == 5, without.stderr
    assert _private_keys(softhsm_token) == [idevid.key_id.hex()]

    result = cli("enroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                 "--tls-key-uri", "pkcs11:object=idevid", "--key-label", "ldevid",
                 "--subject", "CN=ldevid-1", "--json")  # fmt: skip
    assert result.code == 0, result.stderr
    (request,) = [r for r in server.requests if r.path.endswith("/simpleenroll")]
    assert request.peer_cert is True
    assert sorted(_private_keys(softhsm_token)) == sorted(
        [idevid.key_id.hex(), result.json()["key_id"]]
    )


@pytest.mark.parametrize(
    ("csrattrs", "binding_args"),
    [
        (encode_csrattrs([CHALLENGE_PASSWORD]), []),  # auto: the server asks for it
        (None, ["--channel-binding", "tls-unique"]),  # explicit
    ],
)
def test_tls_unique_enforced_by_the_server_is_accepted(
    cli: Cli,
    softhsm_token: SoftHsmToken,
    est_server: StartServer,
    csrattrs: bytes | None,
    binding_args: list[str],
) -> None:
    server, ca_file = est_server(tls_versions=("1.2",), enforce_tls_unique=True, csrattrs=csrattrs)
    first = _enroll(cli, server.url, ca_file, softhsm_token, *binding_args).json()
    assert first["status"] == "issued"
    again = cli("reenroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                "--json", *binding_args)  # fmt: skip
    assert again.code == 0, again.stderr
    enrolls = [r for r in server.requests if r.method == "POST"]
    assert [r.status for r in enrolls] == [200, 200]
    # the CSR went over the connection whose tls-unique it carries
    for post in enrolls:
        (attrs,) = [r for r in server.requests if r.path.endswith("/csrattrs")
                    and r.connection == post.connection]  # fmt: skip
        assert attrs.status in (200, 204)


@pytest.mark.parametrize(
    ("binding", "needle"),
    [("none", "no challengePassword"), ("tls-exporter", "does not match tls-unique")],
)
def test_a_wrong_binding_is_refused_by_the_server_and_reported(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, binding: str, needle: str
) -> None:
    server, ca_file = est_server(tls_versions=("1.2",), enforce_tls_unique=True)
    before = _snapshot(softhsm_token)
    result = cli("enroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                 "--subject", "CN=x", "--channel-binding", binding, "--json")  # fmt: skip
    assert result.code == 5, result.stderr
    assert "HTTP 400" in result.stderr
    assert needle in result.stderr
    assert _snapshot(softhsm_token) == before


def test_tls_unique_does_not_exist_in_tls13(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(tls_versions=("1.3",))
    before = _snapshot(softhsm_token)
    result = cli("enroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                 "--subject", "CN=x", "--channel-binding", "tls-unique", "--json")  # fmt: skip
    assert result.code == 5
    assert "tls-unique is not available" in result.stderr
    assert _snapshot(softhsm_token) == before


def test_tls_exporter_at_tls13_goes_into_the_csr(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(tls_versions=("1.3",))
    result = _enroll(cli, server.url, ca_file, softhsm_token, "--channel-binding", "tls-exporter")
    assert result.json()["status"] == "issued"
    (post,) = [r for r in server.requests if r.method == "POST"]
    from est_hw.testing.wire import decode_base64_body

    csr = x509.load_der_x509_csr(decode_base64_body(post.body))
    password = csr.attributes.get_attribute_for_oid(x509.oid.AttributeOID.CHALLENGE_PASSWORD)
    assert len(password.value) == 44  # base64 of the 32-byte RFC 9266 exporter


def test_reenroll_never_sends_the_client_certificate_to_an_untrusted_server(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    server, ca_file = est_server()
    _enroll(cli, server.url, ca_file, softhsm_token)
    seen = len(server.requests)
    stranger = tmp_path / "stranger.pem"
    stranger.write_bytes(make_ca("Stranger").cert.public_bytes(Encoding.PEM))
    result = cli("reenroll", *_server_args(server.url, stranger), "--token",
                 softhsm_token.label, "--json")  # fmt: skip
    assert result.code == 6
    assert len(server.requests) == seen


def test_reenroll_needs_one_named_key_when_several(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server()
    _enroll(cli, server.url, ca_file, softhsm_token, "--key-label", "a")
    _enroll(cli, server.url, ca_file, softhsm_token, "--key-label", "b")
    result = cli("reenroll", *_server_args(server.url, ca_file), "--token",
                 softhsm_token.label, "--json")  # fmt: skip
    assert result.code == 4
    assert "--key-label" in result.stderr
    named = cli("reenroll", *_server_args(server.url, ca_file), "--token", softhsm_token.label,
                "--key-label", "b", "--json")  # fmt: skip
    assert named.code == 0, named.stderr
    assert named.json()["key_label"] == "b"


def test_renew_only_when_due(
    cli: Cli, softhsm_token: SoftHsmToken, est_server: StartServer
) -> None:
    server, ca_file = est_server(cert_days=90)
    first = _enroll(cli, server.url, ca_file, softhsm_token).json()
    base = ["renew", *_server_args(server.url, ca_file), "--token", softhsm_token.label, "--json"]

    not_due = cli(*base)  # default: the last third of the lifetime
    assert not_due.code == 0, not_due.stderr
    assert not_due.json()["status"] == "not_due"
    assert not_due.json()["not_after"] == first["not_after"]
    assert cli(*base, "--before", "30d").json()["status"] == "not_due"
    assert cli(*base, "--before", "25%").json()["status"] == "not_due"
    assert not [r for r in server.requests if r.path.endswith("/simplereenroll")]

    renewed = cli(*base, "--before", "91d", "--jitter", "1s")
    assert renewed.code == 0, renewed.stderr
    out = renewed.json()
    assert out["status"] == "renewed"
    assert out["previous_serial_number"] == first["serial_number"]
    assert out["key_id"] == first["key_id"]
    assert cli(*base, "--before", "100%").json()["status"] == "renewed"


@pytest.mark.parametrize(
    ("before", "match"), [("30", "--before"), ("0%", "--before"), ("1y", "--before")]
)
def test_renew_bad_window_is_a_usage_error(
    cli: Cli, softhsm_token: SoftHsmToken, before: str, match: str
) -> None:
    result = cli("renew", "--server", "https://127.0.0.1:1", "--ca-file", "/nonexistent",
                 "--token", softhsm_token.label, "--before", before)  # fmt: skip
    assert result.code == 2
    assert match in result.stderr

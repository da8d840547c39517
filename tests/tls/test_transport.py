"""TokenTlsTransport through httpx against real TLS servers on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_hw.errors import (
    ConnectionFailedError,
    DeadlineExceededError,
    ProtocolError,
    TlsHandshakeError,
    TrustError,
)
from est_hw.tls import TlsSettings, TokenTlsTransport
from tests.tls.conftest import requires_gnutls, requires_openssl
from tests.tls.keys import TokenLikeEcKey, TokenLikeRsaKey
from tests.tls.pki import Issued, Pki
from tests.tls.servers import PythonTlsServer, free_port, gnutls_serv, s_server

MakeSettings = Callable[..., TlsSettings]
VERSIONS = ["1.2", "1.3"]
VERSION_NAMES = {"1.2": "TLSv1.2", "1.3": "TLSv1.3"}


def get(settings: TlsSettings, url: str, **kwargs: Any) -> httpx.Response:
    with httpx.Client(transport=TokenTlsTransport(settings, **kwargs)) as client:
        return client.get(url)


def stream_info(response: httpx.Response, name: str) -> object:
    return response.extensions["network_stream"].get_extra_info(name)


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --- plain GETs -----------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("server_key", ["ec", "rsa"])
def test_get_from_python_ssl(
    pki: Pki, make_settings: MakeSettings, version: str, server_key: str
) -> None:
    issued: Issued = pki.server_ec if server_key == "ec" else pki.server_rsa
    with PythonTlsServer(issued.chain_path, issued.key_path, version=version) as server:
        response = get(make_settings(version), server.url)
    assert response.status_code == 200
    assert response.text == f"hello from python ssl {VERSION_NAMES[version]}"
    assert stream_info(response, "tls_version") == VERSION_NAMES[version]
    assert stream_info(response, "server_chain") == list(issued.chain)
    assert stream_info(response, "ssl_object").selected_alpn_protocol() == "http/1.1"  # type: ignore[attr-defined]
    assert server.seen[0].version == VERSION_NAMES[version]


@requires_openssl
@pytest.mark.parametrize("version", VERSIONS)
def test_get_from_openssl_s_server(
    pki: Pki, make_settings: MakeSettings, log: Path, version: str
) -> None:
    flag = "-tls1_2" if version == "1.2" else "-tls1_3"
    with s_server(pki.server_rsa, log, flag) as server:
        response = get(make_settings(), server.url)
    assert response.status_code == 200
    assert f"New, {VERSION_NAMES[version]}, Cipher is" in response.text
    assert stream_info(response, "tls_version") == VERSION_NAMES[version]


@requires_gnutls
@pytest.mark.parametrize("version", VERSIONS)
def test_get_from_gnutls_serv(
    pki: Pki, make_settings: MakeSettings, log: Path, version: str
) -> None:
    priority = f"NORMAL:-VERS-ALL:+VERS-TLS{version}"
    with gnutls_serv(pki.server_ec, log, f"--priority={priority}") as server:
        response = get(make_settings(), server.url)
    assert response.status_code == 200
    assert "GnuTLS" in response.text
    assert stream_info(response, "tls_version") == VERSION_NAMES[version]


def test_ip_address_host(pki: Pki, make_settings: MakeSettings) -> None:
    with PythonTlsServer(pki.server_ec.chain_path, pki.server_ec.key_path) as server:
        response = get(make_settings(), f"https://127.0.0.1:{server.port}/")
    assert response.status_code == 200


@pytest.mark.parametrize("version", VERSIONS)
def test_connection_is_kept_alive_and_bindings_stay(
    pki: Pki, make_settings: MakeSettings, version: str
) -> None:
    """RFC 7030 section 3.5: read the binding, then send the CSR on the same connection."""
    issued = pki.server_ec
    with (
        PythonTlsServer(issued.chain_path, issued.key_path, version=version) as server,
        httpx.Client(transport=TokenTlsTransport(make_settings())) as client,
    ):
        first = client.get(server.url)
        time.sleep(0.05)  # TLS 1.3 session tickets have arrived by now
        second = client.post(server.url, content=b"csr")
    assert first.extensions["network_stream"] is second.extensions["network_stream"]
    assert stream_info(first, "tls_exporter") == stream_info(second, "tls_exporter")
    assert len(server.seen) == 1
    assert len(server.seen[0].requests) == 2


# --- server authentication ------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_untrusted_chain_is_refused_before_any_request(
    pki: Pki, make_settings: MakeSettings, version: str
) -> None:
    issued = pki.server_untrusted
    with PythonTlsServer(issued.chain_path, issued.key_path, version=version) as server:
        with pytest.raises(TrustError, match="untrusted"):
            get(make_settings(version), server.url)
        deadline = time.monotonic() + 2
        while server.seen[0].error is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert server.seen[0].requests == []
    assert "ALERT_BAD_CERTIFICATE" in (server.seen[0].error or "")  # our alert


@pytest.mark.parametrize(
    ("which", "refusal"),
    [("server_other_name", "does not match 'localhost'"), ("server_expired", "expired")],
    ids=["wrong_hostname", "expired_certificate"],
)
def test_bad_server_certificate_is_refused(
    pki: Pki, make_settings: MakeSettings, which: str, refusal: str
) -> None:
    issued: Issued = getattr(pki, which)
    with (
        PythonTlsServer(issued.chain_path, issued.key_path) as server,
        pytest.raises(TrustError, match=refusal),
    ):
        get(make_settings(), server.url)


def test_trust_error_is_not_wrapped_by_httpx(pki: Pki, make_settings: MakeSettings) -> None:
    issued = pki.server_untrusted
    with (
        PythonTlsServer(issued.chain_path, issued.key_path) as server,
        httpx.Client(transport=TokenTlsTransport(make_settings())) as client,
    ):
        request = client.build_request("GET", server.url)
        with pytest.raises(TrustError) as caught:
            client.send(request)
    assert type(caught.value) is TrustError


@pytest.mark.parametrize("which", ["server_untrusted", "server_expired", "server_other_name"])
def test_verify_false_connects_to_anything(
    pki: Pki, make_settings: MakeSettings, which: str
) -> None:
    issued: Issued = getattr(pki, which)
    with PythonTlsServer(issued.chain_path, issued.key_path) as server:
        response = get(make_settings(verify=False), server.url)
    assert response.status_code == 200
    assert stream_info(response, "server_chain") == list(issued.chain)


# --- client authentication ------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_client_certificate_python_ssl(
    pki: Pki, make_settings: MakeSettings, version: str, kind: str
) -> None:
    client: Issued = pki.client_ec if kind == "ec" else pki.client_rsa
    settings = make_settings(version, client=client)
    issued = pki.server_ec
    with PythonTlsServer(
        issued.chain_path, issued.key_path, version=version, client_ca=pki.root_path
    ) as server:
        response = get(settings, server.url)
    assert response.status_code == 200
    assert server.seen[0].peer_cert_der == client.cert.public_bytes(serialization.Encoding.DER)
    assert settings.client is not None
    key = settings.client.private_key
    assert isinstance(key, TokenLikeEcKey | TokenLikeRsaKey)
    assert len(key.signed) == 1  # one CertificateVerify, signed by the "token"
    if isinstance(key, TokenLikeRsaKey):
        assert key.signed[0][1] == ("EMSA-PKCS1-v1_5" if version == "1.2" else "EMSA-PSS")


@requires_openssl
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_client_certificate_openssl_s_server(
    pki: Pki, make_settings: MakeSettings, log: Path, version: str, kind: str
) -> None:
    client: Issued = pki.client_ec if kind == "ec" else pki.client_rsa
    flag = "-tls1_2" if version == "1.2" else "-tls1_3"
    args = (flag, "-Verify", "1", "-CAfile", str(pki.root_path))
    with s_server(pki.server_ec, log, *args) as server:
        response = get(make_settings(version, client=client), server.url)
    assert response.status_code == 200
    assert "Client certificate" in response.text
    assert pem(client.cert) in response.text.split("Client certificate", 1)[1]
    assert "verify return:1" in server.output()


@requires_gnutls
@pytest.mark.parametrize("version", VERSIONS)
def test_client_certificate_gnutls_serv(
    pki: Pki, make_settings: MakeSettings, log: Path, version: str
) -> None:
    args = (
        f"--priority=NORMAL:-VERS-ALL:+VERS-TLS{version}",
        "--require-client-cert",
        "--verify-client-cert",
        f"--x509cafile={pki.root_path}",
    )
    with gnutls_serv(pki.server_rsa, log, *args) as server:
        response = get(make_settings(version, client=pki.client_ec), server.url)
    assert response.status_code == 200
    assert "client-ec" in response.text


@pytest.mark.parametrize("version", VERSIONS)
def test_server_requiring_a_certificate_refuses_us_without_one(
    pki: Pki, make_settings: MakeSettings, version: str
) -> None:
    issued = pki.server_ec
    with (
        PythonTlsServer(
            issued.chain_path, issued.key_path, version=version, client_ca=pki.root_path
        ) as server,
        pytest.raises(ConnectionFailedError) as caught,
    ):
        get(make_settings(version), server.url)
    if version == "1.2":  # the alert ends the handshake; at 1.3 it arrives after it
        assert isinstance(caught.value, TlsHandshakeError)
        assert caught.value.alert is not None


# --- channel bindings -----------------------------------------------------------------


def test_tls_unique_matches_the_server_at_tls12(pki: Pki, make_settings: MakeSettings) -> None:
    issued = pki.server_ec
    with PythonTlsServer(issued.chain_path, issued.key_path, version="1.2") as server:
        response = get(make_settings("1.2", client=pki.client_ec), server.url)
    unique = stream_info(response, "tls_unique")
    assert isinstance(unique, bytes)
    assert len(unique) == 12
    assert unique == server.seen[0].tls_unique


def test_tls13_has_no_tls_unique_but_an_exporter(pki: Pki, make_settings: MakeSettings) -> None:
    issued = pki.server_ec
    with PythonTlsServer(issued.chain_path, issued.key_path, version="1.3") as server:
        response = get(make_settings("1.3"), server.url)
    assert stream_info(response, "tls_unique") is None
    exporter = stream_info(response, "tls_exporter")
    assert isinstance(exporter, bytes)
    assert len(exporter) == 32


# --- limits ---------------------------------------------------------------------------


@pytest.mark.slow
def test_slow_drip_hits_the_overall_deadline(pki: Pki, make_settings: MakeSettings) -> None:
    issued = pki.server_ec
    with PythonTlsServer(issued.chain_path, issued.key_path, mode="drip") as server:
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError):
            get(make_settings(), server.url, timeout=1.0)
        elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.0


@pytest.mark.slow
def test_silent_server_hits_the_deadline_during_the_handshake(make_settings: MakeSettings) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(DeadlineExceededError, match="handshake"):
            get(make_settings(), f"https://localhost:{port}/", timeout=0.5)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("mode", ["big", "big-chunked"])
def test_oversized_answer_is_refused(pki: Pki, make_settings: MakeSettings, mode: str) -> None:
    issued = pki.server_ec
    with (
        PythonTlsServer(issued.chain_path, issued.key_path, mode=mode, big_size=1 << 20) as server,
        pytest.raises(ProtocolError, match="too large"),
    ):
        get(make_settings(), server.url, max_response_bytes=64 * 1024)


def test_http_is_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ProtocolError, match="https only"):
        get(make_settings(), f"http://127.0.0.1:{free_port()}/")


def test_connection_refused(make_settings: MakeSettings) -> None:
    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        get(make_settings(), f"https://127.0.0.1:{free_port()}/")

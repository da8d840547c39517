"""Channel binding: challengePassword = base64(tls-unique) (RFC 7030 3.5)."""

from __future__ import annotations

import base64
import ssl

from .conftest import StartServer
from .helpers import PKCS10, call, connect, csr_body, make_csr, request

TLS12 = {"minimum": ssl.TLSVersion.TLSv1_2, "maximum": ssl.TLSVersion.TLSv1_2}


def test_matching_tls_unique_is_accepted(start_server: StartServer) -> None:
    server = start_server(enforce_tls_unique=True)
    conn = connect(server, **TLS12)
    try:
        conn.connect()
        assert isinstance(conn.sock, ssl.SSLSocket)
        binding = conn.sock.get_channel_binding("tls-unique")
        assert binding
        csr, _ = make_csr(challenge=base64.b64encode(binding))
        answer = call(conn, "POST", server.est_path + "simpleenroll", csr_body(csr), PKCS10)
        assert answer.status == 200, answer.body
    finally:
        conn.close()


def test_wrong_or_missing_tls_unique_is_refused(start_server: StartServer) -> None:
    server = start_server(enforce_tls_unique=True)
    stale, _ = make_csr(challenge=base64.b64encode(b"\0" * 12))
    answer = request(server, "POST", "simpleenroll", csr_body(stale), PKCS10, **TLS12)
    assert answer.status == 400
    assert b"tls-unique" in answer.body
    bare, _ = make_csr()
    answer = request(server, "POST", "simpleenroll", csr_body(bare), PKCS10, **TLS12)
    assert answer.status == 400
    assert b"challengePassword" in answer.body


def test_tls_unique_from_another_connection_is_refused(start_server: StartServer) -> None:
    server = start_server(enforce_tls_unique=True)
    first = connect(server, **TLS12)
    first.connect()
    assert isinstance(first.sock, ssl.SSLSocket)
    binding = first.sock.get_channel_binding("tls-unique")
    first.close()
    assert binding
    csr, _ = make_csr(challenge=base64.b64encode(binding))
    answer = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10, **TLS12)
    assert answer.status == 400


def test_tls13_has_no_tls_unique(start_server: StartServer) -> None:
    server = start_server(enforce_tls_unique=True, tls_versions=("1.3",))
    csr, _ = make_csr(challenge=b"anything")
    answer = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10)
    assert answer.status == 400
    assert b"TLS 1.2" in answer.body


def test_challenge_password_is_ignored_when_not_enforced(start_server: StartServer) -> None:
    server = start_server()
    csr, _ = make_csr(challenge=b"whatever")
    assert request(server, "POST", "simpleenroll", csr_body(csr), PKCS10).status == 200

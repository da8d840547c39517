"""The RFC 7030 test server, driven over real TLS by the stdlib's http.client."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from est_hw.testing import EstTestServer, ServerConfig, TestCa

from .conftest import StartServer
from .helpers import (
    PKCS10,
    b64,
    call,
    client_cert_files,
    connect,
    csr_body,
    make_csr,
    request,
    verify_issued,
    wait_for,
)


def _certs(body: bytes) -> list[x509.Certificate]:
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(b"".join(body.split())))


# --- /cacerts (RFC 7030 4.1) ---------------------------------------------------------------


def test_cacerts_returns_the_chain_as_base64_certs_only(server: EstTestServer) -> None:
    answer = request(server, "GET", "cacerts")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/pkcs7-mime"
    assert answer.headers["Content-Transfer-Encoding"] == "base64"
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    lines = answer.body.split(b"\n")
    assert lines[-1] == b""
    assert all(len(line) <= 64 for line in lines)
    # certificates is a DER SET OF: sorted by encoding, so the order carries no meaning
    certs = _certs(answer.body)
    assert len(certs) == 2
    assert set(certs) == set(server.ca.chain)
    record = server.requests[-1]
    assert (record.method, record.path, record.status) == ("GET", server.est_path + "cacerts", 200)
    assert record.tls_version in ("TLSv1.2", "TLSv1.3")
    assert not record.peer_cert


# --- /simpleenroll (RFC 7030 4.2.1, 4.2.3) ----------------------------------------------


def test_simpleenroll_issues_a_certificate_chaining_to_the_anchor(server: EstTestServer) -> None:
    csr, key = make_csr("device-1", san=["device-1.example"])
    answer = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10)
    assert answer.status == 200, answer.body
    assert answer.headers["Content-Type"] == "application/pkcs7-mime; smime-type=certs-only"
    assert answer.headers["Content-Transfer-Encoding"] == "base64"
    assert all(len(line) <= 64 for line in answer.body.split(b"\n"))
    certs = _certs(answer.body)
    assert len(certs) == 1  # 4.2.3: only the certificate that was issued
    cert = certs[0]
    assert cert.public_key() == key.public_key()
    assert cert.subject == csr.subject
    verify_issued(server.ca, cert)
    record = server.requests[-1]
    assert record.headers["content-type"] == "application/pkcs10"
    assert record.headers["content-transfer-encoding"] == "base64"
    assert record.body == csr_body(csr)


@pytest.mark.parametrize(
    "layout",
    [
        pytest.param(lambda der: b64(der, 0), id="one-line"),
        pytest.param(lambda der: b64(der, 76, b"\r\n"), id="crlf-76"),
        pytest.param(lambda der: b"  " + b64(der, 10, b" \n\t"), id="ragged"),
    ],
)
def test_simpleenroll_accepts_any_base64_layout(server: EstTestServer, layout: object) -> None:
    csr, _ = make_csr()
    body = layout(csr.public_bytes(serialization.Encoding.DER))  # type: ignore[operator]
    answer = request(server, "POST", "simpleenroll", body, PKCS10)
    assert answer.status == 200, answer.body


def test_simpleenroll_refuses_a_wrong_content_type(server: EstTestServer) -> None:
    csr, _ = make_csr()
    answer = request(
        server, "POST", "simpleenroll", csr_body(csr), {"Content-Type": "application/pkcs7-mime"}
    )
    assert answer.status == 415
    assert answer.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not base64 at all!", b"base64"),
        (b"", b"empty"),
        (base64.b64encode(b"\x30\x03\x02\x01\x01"), b"PKCS#10"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n", b"base64"),
    ],
)
def test_simpleenroll_refuses_malformed_bodies(
    server: EstTestServer, body: bytes, reason: bytes
) -> None:
    answer = request(server, "POST", "simpleenroll", body, PKCS10)
    assert answer.status == 400
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert reason in answer.body


def test_simpleenroll_refuses_a_bad_csr_signature(server: EstTestServer) -> None:
    csr, _ = make_csr("device-1")
    der = csr.public_bytes(serialization.Encoding.DER)
    tampered = der.replace(b"device-1", b"device-2")
    assert tampered != der
    answer = request(server, "POST", "simpleenroll", b64(tampered), PKCS10)
    assert answer.status == 400
    assert b"signature" in answer.body


def test_chunked_bodies_are_refused(server: EstTestServer) -> None:
    csr, _ = make_csr()
    conn = connect(server)
    try:
        conn.putrequest("POST", server.est_path + "simpleenroll")
        conn.putheader("Content-Type", "application/pkcs10")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        body = csr_body(csr)
        conn.send(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        resp = conn.getresponse()
        assert resp.status == 411
        assert resp.getheader("Connection") == "close"
    finally:
        conn.close()


def test_http11_requests_need_a_host_header(server: EstTestServer) -> None:
    conn = connect(server)
    try:
        conn.putrequest("GET", server.est_path + "cacerts", skip_host=True)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 400
        assert b"Host" in resp.read()
    finally:
        conn.close()


def test_config_repr_hides_passwords() -> None:
    assert "s3cret" not in repr(ServerConfig(auth="basic", users={"u": "s3cret"}))


# --- paths and methods (RFC 7030 3.2.2) ----------------------------------------------------


def test_unknown_path_and_wrong_method(server: EstTestServer) -> None:
    conn = connect(server)
    try:
        assert call(conn, "GET", "/.well-known/est/nothing").status == 404
        assert call(conn, "GET", "/").status == 404
        assert call(conn, "GET", "/.well-known/est/simpleenroll/").status == 404
        wrong = call(conn, "POST", "/.well-known/est/cacerts", b"x", PKCS10)
        assert wrong.status == 405
        assert wrong.headers["Allow"] == "GET"
        wrong = call(conn, "GET", "/.well-known/est/simpleenroll")
        assert (wrong.status, wrong.headers["Allow"]) == (405, "POST")
        assert call(conn, "GET", "/.well-known/est/cacerts").status == 200  # keep-alive intact
    finally:
        conn.close()
    assert len({r.connection for r in server.requests}) == 1


def test_label_paths(start_server: StartServer) -> None:
    server = start_server(label="arbitraryLabel1")
    assert server.est_path == "/.well-known/est/arbitraryLabel1/"
    assert server.endpoint("cacerts").endswith("/.well-known/est/arbitraryLabel1/cacerts")
    conn = connect(server)
    try:
        assert call(conn, "GET", "/.well-known/est/arbitraryLabel1/cacerts").status == 200
        assert call(conn, "GET", "/.well-known/est/cacerts").status == 404
        assert call(conn, "GET", "/.well-known/est/otherLabel/cacerts").status == 404
        csr, _ = make_csr()
        enrolled = call(conn, "POST", server.est_path + "simpleenroll", csr_body(csr), PKCS10)
        assert enrolled.status == 200
    finally:
        conn.close()


# --- /csrattrs (RFC 7030 4.5) ------------------------------------------------------------

# CsrAttrs ::= SEQUENCE { challengePassword OID, ecPublicKey attribute { secp384r1 } }
CSRATTRS = bytes.fromhex(
    "3022"
    "06092a864886f70d010907"
    "3015" "06072a8648ce3d0201" "310a" "06082b81040022"
)  # fmt: skip


def test_csrattrs_204_without_attributes(server: EstTestServer) -> None:
    answer = request(server, "GET", "csrattrs")
    assert answer.status == 204
    assert answer.body == b""
    assert answer.headers["Content-Length"] is None


def test_csrattrs_200_with_attributes(start_server: StartServer) -> None:
    server = start_server(csrattrs=CSRATTRS)
    answer = request(server, "GET", "csrattrs")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/csrattrs"
    assert answer.headers["Content-Transfer-Encoding"] == "base64"
    assert base64.b64decode(answer.body) == CSRATTRS


# --- pending (RFC 7030 4.2.3) ------------------------------------------------------------


def test_pending_then_issued(start_server: StartServer) -> None:
    server = start_server(pending=2, retry_after=7)
    csr, _ = make_csr()
    conn = connect(server)
    try:
        for _ in range(2):
            answer = call(conn, "POST", server.est_path + "simpleenroll", csr_body(csr), PKCS10)
            assert answer.status == 202
            assert answer.headers["Retry-After"] == "7"
        answer = call(conn, "POST", server.est_path + "simpleenroll", csr_body(csr), PKCS10)
        assert answer.status == 200
    finally:
        conn.close()
    assert [r.status for r in server.requests] == [202, 202, 200]


# --- TLS versions and client certificates (RFC 7030 3.3) ---------------------------------


@pytest.mark.parametrize(("only", "other"), [("1.2", "1.3"), ("1.3", "1.2")])
def test_single_tls_version_servers(start_server: StartServer, only: str, other: str) -> None:
    versions = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
    server = start_server(tls_versions=(only,))
    assert request(server, "GET", "cacerts").status == 200
    assert server.requests[-1].tls_version == f"TLSv{only}"
    pinned = versions[other]
    with pytest.raises(ssl.SSLError):
        request(server, "GET", "cacerts", minimum=pinned, maximum=pinned)
    assert wait_for(lambda: server.tls_failures)


def test_require_client_cert(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(require_client_cert=True)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, "GET", "cacerts")
    files, _, _ = client_cert_files(server.ca, tmp_path)
    assert request(server, "GET", "cacerts", cert_files=files).status == 200
    assert server.requests[-1].peer_cert


def test_require_client_cert_accepts_extra_client_cas(
    start_server: StartServer, tmp_path: Path
) -> None:
    manufacturer = TestCa.create("manufacturer")
    server = start_server(require_client_cert=True, client_ca_certs=(manufacturer.issuing_cert,))
    files, _, _ = client_cert_files(manufacturer, tmp_path, "idevid")
    # the client sends its chain: leaf and the manufacturer's issuing CA
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(
        files[0].read_bytes() + manufacturer.issuing_cert.public_bytes(serialization.Encoding.PEM)
    )
    csr, _ = make_csr()
    answer = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10,
                     cert_files=(chain_file, files[1]))  # fmt: skip
    assert answer.status == 200
    stranger = TestCa.create("stranger")
    files, _, _ = client_cert_files(stranger, tmp_path, "stranger")
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, "GET", "cacerts", cert_files=files)


# --- /simplereenroll (RFC 7030 4.2.2) ----------------------------------------------------


def test_simplereenroll_renews_with_same_subject_and_san(
    server: EstTestServer, tmp_path: Path
) -> None:
    files, current, key = client_cert_files(server.ca, tmp_path, "device-3", ["d3.example"])
    csr, _ = make_csr("device-3", san=["d3.example"], key=key)
    answer = request(server, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)
    assert answer.status == 200, answer.body
    (renewed,) = _certs(answer.body)
    assert renewed.subject == current.subject
    assert renewed.serial_number != current.serial_number
    verify_issued(server.ca, renewed)


def test_simplereenroll_with_a_new_key(server: EstTestServer, tmp_path: Path) -> None:
    files, _, _ = client_cert_files(server.ca, tmp_path, "device-4")
    csr, new_key = make_csr("device-4")
    answer = request(server, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)
    assert answer.status == 200
    assert _certs(answer.body)[0].public_key() == new_key.public_key()


@pytest.mark.parametrize(
    ("cn", "san", "reason"),
    [
        ("someone-else", ["d5.example"], b"subject"),
        ("device-5", ["other.example"], b"subjectAltName"),
        ("device-5", None, b"subjectAltName"),
    ],
)
def test_simplereenroll_refuses_identity_changes(
    server: EstTestServer, tmp_path: Path, cn: str, san: list[str] | None, reason: bytes
) -> None:
    files, _, key = client_cert_files(server.ca, tmp_path, "device-5", ["d5.example"])
    csr, _ = make_csr(cn, san=san, key=key)
    answer = request(server, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)
    assert answer.status == 400
    assert reason in answer.body


def test_simplereenroll_needs_a_client_certificate_from_this_ca(
    server: EstTestServer, tmp_path: Path
) -> None:
    csr, _ = make_csr()
    assert request(server, "POST", "simplereenroll", csr_body(csr), PKCS10).status == 403
    # a certificate from an unknown CA does not even get through the TLS handshake
    stranger = TestCa.create("stranger")
    files, _, _ = client_cert_files(stranger, tmp_path)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(server, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)


def test_simplereenroll_refuses_certificates_from_extra_client_cas(
    start_server: StartServer, tmp_path: Path
) -> None:
    manufacturer = TestCa.create("manufacturer")
    server = start_server(client_ca_certs=(manufacturer.issuing_cert,))
    files, _, key = client_cert_files(manufacturer, tmp_path, "idevid")
    chain_file = tmp_path / "chain.pem"
    chain_file.write_bytes(
        files[0].read_bytes() + manufacturer.issuing_cert.public_bytes(serialization.Encoding.PEM)
    )
    csr, _ = make_csr("idevid", key=key)
    answer = request(server, "POST", "simplereenroll", csr_body(csr), PKCS10,
                     cert_files=(chain_file, files[1]))  # fmt: skip
    assert answer.status == 403


def test_concurrent_enrollments(server: EstTestServer) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def enroll(n: int) -> int:
        csr, _ = make_csr(f"device-{n}")
        return request(server, "POST", "simpleenroll", csr_body(csr), PKCS10).status

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(enroll, range(16)))
    assert statuses == [200] * 16
    assert len(server.requests) == 16
    assert len({r.connection for r in server.requests}) == 16

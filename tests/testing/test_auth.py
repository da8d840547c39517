"""HTTP authentication of the test server (RFC 7030 3.2.3; RFC 7617 Basic, RFC 7616 Digest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import StartServer
from .helpers import (
    PKCS10,
    basic,
    call,
    client_cert_files,
    connect,
    csr_body,
    digest,
    digest_challenges,
    make_csr,
    request,
)

USERS = {"estuser": "estpwd", "other": "s3cret:with:colons"}


def test_basic_accepts_the_right_password(start_server: StartServer) -> None:
    server = start_server(auth="basic", users=USERS)
    csr, _ = make_csr()
    for user, password in USERS.items():
        headers = {**PKCS10, "Authorization": basic(user, password)}
        answer = request(server, "POST", "simpleenroll", csr_body(csr), headers)
        assert answer.status == 200, answer.body
        assert server.requests[-1].user == user


@pytest.mark.parametrize(
    "authorization",
    [None, basic("estuser", "wrong"), basic("nobody", "estpwd"), "Basic !!!", "Bearer x"],
)
def test_basic_refuses_missing_or_wrong_credentials(
    start_server: StartServer, authorization: str | None
) -> None:
    server = start_server(auth="basic", users=USERS)
    csr, _ = make_csr()
    headers = dict(PKCS10)
    if authorization:
        headers["Authorization"] = authorization
    answer = request(server, "POST", "simpleenroll", csr_body(csr), headers)
    assert answer.status == 401
    assert answer.headers.get_all("WWW-Authenticate") == [
        'Basic realm="est-hw test", charset="UTF-8"'
    ]
    assert b"estpwd" not in answer.body
    assert server.requests[-1].user is None


def test_cacerts_needs_no_authentication(start_server: StartServer) -> None:
    server = start_server(auth="basic", users=USERS)
    assert request(server, "GET", "cacerts").status == 200  # RFC 7030 4.1.1
    assert request(server, "GET", "csrattrs").status == 204
    strict = start_server(auth="basic", users=USERS, auth_csrattrs=True)
    assert request(strict, "GET", "csrattrs").status == 401
    ok = request(strict, "GET", "csrattrs", headers={"Authorization": basic("estuser", "estpwd")})
    assert ok.status == 204


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
def test_digest_round_trip(start_server: StartServer, algorithm: str) -> None:
    server = start_server(auth="digest", users=USERS)
    csr, _ = make_csr()
    uri = server.est_path + "simpleenroll"
    conn = connect(server)
    try:
        first = call(conn, "POST", uri, csr_body(csr), PKCS10)
        assert first.status == 401
        challenges = digest_challenges(first.headers)
        assert list(challenges) == ["SHA-256", "MD5"]  # RFC 7616 3.7: preferred first
        challenge = challenges[algorithm]
        assert challenge["qop"] == "auth"
        auth = digest(challenge, "estuser", "estpwd", "POST", uri)
        answer = call(conn, "POST", uri, csr_body(csr), {**PKCS10, "Authorization": auth})
        assert answer.status == 200, answer.body
        # the same nonce with the next nonce-count is fine; replaying a count is not
        auth2 = digest(challenge, "estuser", "estpwd", "POST", uri, nc=2)
        again = call(conn, "POST", uri, csr_body(csr), {**PKCS10, "Authorization": auth2})
        assert again.status == 200
        replay = call(conn, "POST", uri, csr_body(csr), {**PKCS10, "Authorization": auth2})
        assert replay.status == 401
    finally:
        conn.close()
    assert [r.user for r in server.requests] == [None, "estuser", "estuser", None]


def test_digest_refuses_wrong_password_nonce_and_uri(start_server: StartServer) -> None:
    server = start_server(auth="digest", users=USERS)
    csr, _ = make_csr()
    uri = server.est_path + "simpleenroll"
    first = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10)
    challenge = digest_challenges(first.headers)["SHA-256"]
    wrong_password = digest(challenge, "estuser", "nope", "POST", uri)
    forged_nonce = digest({**challenge, "nonce": "forged"}, "estuser", "estpwd", "POST", uri)
    other_uri = digest(challenge, "estuser", "estpwd", "POST", server.est_path + "cacerts")
    wrong_method = digest(challenge, "estuser", "estpwd", "GET", uri)
    unknown_user = digest(challenge, "mallory", "estpwd", "POST", uri)
    for auth in (wrong_password, forged_nonce, other_uri, wrong_method, unknown_user):
        answer = request(
            server, "POST", "simpleenroll", csr_body(csr), {**PKCS10, "Authorization": auth}
        )
        assert answer.status == 401
        assert digest_challenges(answer.headers)
    basic_instead = {**PKCS10, "Authorization": basic("estuser", "estpwd")}
    assert request(server, "POST", "simpleenroll", csr_body(csr), basic_instead).status == 401


def test_client_certificate_can_replace_http_auth(
    start_server: StartServer, tmp_path: Path
) -> None:
    lenient = start_server(auth="basic", users=USERS)
    files, _, key = client_cert_files(lenient.ca, tmp_path, "device-9")
    csr, _ = make_csr("device-9", key=key)
    answer = request(lenient, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)
    assert answer.status == 200
    strict = start_server(auth="basic", users=USERS, cert_auth_suffices=False)
    answer = request(strict, "POST", "simplereenroll", csr_body(csr), PKCS10, cert_files=files)
    assert answer.status == 401
    headers = {**PKCS10, "Authorization": basic("estuser", "estpwd")}
    answer = request(strict, "POST", "simplereenroll", csr_body(csr), headers, cert_files=files)
    assert answer.status == 200

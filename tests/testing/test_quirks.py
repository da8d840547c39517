"""Deliberate misbehaviour modes and the response hook."""

from __future__ import annotations

import base64
import email.utils

from cryptography.hazmat.primitives import serialization

from est_hw.testing import Quirk, Response

from .conftest import StartServer
from .helpers import PKCS10, b64, basic, csr_body, make_csr, request


def test_base64_one_line_and_trailing_nul(start_server: StartServer) -> None:
    server = start_server(quirks=frozenset({Quirk.BASE64_ONE_LINE, Quirk.TRAILING_NUL}))
    answer = request(server, "GET", "cacerts")
    assert answer.body.endswith(b"\n\0")
    assert answer.body.count(b"\n") == 1
    assert int(answer.headers["Content-Length"]) == len(answer.body)
    base64.b64decode(answer.body.rstrip(b"\0"))


def test_base64_crlf_76_without_cte(start_server: StartServer) -> None:
    server = start_server(quirks=frozenset({Quirk.BASE64_CRLF_76, Quirk.NO_CTE_HEADER}))
    answer = request(server, "GET", "cacerts")
    assert answer.headers["Content-Transfer-Encoding"] is None
    lines = answer.body.split(b"\r\n")
    assert len(lines[0]) == 76 and lines[-1] == b""


def test_retry_after_as_http_date(start_server: StartServer) -> None:
    server = start_server(pending=1, retry_after=30, quirks=frozenset({Quirk.RETRY_AFTER_DATE}))
    csr, _ = make_csr()
    answer = request(server, "POST", "simpleenroll", csr_body(csr), PKCS10)
    assert answer.status == 202
    assert email.utils.parsedate_to_datetime(answer.headers["Retry-After"]) is not None


def test_bare_401(start_server: StartServer) -> None:
    server = start_server(auth="basic", users={"u": "p"}, quirks=frozenset({Quirk.BARE_401}))
    csr, _ = make_csr()
    headers = {**PKCS10, "Authorization": basic("u", "wrong")}
    answer = request(server, "POST", "simpleenroll", csr_body(csr), headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] is None


def test_strict_request_lines(start_server: StartServer) -> None:
    server = start_server(quirks=frozenset({Quirk.STRICT_REQUEST_LINES}))
    csr, _ = make_csr()
    der = csr.public_bytes(serialization.Encoding.DER)
    assert request(server, "POST", "simpleenroll", b64(der, 0), PKCS10).status == 400
    assert request(server, "POST", "simpleenroll", b64(der, 64), PKCS10).status == 200


def test_response_hook_has_the_last_word(start_server: StartServer) -> None:
    seen: list[str] = []

    def hook(operation: str, response: Response) -> Response:
        seen.append(operation)
        if operation == "cacerts":
            return Response(200, b"<html>not EST</html>", [("Content-Type", "text/html")])
        return response

    server = start_server(response_hook=hook)
    answer = request(server, "GET", "cacerts")
    assert answer.body == b"<html>not EST</html>"
    assert request(server, "GET", "nothing").status == 404
    assert seen == ["cacerts", ""]
    assert server.requests[0].status == 200

"""HTTP authentication of the EST client (RFC 7030 section 3.2.3).

The client answers the scheme the server challenges with (Basic, RFC 7617, or Digest,
RFC 7616) instead of sending a password preemptively.  The transport authenticates the
server before the first byte of any request, so credentials only ever go to an
authenticated server; :class:`est_hw.est.client.EstClient` refuses credentials on a
provisional (unverified) connection.
"""

from __future__ import annotations

import base64
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from est_hw.errors import AuthenticationError, ProtocolError
from est_hw.keys.base import Secret


@dataclass(frozen=True)
class HttpCredentials:
    """A username and its password (the password never printed)."""

    username: str
    password: Secret


class ChallengeAuth(httpx.Auth):
    """Answer a 401 challenge with Digest when offered, else Basic.

    Digest state (the last challenge) is kept, so later requests on the same client are
    authenticated without a new round trip, as httpx's DigestAuth does.
    """

    requires_request_body = True

    def __init__(self, credentials: HttpCredentials) -> None:
        self._credentials = credentials
        self._digest = httpx.DigestAuth(credentials.username, credentials.password.reveal())
        self._basic_header: str | None = None

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._basic_header is not None:
            request.headers["Authorization"] = self._basic_header
            yield request
            return
        digest_flow = self._digest.auth_flow(request)
        response = yield next(digest_flow)
        schemes = _challenged_schemes(response)
        if response.status_code != 401:
            return
        if "digest" in schemes:
            try:
                with _digest_errors():
                    retry = digest_flow.send(response)
                response = yield retry
                digest_flow.send(response)
            except StopIteration:
                pass
            return
        if "basic" in schemes:
            self._basic_header = _basic_header(self._credentials)
            request.headers["Authorization"] = self._basic_header
            yield request


@contextmanager
def _digest_errors() -> Iterator[None]:
    """httpx's DigestAuth answers challenges it cannot meet with KeyError (an algorithm it
    lacks), NotImplementedError (qop="auth-int" only) or ValueError (a malformed
    challenge, RFC 7616 section 3.3); turn them into est-hw errors."""
    try:
        yield
    except KeyError as exc:
        raise AuthenticationError(
            f"the server's Digest challenge asks for algorithm {exc}, which est-hw cannot "
            "answer (HTTP 401)",
            status=401,
        ) from None
    except NotImplementedError:
        raise AuthenticationError(
            "the server's Digest challenge offers only qop=auth-int, which est-hw cannot "
            "answer (HTTP 401)",
            status=401,
        ) from None
    except ValueError as exc:
        raise ProtocolError(f"malformed WWW-Authenticate Digest challenge: {exc}") from None


def _challenged_schemes(response: httpx.Response) -> set[str]:
    """The lower-cased auth schemes named in the WWW-Authenticate headers."""
    return {
        value.strip().split(" ", 1)[0].lower()
        for value in response.headers.get_list("www-authenticate")
        if value.strip()
    }


def _basic_header(credentials: HttpCredentials) -> str:
    """RFC 7617 section 2: ``Basic base64(user ":" password)`` in UTF-8."""
    raw = f"{credentials.username}:{credentials.password.reveal()}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")

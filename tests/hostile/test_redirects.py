"""Redirects: followed (at most 5 times, credentials kept) only to the same origin --
scheme, host and port; anything else is refused before a byte goes there."""

from __future__ import annotations

from typing import Any

import pytest

from est_hw.testing import PlainListener
from est_hw.testing.hostile import REDIRECTED
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.conftest import PASSWORD, USERNAME, Hostile
from tests.hostile.expectations import EXPECTED, OK, Expect, params

M = Misbehaviour
AUTH_CONFIG: dict[str, Any] = {"auth": "basic", "users": {USERNAME: PASSWORD}}


@pytest.mark.parametrize("mode", params(Layer.REDIRECT))
def test_redirect_with_credentials(hostile: Hostile, mode: Misbehaviour) -> None:
    """Credentials go along a same-origin redirect, and nowhere else: another origin
    (REDIRECT_ELSEWHERE and REDIRECT_TO_HTTP point at a listener) is never contacted."""
    expect = EXPECTED[mode]
    with PlainListener() as listener:
        target = (
            listener.url if mode is M.REDIRECT_TO_HTTP else f"https://127.0.0.1:{listener.port}"
        )
        outcome = hostile.run(
            mode,
            expect=Expect(expect.code, expect.needle, credentials=True),
            redirect_to=target + "/.well-known/est/simpleenroll",
            **AUTH_CONFIG,
        )
        assert listener.received == []
    requests = list(outcome.server.requests)
    enrolls = [r for r in requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) <= 2 + 5  # challenge, credentials, at most 5 redirects
    # nothing arrived under another name (REDIRECT_OTHER_HOST points at this server)
    assert all(not r.headers.get("host", "").startswith("localhost") for r in requests)
    followed = [r for r in requests if REDIRECTED in r.path]
    if expect.code == OK:
        assert len(followed) == 1
        assert followed[0].user == USERNAME  # the credentials were kept
        assert followed[0].status == 200
    else:
        assert followed == []


def test_redirect_to_another_server_sends_it_nothing(hostile: Hostile) -> None:
    other, _ = hostile.server(None, **AUTH_CONFIG)
    outcome = hostile.run(
        M.REDIRECT_ELSEWHERE,
        expect=Expect(5, "another origin", credentials=True),
        redirect_to=other.endpoint("simpleenroll"),
        **AUTH_CONFIG,
    )
    assert list(other.requests) == []
    assert outcome.server.requests[-1].status == 307


def test_redirect_on_csrattrs_is_followed(hostile: Hostile) -> None:
    outcome = hostile.run(M.REDIRECT_RELATIVE, misbehave_on={"csrattrs"}, csrattrs=b"\x30\x00")
    assert [r.status for r in outcome.server.requests if "csrattrs" in r.path] == [307, 200]

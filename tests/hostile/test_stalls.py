"""Servers that stall -- say nothing, drip a byte a second, promise a Content-Length they
never send -- are ended by est-hw's own deadline (``--timeout 2``), whatever the server
does, with a clean error and the token untouched.

Each case takes the whole timeout, so the cases run side by side, each on its own token
and server; a failure names every case that failed."""

from __future__ import annotations

from est_hw.est.csrattrs import encode_csrattrs
from est_hw.testing.misbehaviour import Misbehaviour
from tests.hostile.conftest import Hostile, Started
from tests.hostile.expectations import STALLS

M = Misbehaviour


def test_stalling_servers_are_ended_by_the_deadline(hostile: Hostile) -> None:
    assert set(STALLS) == {M.TCP_SILENT, M.HTTP_SLOW_DRIP, M.HTTP_SILENT, M.HTTP_LENGTH_TOO_LONG}
    cases: dict[str, Started] = {}
    try:
        for mode in STALLS:  # on /simpleenroll: after the key was made
            cases[mode.value] = hostile.start(mode, token=hostile.new_token())
        cases["http-slow-drip on /csrattrs"] = hostile.start(
            M.HTTP_SLOW_DRIP,
            token=hostile.new_token(),
            misbehave_on={"csrattrs"},
            csrattrs=encode_csrattrs(["1.2.840.10045.4.3.2"]),
        )
        cases["http-slow-drip on est-hw cacerts"] = hostile.start(
            M.HTTP_SLOW_DRIP, command="cacerts", misbehave_on={"cacerts"}
        )
        failures: dict[str, str] = {}
        for name, started in cases.items():
            try:
                outcome = started.finish()
            except AssertionError as exc:
                failures[name] = str(exc)[:1000]
                continue
            if started.mode is not M.TCP_SILENT:
                assert list(outcome.server.requests), name  # the request did arrive
        assert not failures, failures
    finally:
        for started in cases.values():
            started.kill()

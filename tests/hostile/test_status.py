"""Status-line misbehaviours: errors, authentication challenges, pending answers.

Retry-After is reported as the server said it (ten years included) and never trusted
beyond that: a malformed one is a protocol error, and --wait gives up beyond --max-wait."""

from __future__ import annotations

import pytest

from est_hw.testing.hostile import TEN_YEARS
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.conftest import Batch, Case, batch_fixture, cases_of
from tests.hostile.expectations import AUTH, OK, PENDING, SERVER, Expect, modes, params

M = Misbehaviour
CHALLENGES = [M.STATUS_401_BARE, M.STATUS_401_UNKNOWN_SCHEME, M.STATUS_401_FOREVER]
ON_CSRATTRS = {
    M.STATUS_503_RETRY_AFTER: Expect(SERVER, "csrattrs"),
    M.STATUS_401_BARE: Expect(AUTH, "401"),
    M.STATUS_404: Expect(OK),  # RFC 7030 4.5.2: no attributes
}
WAIT = ("--wait", "--max-wait", "1m")

batch = batch_fixture(
    cases_of(modes(Layer.STATUS))
    | {f"credentials:{m.value}": Case(m, Expect(AUTH, "401", credentials=True)) for m in CHALLENGES}
    | {
        f"csrattrs:{m.value}": Case(m, e, config={"misbehave_on": {"csrattrs"}})
        for m, e in ON_CSRATTRS.items()
    }
    | {
        "wait:retry-after-ten-years": Case(
            M.RETRY_AFTER_TEN_YEARS, Expect(PENDING, "max-wait", retry_after=TEN_YEARS), args=WAIT
        )
    }
)


@pytest.mark.parametrize("mode", params(Layer.STATUS))
def test_status_misbehaviour(batch: Batch, mode: Misbehaviour) -> None:
    batch.outcome(mode.value)


@pytest.mark.parametrize("mode", CHALLENGES, ids=lambda m: m.value)
def test_401_with_credentials_is_refused_without_a_loop(batch: Batch, mode: Misbehaviour) -> None:
    outcome = batch.outcome(f"credentials:{mode.value}")
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    assert 1 <= len(enrolls) <= 2  # at most one answer to the challenge
    if mode is M.STATUS_401_FOREVER:
        assert enrolls[-1].headers["authorization"].startswith("Basic ")


def test_ten_years_with_wait_gives_up_at_once(batch: Batch) -> None:
    outcome = batch.outcome("wait:retry-after-ten-years")
    assert outcome.elapsed < 10


@pytest.mark.parametrize("mode", list(ON_CSRATTRS), ids=lambda m: m.value)
def test_status_misbehaviour_on_csrattrs(batch: Batch, mode: Misbehaviour) -> None:
    """A refusal of /csrattrs stops the enrollment before a key is made; a 404 there
    means "no attributes" and the enrollment goes on."""
    outcome = batch.outcome(f"csrattrs:{mode.value}")
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) == (1 if ON_CSRATTRS[mode].code == OK else 0)

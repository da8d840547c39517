"""HTTP framing and timing misbehaviours: broken answers fail cleanly, well-formed
oddities (chunked, an interim 103, a body delimited by the connection's close) are
accepted.  (Stalling servers: test_stalls.py.)"""

from __future__ import annotations

import pytest

from est_hw.est.csrattrs import encode_csrattrs
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.conftest import Batch, Case, batch_fixture, cases_of
from tests.hostile.expectations import EXPECTED, OK, SERVER, Expect, modes, params

M = Misbehaviour
#: a /csrattrs answer with a body (ecdsa-with-SHA256), so framing has something to frame
CSRATTRS = encode_csrattrs(["1.2.840.10045.4.3.2"])
ON_CSRATTRS = [M.HTTP_CHUNKED, M.HTTP_CLOSE_DELIMITED, M.HTTP_CLOSE_MID_BODY, M.HTTP_GARBAGE,
               M.HTTP_HUGE_CHUNKED]  # fmt: skip
ON_CACERTS = {
    M.HTTP_CHUNKED: Expect(OK),
    M.HTTP_CLOSE_DELIMITED: Expect(OK),
    M.HTTP_LENGTH_TOO_SHORT: Expect(SERVER, "cacerts"),
}

batch = batch_fixture(
    cases_of(modes(Layer.HTTP))
    | {
        f"csrattrs:{m.value}": Case(m, config={"misbehave_on": {"csrattrs"}, "csrattrs": CSRATTRS})
        for m in ON_CSRATTRS
    }
    | {
        f"cacerts:{m.value}": Case(m, e, command="cacerts", config={"misbehave_on": {"cacerts"}})
        for m, e in ON_CACERTS.items()
    }
)


@pytest.mark.parametrize("mode", params(Layer.HTTP))
def test_http_misbehaviour_on_simpleenroll(batch: Batch, mode: Misbehaviour) -> None:
    outcome = batch.outcome(mode.value)
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) == 1  # never resent on its own


@pytest.mark.parametrize("mode", ON_CSRATTRS, ids=lambda m: m.value)
def test_http_misbehaviour_on_csrattrs(batch: Batch, mode: Misbehaviour) -> None:
    """Before any key exists: the enrollment stops there, or goes on when well-formed."""
    outcome = batch.outcome(f"csrattrs:{mode.value}")
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) == (1 if EXPECTED[mode].code == OK else 0)


@pytest.mark.parametrize("mode", list(ON_CACERTS), ids=lambda m: m.value)
def test_http_misbehaviour_on_cacerts(batch: Batch, mode: Misbehaviour) -> None:
    outcome = batch.outcome(f"cacerts:{mode.value}")
    if ON_CACERTS[mode].code == OK:
        assert len(outcome.result.json()["certificates"]) == 2  # --json: one object

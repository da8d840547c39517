"""/csrattrs misbehaviours: a server asking for a CSR that cannot or must not be built.

What est-hw cannot honour it notes and leaves out; what makes no sense is a clean error
(exit 5), and a template needing what the user did not give is a usage error (exit 2) --
in every case before or without leaving a key behind."""

from __future__ import annotations

import pytest

from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.conftest import Batch, batch_fixture, cases_of
from tests.hostile.expectations import EXPECTED, modes, params

batch = batch_fixture(cases_of(modes(Layer.CSRATTRS)))


@pytest.mark.parametrize("mode", params(Layer.CSRATTRS))
def test_csrattrs_misbehaviour(batch: Batch, mode: Misbehaviour) -> None:
    outcome = batch.outcome(mode.value)
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    if EXPECTED[mode].needle == "400":  # the server refused the CSR it asked for
        assert [r.status for r in enrolls] == [400]
    if mode is Misbehaviour.CSRATTRS_UNMAKEABLE_KEY:
        assert "RSA" not in outcome.result.json()["key_type"].upper()
        assert "rsa-1024" in outcome.result.stderr  # noted, on stderr, as a warning

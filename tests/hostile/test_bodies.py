"""Body misbehaviours: every answer that is not a usable certificate for the token key,
chaining to the anchor, is refused before anything is stored; the layouts real servers
use (PEM, raw DER, 76-column CRLF, a trailing NUL, no CTE header...) are accepted."""

from __future__ import annotations

import pytest

from est_hw.testing.config import Quirk
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.conftest import (
    Batch,
    Case,
    Hostile,
    assert_clean_failure,
    batch_fixture,
    cases_of,
    snapshot,
)
from tests.hostile.expectations import EXPECTED, OK, SERVER, TRUST, Expect, modes, params

M = Misbehaviour


ON_CACERTS = {
    M.BODY_NO_CERTIFICATE: Expect(SERVER, "no certificate"),
    M.BODY_BARE_CERTIFICATE: Expect(SERVER, "PKCS#7"),
    M.BODY_MALFORMED_CERTIFICATE: Expect(SERVER, "malformed"),
    M.BODY_HTML: Expect(SERVER, "text/html"),
    M.BODY_GARBAGE_BASE64: Expect(SERVER, "base64"),
    M.BODY_PEM: Expect(OK),
    M.BODY_RAW_DER: Expect(OK),
    #: RFC 7030 4.1.3: every certificate must chain to the answer's root before use
    M.BODY_UNTRUSTED_ISSUER: Expect(TRUST, "does not chain to the root CA of the answer"),
}
#: an empty body is "no attributes" (RFC 7030 4.5.2)
ON_CSRATTRS = {M.BODY_GARBAGE_BASE64: SERVER, M.BODY_HTML: SERVER, M.BODY_EMPTY: OK}
LAYOUTS = [Quirk.BASE64_ONE_LINE, Quirk.BASE64_CRLF_76, Quirk.TRAILING_NUL, Quirk.NO_CTE_HEADER]
ALL_LAYOUTS = frozenset({Quirk.BASE64_CRLF_76, Quirk.TRAILING_NUL, Quirk.NO_CTE_HEADER})

batch = batch_fixture(
    cases_of(modes(Layer.BODY))
    | {
        f"layout:{q.value}": Case(None, Expect(OK), config={"quirks": frozenset({q})})
        for q in LAYOUTS
    }
    | {"layout:all": Case(M.BODY_LEGACY_CONTENT_TYPE, config={"quirks": ALL_LAYOUTS})}
    | {
        f"cacerts:{m.value}": Case(m, e, command="cacerts", config={"misbehave_on": {"cacerts"}})
        for m, e in ON_CACERTS.items()
    }
    | {
        f"csrattrs:{m.value}": Case(m, Expect(code), config={"misbehave_on": {"csrattrs"}})
        for m, code in ON_CSRATTRS.items()
    }
)


@pytest.mark.parametrize("mode", params(Layer.BODY))
def test_body_misbehaviour_on_simpleenroll(batch: Batch, mode: Misbehaviour) -> None:
    batch.outcome(mode.value)


@pytest.mark.parametrize("quirk", LAYOUTS, ids=lambda q: q.value)
def test_real_server_layouts_are_accepted(batch: Batch, quirk: Quirk) -> None:
    batch.outcome(f"layout:{quirk.value}")


def test_every_layout_quirk_at_once(batch: Batch) -> None:
    batch.outcome("layout:all")


@pytest.mark.parametrize("mode", list(ON_CACERTS), ids=lambda m: m.value)
def test_body_misbehaviour_on_cacerts(batch: Batch, mode: Misbehaviour) -> None:
    batch.outcome(f"cacerts:{mode.value}")


@pytest.mark.parametrize("mode", list(ON_CSRATTRS), ids=lambda m: m.value)
def test_body_misbehaviour_on_csrattrs(batch: Batch, mode: Misbehaviour) -> None:
    """A broken /csrattrs stops the enrollment before a key is made."""
    outcome = batch.outcome(f"csrattrs:{mode.value}")
    enrolls = [r for r in outcome.server.requests if r.path.endswith("/simpleenroll")]
    assert len(enrolls) == (1 if ON_CSRATTRS[mode] == OK else 0)


@pytest.mark.parametrize(
    ("mode", "rekey"),
    [(M.BODY_OTHER_KEY, False), (M.BODY_SEVERAL_LEAVES, True), (M.HTTP_CLOSE_MID_BODY, False)],
    ids=lambda v: v.value if isinstance(v, Misbehaviour) else ("rekey" if v else "same-key"),
)  # fmt: skip
def test_reenroll_keeps_the_old_certificate(
    hostile: Hostile, mode: Misbehaviour, rekey: bool
) -> None:
    """/simplereenroll answered badly: the enrolled key and certificate stay as they were
    (and with --rekey the new key is gone again)."""
    server, ca_file = hostile.server(mode, misbehave_on={"simplereenroll"})
    enrolled, _ = hostile.enroll(server, ca_file)
    assert enrolled.code == 0, enrolled.stderr
    before = snapshot(hostile.token)
    result = hostile.cli(
        "reenroll", "--server", server.url, "--ca-file", str(ca_file),
        "--token", hostile.token.label, "--json", "--timeout", "10",
        *(["--rekey"] if rekey else []),
    )  # fmt: skip
    expect = EXPECTED[mode]
    assert_clean_failure(result, expect)
    assert expect.code in (SERVER, TRUST)
    assert snapshot(hostile.token) == before

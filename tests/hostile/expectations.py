"""What est-hw must do against each hostile server: the exit code and a word of the error.

docs/hostile-servers.md shows this table; tests/hostile/test_catalogue.py keeps the two,
and the :class:`~est_hw.testing.Misbehaviour` catalogue, in step.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from est_hw.est.client import DEFAULT_RETRY_AFTER
from est_hw.testing.hostile import ABSURD, TEN_YEARS
from est_hw.testing.misbehaviour import Layer, Misbehaviour

M = Misbehaviour

#: exit codes (est_hw.errors): 0 ok, 2 usage, 3 auth refused, 5 server/protocol, 6 trust,
#: 7 pending
OK, USAGE, AUTH, SERVER, TRUST, PENDING = 0, 2, 3, 5, 6, 7
#: --timeout for the runs that must end by the client's own deadline
SHORT_TIMEOUT = "2"


@dataclass(frozen=True)
class Expect:
    """est-hw's exit code against a misbehaviour, and a word its one error line holds."""

    code: int
    needle: str = ""
    #: the server stalls: only the client's --timeout ends the run
    stalls: bool = False
    #: run with HTTP credentials (--username and EST_HW_PASSWORD)
    credentials: bool = False
    #: the retry_after est-hw must report (exit 7)
    retry_after: int | None = None


EXPECTED: dict[Misbehaviour, Expect] = {
    # tcp: nothing useful ever arrives
    M.TCP_SILENT: Expect(SERVER, "deadline", stalls=True),
    M.TCP_CLOSE: Expect(SERVER),
    M.TCP_RESET: Expect(SERVER),
    M.TCP_PLAINTEXT_HTTP: Expect(SERVER),
    M.TCP_GARBAGE: Expect(SERVER),
    # tls: the server is not who it must be, or cannot talk
    M.TLS_WRONG_NAME: Expect(TRUST, "127.0.0.1"),
    M.TLS_EXPIRED: Expect(TRUST),
    M.TLS_NOT_YET_VALID: Expect(TRUST),
    M.TLS_SELF_SIGNED: Expect(TRUST),
    M.TLS_UNTRUSTED_CA: Expect(TRUST),
    M.TLS_NO_INTERMEDIATE: Expect(TRUST),
    M.TLS_CLIENT_AUTH_EKU: Expect(TRUST),
    M.TLS_CLOSE_AFTER_HANDSHAKE: Expect(SERVER),
    M.TLS_NO_SHARED_CIPHER: Expect(SERVER),
    # http framing and timing
    M.HTTP_GARBAGE: Expect(SERVER),
    M.HTTP_BAD_STATUS_LINE: Expect(SERVER),
    M.HTTP_SLOW_DRIP: Expect(SERVER, "deadline", stalls=True),
    M.HTTP_SILENT: Expect(SERVER, "deadline", stalls=True),
    M.HTTP_CLOSE_BEFORE_ANSWER: Expect(SERVER),
    M.HTTP_CLOSE_MID_HEADERS: Expect(SERVER),
    M.HTTP_CLOSE_MID_BODY: Expect(SERVER),
    M.HTTP_LENGTH_TOO_LONG: Expect(SERVER, "deadline", stalls=True),
    M.HTTP_LENGTH_TOO_SHORT: Expect(SERVER, "simpleenroll"),
    M.HTTP_LENGTH_MALFORMED: Expect(SERVER),
    M.HTTP_LENGTH_CONFLICT: Expect(SERVER),
    M.HTTP_CHUNKED: Expect(OK),
    M.HTTP_CHUNKED_MALFORMED: Expect(SERVER),
    M.HTTP_CHUNKED_TRUNCATED: Expect(SERVER),
    M.HTTP_HUGE_CHUNKED: Expect(SERVER, "too large"),
    M.HTTP_HUGE_HEADER: Expect(SERVER),
    M.HTTP_CONTENT_ENCODING: Expect(SERVER, "gzip"),
    M.HTTP_INTERIM_103: Expect(OK),
    M.HTTP_CLOSE_DELIMITED: Expect(OK),
    # status lines, challenges, pending
    M.STATUS_204: Expect(SERVER, "204"),
    M.STATUS_404: Expect(SERVER, "404"),
    M.STATUS_500: Expect(SERVER, "500"),
    M.STATUS_500_RETRY_AFTER: Expect(SERVER, "500"),
    M.STATUS_503: Expect(SERVER, "503"),
    M.STATUS_503_RETRY_AFTER: Expect(SERVER, "503"),
    M.STATUS_401_BARE: Expect(AUTH, "401"),
    M.STATUS_401_UNKNOWN_SCHEME: Expect(AUTH, "401"),
    M.STATUS_401_FOREVER: Expect(AUTH, "401"),
    M.DIGEST_NO_NONCE: Expect(SERVER, "Digest", credentials=True),
    M.DIGEST_UNKNOWN_ALGORITHM: Expect(AUTH, "401", credentials=True),
    M.DIGEST_AUTH_INT_ONLY: Expect(AUTH, "401", credentials=True),
    M.DIGEST_BARE_PARAMETER: Expect(SERVER, "Digest", credentials=True),
    M.RETRY_AFTER_TEN_YEARS: Expect(PENDING, retry_after=TEN_YEARS),
    M.RETRY_AFTER_ABSURD: Expect(PENDING, retry_after=ABSURD),
    M.RETRY_AFTER_MALFORMED: Expect(SERVER, "Retry-After"),
    M.RETRY_AFTER_NEGATIVE: Expect(SERVER, "Retry-After"),
    M.RETRY_AFTER_HUGE_NUMBER: Expect(SERVER, "Retry-After"),
    M.RETRY_AFTER_PAST_DATE: Expect(PENDING, retry_after=0),
    M.RETRY_AFTER_MISSING: Expect(PENDING, retry_after=DEFAULT_RETRY_AFTER),
    # bodies
    M.BODY_EMPTY: Expect(SERVER, "empty"),
    M.BODY_HTML: Expect(SERVER, "text/html"),
    M.BODY_HTML_AS_PKCS7: Expect(SERVER, "base64"),
    M.BODY_GARBAGE_BASE64: Expect(SERVER, "base64"),
    M.BODY_TRUNCATED_BASE64: Expect(SERVER, "simpleenroll"),
    M.BODY_OVERSIZED_BASE64: Expect(SERVER, "PKCS#7"),
    M.BODY_TRAILING_JUNK: Expect(SERVER, "simpleenroll"),
    M.BODY_HUGE: Expect(SERVER, "too large"),
    M.BODY_NO_CONTENT_TYPE: Expect(SERVER, "Content-Type"),
    M.BODY_WRONG_CONTENT_TYPE: Expect(SERVER, "text/plain"),
    M.BODY_WRONG_SMIME_TYPE: Expect(SERVER, "CMC-response"),
    M.BODY_NO_CERTIFICATE: Expect(SERVER, "no certificate"),
    M.BODY_BARE_CERTIFICATE: Expect(SERVER, "PKCS#7"),
    M.BODY_SEVERAL_LEAVES: Expect(SERVER, "2 certificates"),
    M.BODY_OTHER_KEY: Expect(TRUST, "token key"),
    M.BODY_EXPIRED: Expect(TRUST),
    M.BODY_NOT_YET_VALID: Expect(TRUST),
    M.BODY_UNTRUSTED_ISSUER: Expect(TRUST),
    M.BODY_CA_CERTIFICATE: Expect(TRUST, "token key"),
    M.BODY_CA_FOR_KEY: Expect(TRUST, "CA certificate"),
    M.BODY_BAD_SIGNATURE: Expect(TRUST),
    M.BODY_MALFORMED_CERTIFICATE: Expect(SERVER, "malformed"),
    M.BODY_UNSUPPORTED_EXTRA: Expect(OK),
    M.BODY_WITH_CHAIN: Expect(OK),
    M.BODY_PEM: Expect(OK),
    M.BODY_RAW_DER: Expect(OK),
    M.BODY_LEGACY_CONTENT_TYPE: Expect(OK),
    # redirects: same origin followed (credentials kept), anything else refused
    M.REDIRECT_SAME_ORIGIN: Expect(OK),
    M.REDIRECT_RELATIVE: Expect(OK),
    M.REDIRECT_LOOP: Expect(SERVER, "redirect"),
    M.REDIRECT_TO_HTTP: Expect(SERVER, "redirect"),
    M.REDIRECT_OTHER_HOST: Expect(SERVER, "redirect"),
    M.REDIRECT_ELSEWHERE: Expect(SERVER, "redirect"),
    M.REDIRECT_MALFORMED_LOCATION: Expect(SERVER, "location"),
    M.REDIRECT_NO_LOCATION: Expect(SERVER, "redirect"),
    # csrattrs: what the server asks the CSR to hold
    M.CSRATTRS_BAD_COUNTRY: Expect(SERVER, "csrattrs"),
    M.CSRATTRS_DUPLICATE_ATTRIBUTE: Expect(SERVER, "csrattrs"),
    M.CSRATTRS_LONG_COMMON_NAME: Expect(SERVER, "csrattrs"),
    M.CSRATTRS_JUNK_EXTENSION: Expect(SERVER, "400"),
    M.CSRATTRS_UNMAKEABLE_KEY: Expect(OK),
    M.CSRATTRS_NEEDS_SUBJECT: Expect(USAGE, "serialNumber"),
    M.CSRATTRS_MALFORMED_TEMPLATE: Expect(SERVER, "Template"),
    M.CSRATTRS_NOT_CSRATTRS: Expect(SERVER, "CsrAttrs"),
}


#: where est-hw does not (yet) do what it must: each is a bug outside the test server,
#: reported with the reason; strict, so a fix turns the test red until the mark goes
XFAIL: dict[Misbehaviour, str] = {}


#: the misbehaviours that stall: each costs a whole --timeout, so they run side by side
#: in tests/hostile/test_stalls.py instead of one after the other
STALLS = [mode for mode, expect in EXPECTED.items() if expect.stalls]


def modes(*layers: Layer) -> list[Misbehaviour]:
    """The misbehaviours of ``layers`` that do not stall, in catalogue order."""
    return [mode for mode in Misbehaviour if mode.layer in layers and mode not in STALLS]


def params(*layers: Layer) -> list[object]:
    """pytest parameters for every misbehaviour of ``layers`` that does not stall, xfail
    marks included."""
    return [
        pytest.param(
            mode,
            id=mode.value,
            marks=[pytest.mark.xfail(strict=True, reason=XFAIL[mode])] if mode in XFAIL else [],
        )
        for mode in modes(*layers)
    ]

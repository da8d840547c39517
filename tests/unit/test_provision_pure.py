"""Pure parts of the flows: the journal record, polling, renewal windows."""

from __future__ import annotations

import datetime

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from est_hw.errors import EnrollmentPendingError, TokenError, UsageError
from est_hw.provision.journal import PendingEnrollment
from est_hw.provision.renew import RenewalWindow, parse_duration
from est_hw.provision.waiting import MIN_RETRY_SECONDS, WaitPolicy, until_issued
from tests.pki import NOW, make_ca, make_leaf

records = st.builds(
    PendingEnrollment,
    operation=st.sampled_from(["simpleenroll", "simplereenroll"]),
    server=st.text(max_size=40),
    key_id=st.binary(min_size=1, max_size=20),
    key_label=st.text(min_size=1, max_size=30),
    key_type=st.sampled_from(["ec-p256", "rsa-2048"]),
    csr=st.none() | st.binary(max_size=300),
    retry_at=st.none() | st.just("2030-01-01T00:00:00+00:00"),
    old_key_id=st.none() | st.binary(min_size=1, max_size=20),
)


@given(records)
def test_journal_record_round_trips(record: PendingEnrollment) -> None:
    assert PendingEnrollment.from_bytes(record.to_bytes()) == record


@pytest.mark.parametrize(
    "data", [b"", b"{}", b"not json", b'{"version": 2}', b'{"version": 1, "operation": 1}']
)
def test_foreign_records_are_token_errors(data: bytes) -> None:
    with pytest.raises(TokenError, match="unreadable enrollment record"):
        PendingEnrollment.from_bytes(data)


class FakeClock:
    """A monotonic clock that sleeps instantly (the pure polling logic only)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _server(answers: list[int | str]) -> object:
    def attempt() -> str:
        answer = answers.pop(0)
        if isinstance(answer, int):
            raise EnrollmentPendingError("pending", retry_after=answer)
        return answer

    return attempt


def test_polls_honouring_retry_after_and_records_each_202() -> None:
    clock = FakeClock()
    seen: list[int] = []
    progress: list[tuple[int, int]] = []
    policy = WaitPolicy(60, lambda s, n: progress.append((s, n)), clock.sleep, lambda: clock.now)
    result = until_issued(_server([5, 0, "cert"]), policy, seen.append)  # type: ignore[arg-type]
    assert result == "cert"
    assert seen == [5, 0]
    assert clock.sleeps == [5, MIN_RETRY_SECONDS]
    assert progress == [(5, 1), (MIN_RETRY_SECONDS, 2)]


def test_without_policy_the_202_is_raised_and_beyond_max_wait_too() -> None:
    seen: list[int] = []
    with pytest.raises(EnrollmentPendingError) as info:
        until_issued(_server([7, "cert"]), None, seen.append)  # type: ignore[arg-type]
    assert info.value.retry_after == 7
    assert seen == [7]
    clock = FakeClock()
    policy = WaitPolicy(10, sleep=clock.sleep, clock=lambda: clock.now)
    with pytest.raises(EnrollmentPendingError, match="beyond --max-wait") as info:
        until_issued(_server([4, 4, 4, "cert"]), policy, seen.append)  # type: ignore[arg-type]
    assert clock.sleeps == [4, 4]
    assert info.value.retry_after == 4


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("10m", 600), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("1.5h", 5400)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text, option="--x").total_seconds() == seconds


@pytest.mark.parametrize("bad", ["", "10", "d", "-5m", "1y", "5 minutes"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(UsageError, match="--x"):
        parse_duration(bad, option="--x")


def test_renewal_windows() -> None:
    ca = make_ca()
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    cert = make_leaf(ca, key, start=NOW - datetime.timedelta(days=59), days=90)  # 31 days left
    default = RenewalWindow.parse(None)
    assert default.is_due(cert, NOW) is False  # due in the last 30 days
    assert default.is_due(cert, NOW + datetime.timedelta(days=1, minutes=1)) is True
    assert default.due_at(cert) == cert.not_valid_after_utc - datetime.timedelta(days=30)
    assert RenewalWindow.parse("32d").is_due(cert, NOW) is True
    assert RenewalWindow.parse("30d").is_due(cert, NOW) is False
    assert RenewalWindow.parse("35%").is_due(cert, NOW) is True
    assert RenewalWindow.parse("34%").is_due(cert, NOW) is False
    for bad in ("0%", "101%", "abc"):
        with pytest.raises(UsageError, match="--before"):
            RenewalWindow.parse(bad)

"""Property tests for the base64 body codec, certs-only and Retry-After parsing."""

from __future__ import annotations

import base64
import contextlib
import datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from est_hw.errors import EstHwError
from est_hw.est.messages import (
    decode_base64_body,
    decode_certs_only,
    encode_base64_body,
    parse_retry_after,
)

WHAT = "the /cacerts response"
NOW = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
FAST = settings(max_examples=200, deadline=None)


@FAST
@given(st.binary(min_size=1, max_size=2048))
def test_round_trip(data: bytes) -> None:
    assert decode_base64_body(encode_base64_body(data), what=WHAT) == data


@FAST
@given(st.binary(max_size=2048))
def test_encoded_lines_are_at_most_64_and_end_with_lf(data: bytes) -> None:
    body = encode_base64_body(data)
    assert body == b"" or body.endswith(b"\n")
    lines = body.split(b"\n")[:-1] if body else []
    assert all(0 < len(line) <= 64 for line in lines)
    assert b"".join(lines) == base64.b64encode(data)


@st.composite
def relayouts(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """Some DER-ish bytes and its base64 laid out the many ways servers do."""
    data = draw(st.binary(min_size=1, max_size=600))
    text = base64.b64encode(data)
    out = bytearray()
    out += draw(st.sampled_from([b"", b" ", b"\t", b"\r\n", b"\n"]))
    i = 0
    while i < len(text):
        step = draw(st.integers(min_value=1, max_value=120))
        out += text[i : i + step]
        i += step
        out += draw(st.sampled_from([b"", b"\n", b"\r\n", b" ", b"\t", b"  \r\n", b" \t"]))
    if draw(st.booleans()):
        eol = draw(st.sampled_from([b"\n", b"\r\n"]))
        out = bytearray(b"-----BEGIN PKCS7-----" + eol + out + eol + b"-----END PKCS7-----" + eol)
    out += draw(st.sampled_from([b"", b"\n", b"\r\n", b"\x00", b"\n\x00", b"\r\n\x00\x00"]))
    return data, bytes(out)


@FAST
@given(relayouts())
def test_any_relayout_decodes_to_the_same_bytes(case: tuple[bytes, bytes]) -> None:
    data, body = case
    assert decode_base64_body(body, what=WHAT) == data


@FAST
@given(st.binary(max_size=512))
def test_decode_base64_body_raises_only_est_hw_errors(body: bytes) -> None:
    try:
        decode_base64_body(body, what=WHAT)
    except EstHwError as exc:
        assert str(exc).startswith(WHAT)
        assert "\n" not in str(exc)


@FAST
@given(st.binary(max_size=512))
def test_decode_certs_only_raises_only_est_hw_errors(body: bytes) -> None:
    with contextlib.suppress(EstHwError):
        decode_certs_only(body, what=WHAT)


@FAST
@given(st.binary(max_size=512))
def test_decode_certs_only_of_base64_garbage_raises_only_est_hw_errors(data: bytes) -> None:
    # Valid base64 of arbitrary (mostly SEQUENCE-shaped) bytes reaches the PKCS#7 parser.
    with contextlib.suppress(EstHwError):
        decode_certs_only(encode_base64_body(b"\x30" + data), what=WHAT)


@FAST
@given(st.one_of(st.text(max_size=64), st.binary(max_size=64).map(lambda b: b.decode("latin-1"))))
def test_parse_retry_after_raises_only_est_hw_errors(value: str) -> None:
    try:
        seconds = parse_retry_after(value, now=NOW)
    except EstHwError:
        return
    assert isinstance(seconds, int)
    assert seconds >= 0


@FAST
@given(st.integers(min_value=0, max_value=10**30))
def test_parse_retry_after_delta_seconds_round_trip(seconds: int) -> None:
    assert parse_retry_after(str(seconds), now=NOW) == seconds


@FAST
@given(
    st.datetimes(
        min_value=datetime.datetime(1971, 1, 1),
        max_value=datetime.datetime(9998, 12, 31),
        timezones=st.just(datetime.UTC),
    ).map(lambda d: d.replace(microsecond=0))
)
def test_parse_retry_after_imf_fixdate(when: datetime.datetime) -> None:
    from email.utils import format_datetime

    header = format_datetime(when, usegmt=True)
    expected = max(0, int((when - NOW).total_seconds()))
    assert parse_retry_after(header, now=NOW) == expected

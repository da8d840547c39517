"""Fuzz target: est_hw.est.codec.parse_retry_after: any Retry-After header value.

Header values reach the client as latin-1 text (httpx decodes them so); the first byte
picks a naive or an aware "now"."""

from __future__ import annotations

import sys
from collections.abc import Callable

NAME = "retry_after"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    import datetime
    import email.utils  # noqa: F401 (imported here so atheris instruments it)

    from est_hw.errors import EstHwError
    from est_hw.est.codec import parse_retry_after

    aware = datetime.datetime(2025, 6, 1, 12, 0, tzinfo=datetime.UTC)
    naive = aware.replace(tzinfo=None)

    def one_input(data: bytes) -> None:
        if not data:
            return
        now = aware if data[0] % 2 else naive
        try:
            seconds = parse_retry_after(data[1:].decode("latin-1"), now=now)
        except EstHwError:
            return
        if not isinstance(seconds, int) or seconds < 0:
            raise AssertionError(f"parse_retry_after gave {seconds!r}")

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

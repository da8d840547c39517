"""Fuzz target: est_hw.est.codec.decode_base64_body: any bytes as an EST response body."""

from __future__ import annotations

import sys
from collections.abc import Callable

NAME = "base64"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    from est_hw.errors import EstHwError
    from est_hw.est.codec import decode_base64_body

    def one_input(data: bytes) -> None:
        try:
            der = decode_base64_body(data, what="the fuzzed body")
        except EstHwError:
            return
        if not isinstance(der, bytes):
            raise TypeError(f"decode_base64_body returned {type(der).__name__}")

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

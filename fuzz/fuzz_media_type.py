"""Fuzz target: est_hw.est.codec.check_media_type: any Content-Type against every expected type."""

from __future__ import annotations

import sys
from collections.abc import Callable

NAME = "media_type"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    from est_hw.errors import EstHwError
    from est_hw.est import codec

    expected = (
        codec.CERTS_ONLY_TYPE,
        codec.CSRATTRS_TYPE,
        codec.PKCS7_MIME_TYPE,
        codec.CMC_RESPONSE_TYPE,
        codec.SERVER_GENERATED_KEY_TYPE,
        codec.PKCS8_TYPE,
        codec.PKCS10_TYPE,
        codec.MULTIPART_MIXED_TYPE,
    )

    def one_input(data: bytes) -> None:
        if not data:
            return
        want = expected[data[0] % len(expected)]
        value = None if data[0] >= 0xF0 else data[1:].decode("latin-1")
        try:
            codec.check_media_type(value, want, what="the fuzzed response")
        except EstHwError:
            return

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

"""Fuzz target: est_hw.est.csrattrs.decode_csrattrs_response: a whole /csrattrs body.

The first byte picks the layout: even -> the rest as is, odd -> the rest base64-encoded
(so the DER decoder sees mutated CsrAttrs)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness import exercise_csrattrs

NAME = "csrattrs_response"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    import base64

    from est_hw.errors import EstHwError
    from est_hw.est.csrattrs import CsrAttributes, decode_csrattrs_response

    def one_input(data: bytes) -> None:
        if not data:
            return
        body = data[1:] if data[0] % 2 == 0 else base64.encodebytes(data[1:])
        try:
            attributes = decode_csrattrs_response(body)
        except EstHwError:
            return
        if not isinstance(attributes, CsrAttributes):
            raise TypeError(f"decode_csrattrs_response returned {type(attributes).__name__}")
        exercise_csrattrs(attributes)

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

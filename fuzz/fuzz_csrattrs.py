"""Fuzz target: est_hw.est.csrattrs.decode_csrattrs: DER CsrAttrs, and every property
of the result."""

from __future__ import annotations

import sys
from collections.abc import Callable

from harness import exercise_csrattrs

NAME = "csrattrs"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    from est_hw.errors import EstHwError
    from est_hw.est.csrattrs import CsrAttributes, decode_csrattrs

    def one_input(data: bytes) -> None:
        try:
            attributes = decode_csrattrs(data)
        except EstHwError:
            return
        if not isinstance(attributes, CsrAttributes):
            raise TypeError(f"decode_csrattrs returned {type(attributes).__name__}")
        exercise_csrattrs(attributes)

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

"""Fuzz target: est_hw.est.codec.decode_certs_only: a certs-only PKCS#7 body, raw or base64.

The first byte picks the layout: even -> the rest as is (raw DER is accepted too),
odd -> the rest base64-encoded as a server would send it, so the PKCS#7 parser sees
mutated DER either way."""

from __future__ import annotations

import sys
from collections.abc import Callable

NAME = "certs_only"


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    import base64
    import contextlib
    import warnings

    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import Encoding

    from est_hw.errors import EstHwError
    from est_hw.est.codec import decode_certs_only

    def one_input(data: bytes) -> None:
        if not data:
            return
        body = data[1:] if data[0] % 2 == 0 else base64.encodebytes(data[1:])
        # cryptography warns (BER fallback, a non-positive serial): not findings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                certs = decode_certs_only(body, what="the fuzzed /cacerts response")
            except EstHwError:
                return
            if not certs or not all(isinstance(c, x509.Certificate) for c in certs):
                raise AssertionError("decode_certs_only returned no certificate, no error")
            for cert in certs:  # what the client reads next must not blow up either
                cert.subject.rfc4514_string()
                cert.issuer.rfc4514_string()
                _ = (cert.serial_number, cert.not_valid_before_utc, cert.not_valid_after_utc)
                _ = (cert.extensions, cert.public_bytes(Encoding.DER))
                with contextlib.suppress(UnsupportedAlgorithm):  # let through (see codec)
                    cert.public_key()

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

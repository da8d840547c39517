"""DER decoding (X.690) with pyasn1, failing only with ``PyAsn1Error``.

Every decode of what a server sent goes through :func:`decode` with a schema: a
schemaless decode of hostile input can raise ``AttributeError`` inside pyasn1, and
``bytes()`` of an INTEGER it returns makes that many zero bytes.
"""

from __future__ import annotations

from typing import Any


def decode(substrate: Any, spec: Any) -> tuple[Any, bytes]:
    """pyasn1's DER decode of ``substrate`` as ``spec``; the value and the bytes after it.

    pyasn1 raises OverflowError, not PyAsn1Error, for a primitive value whose length is
    2**63 or more (found by fuzz/fuzz_signed_data.py): raised here as the PyAsn1Error of
    any other malformed input.
    """
    from pyasn1.codec.der import decoder
    from pyasn1.error import PyAsn1Error

    try:
        value, rest = decoder.decode(substrate, asn1Spec=spec)
    except OverflowError:
        raise PyAsn1Error("a length of 2**63 bytes or more") from None
    return value, bytes(rest)

"""The key schedule pieces behind tls-exporter (RFC 8446 section 7, RFC 5246 section 5)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from tlslite.mathtls import PRF_1_2, PRF_1_2_SHA384
from tlslite.utils.cryptomath import HKDF_expand_label

from est_hw.tls.bindings import derive_secret, hkdf_expand_label, tls12_exporter, tls12_prf


def test_derive_secret_rfc8448_vector() -> None:
    # RFC 8448 section 3 (simple 1-RTT): Derive-Secret(early secret, "derived", "").
    early = bytes.fromhex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a")
    derived = derive_secret("sha256", early, b"derived", hashlib.sha256().digest())
    assert derived.hex() == "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"


@pytest.mark.parametrize("hash_name", ["sha256", "sha384"])
@pytest.mark.parametrize("length", [12, 32, 48, 100])
def test_hkdf_expand_label_agrees_with_tlslite(hash_name: str, length: int) -> None:
    secret, context = os.urandom(48), os.urandom(32)
    ours = hkdf_expand_label(hash_name, secret, b"exporter", context, length)
    theirs = HKDF_expand_label(
        bytearray(secret), b"exporter", bytearray(context), length, hash_name
    )
    assert ours == bytes(theirs)


@pytest.mark.parametrize(("hash_name", "prf"), [("sha256", PRF_1_2), ("sha384", PRF_1_2_SHA384)])
def test_tls12_prf_agrees_with_tlslite(hash_name: str, prf: Callable[..., bytearray]) -> None:
    secret, seed = os.urandom(48), os.urandom(64)
    ours = tls12_prf(hash_name, secret, b"EXPORTER-Channel-Binding", seed, 32)
    assert ours == bytes(prf(bytearray(secret), b"EXPORTER-Channel-Binding", bytearray(seed), 32))


def test_tls12_exporter_empty_context_differs_from_no_context() -> None:
    secret, client, server = os.urandom(48), os.urandom(32), os.urandom(32)

    def export(context: bytes | None) -> bytes:
        return tls12_exporter(
            hash_name="sha256",
            master_secret=secret,
            client_random=client,
            server_random=server,
            label=b"EXPORTER-Channel-Binding",
            context=context,
            length=32,
        )

    assert export(b"") != export(None)
    assert export(None) == tls12_prf(
        "sha256", secret, b"EXPORTER-Channel-Binding", client + server, 32
    )

"""The fuzz targets of fuzz/ as quick tests: every target's one-input function over its
seed corpus and a few thousand Hypothesis inputs (random bytes and mutated seeds).

The one-input functions let nothing escape but :class:`est_hw.errors.EstHwError`, so any
other exception here is a finding (see docs/fuzzing.md).  Set ``EST_HW_FUZZ_EXAMPLES`` for
more examples per target; long sessions use atheris (``python fuzz/fuzz_<name>.py``).
Regression tests for what the fuzzers found are at the end.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = ("base64", "certs_only", "csrattrs", "csrattrs_response", "retry_after", "media_type")
EXAMPLES = int(os.environ.get("EST_HW_FUZZ_EXAMPLES", "600"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _load_module(name: str) -> ModuleType:
    if str(FUZZ_DIR) not in sys.path:
        sys.path.insert(0, str(FUZZ_DIR))  # the targets import their harness as a script does
    spec = importlib.util.spec_from_file_location(f"est_hw_fuzz_{name}", FUZZ_DIR / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@cache
def one_input(target: str) -> Callable[[bytes], None]:
    function: Callable[[bytes], None] = _load_module(f"fuzz_{target}").load()
    return function


@cache
def seeds() -> dict[str, list[bytes]]:
    """The seeds make_corpus.py writes, plus any committed ones under fuzz/corpus/."""
    made: dict[str, list[bytes]] = _load_module("make_corpus").seeds()
    for target in TARGETS:
        directory = FUZZ_DIR / "corpus" / target
        if directory.is_dir():
            made[target] += [p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()]
    return made


def test_every_decoder_has_a_target() -> None:
    assert {p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py")} == set(TARGETS)


def test_committed_seeds_are_small() -> None:
    for path in (FUZZ_DIR / "corpus").rglob("*"):
        assert not path.is_file() or path.stat().st_size <= 10 * 1024, path


@pytest.mark.parametrize("target", TARGETS)
def test_seed_corpus(target: str) -> None:
    run = one_input(target)
    inputs = seeds()[target]
    assert inputs
    for data in inputs:
        run(data)


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    """A seed of ``target`` with a few random edits: flips, cuts, splices, insertions."""
    data = bytearray(draw(st.sampled_from(seeds()[target])))
    for _ in range(draw(st.integers(1, 4))):
        edit = draw(st.sampled_from(["flip", "set", "cut", "insert", "truncate", "dup"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if edit == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif edit == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x30, 0x80, 0x81, 0x82, 0xFF, 0x0A, 0x3D]))
        elif edit == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif edit == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif edit == "truncate":
            del data[at:]
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


def _inputs(target: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=512), mutated(target))


def _property(target: str) -> Callable[[], None]:
    @FUZZ
    @given(data=_inputs(target))
    def check(data: bytes) -> None:
        one_input(target)(data)

    return check


test_fuzz_base64 = _property("base64")
test_fuzz_certs_only = _property("certs_only")
test_fuzz_csrattrs = _property("csrattrs")
test_fuzz_csrattrs_response = _property("csrattrs_response")
test_fuzz_retry_after = _property("retry_after")
test_fuzz_media_type = _property("media_type")


# --- regressions: what the fuzzers found ------------------------------------------------------


def _pkcs7_with_bad_subject() -> Iterator[bytes]:
    """certs-only bodies whose certificate's subject CN is tagged 0x08 (EXTERNAL): the
    PKCS#7 loads, the subject fails only when read (fuzz_certs_only, first session)."""
    from est_hw.est.codec import encode_base64_body, encode_certs_only
    from est_hw.testing.ca import TestCa

    ca = TestCa.create("fuzz regression")
    for cert in (ca.root_cert, ca.issuing_cert):
        subject = cert.subject.public_bytes()
        spoiled = subject.replace(bytes.fromhex("06035504030c"), bytes.fromhex("060355040308"))
        yield encode_base64_body(encode_certs_only([cert]).replace(subject, spoiled))


def test_regression_certificate_with_a_malformed_subject() -> None:
    from est_hw.errors import ProtocolError
    from est_hw.est.codec import decode_certs_only

    for body in _pkcs7_with_bad_subject():
        with pytest.raises(ProtocolError, match=r"certificate 1 of 1 is malformed"):
            decode_certs_only(body, what="the /cacerts response")
        one_input("certs_only")(b"\x00" + body)  # the target's own check passes too


def test_unsupported_key_algorithm_is_not_malformed() -> None:
    """A well-formed certificate with a key type cryptography lacks is let through."""
    from cryptography.exceptions import UnsupportedAlgorithm

    from est_hw.est.codec import decode_certs_only, encode_base64_body
    from est_hw.testing.ca import TestCa
    from est_hw.testing.hostile import _unsupported_key_certificate
    from est_hw.testing.wire import pkcs7_certs_only

    ca = TestCa.create("fuzz regression")
    odd = _unsupported_key_certificate(ca.issuing_cert)
    body = encode_base64_body(pkcs7_certs_only([odd, ca.root_cert]))
    certs = decode_certs_only(body, what="the /cacerts response")
    assert len(certs) == 2
    with pytest.raises(UnsupportedAlgorithm):
        [cert.public_key() for cert in certs]

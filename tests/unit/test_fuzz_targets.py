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
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"
TARGETS = (
    "base64",
    "certs_only",
    "csrattrs",
    "csrattrs_response",
    "retry_after",
    "media_type",
    "signed_data",
)
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
test_fuzz_signed_data = _property("signed_data")


def test_signed_data_seeds_verify_against_the_target_candidates() -> None:
    """Every signed_data seed that parses is correctly signed, and verifies with the
    candidates fuzz_signed_data passes (its fixed CA), also those without certificates:
    so the target's verify step is reached with inputs that pass it."""
    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    candidates = _load_module("fuzz_signed_data").fixed_ca().chain
    verified = []
    for der in seeds()["signed_data"]:
        try:
            signed = parse_signed_data(der, what="a seed")
        except ProtocolError:
            continue  # a near-miss seed
        signer = signed.verify(candidates)
        assert signer in (*signed.certificates, *candidates)
        verified.append(signed)
    assert len(verified) >= 8
    assert any(not signed.certificates for signed in verified)  # found among the candidates


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


def _signed_data(edit: Callable[[Any], None] | None = None, *, rsa_pss: bool = False) -> bytes:
    """A SignedData (signed attributes, the signer's certificate in it) by the fixed CA of
    fuzz_signed_data, or by an RSA-PSS signer it issues; ``edit`` changes its SignerInfo
    (a pyasn1 object) before it is encoded again."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    from cryptography.hazmat.primitives.serialization import pkcs7
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5652

    target = _load_module("fuzz_signed_data")
    ca = target.fixed_ca()
    cert, key = target.rsa_signer(ca) if rsa_pss else (ca.issuing_cert, ca.issuing_key)
    pss = padding.PSS(padding.MGF1(hashes.SHA256()), 32) if rsa_pss else None
    der = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(b"a server-generated key")
        .add_signer(cert, key, hashes.SHA256(), rsa_padding=pss)
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )
    if edit is None:
        return der
    info, _ = decoder.decode(der, asn1Spec=rfc5652.ContentInfo())
    signed, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
    edit(signed["signerInfos"][0])
    info["content"] = encoder.encode(signed)
    return bytes(encoder.encode(info))


def _set_attribute(oid: str, value_hex: str) -> Callable[[Any], None]:
    """An edit of a SignerInfo: the signed attribute ``oid`` gets the value ``value_hex``."""
    from pyasn1_modules import rfc5652

    def edit(signer: Any) -> None:
        for attr in signer["signedAttrs"]:
            if str(attr["attrType"]) == oid:
                attr["attrValues"][0] = rfc5652.AttributeValue(hexValue=value_hex)
                return
        raise AssertionError(f"no signed attribute {oid}")

    return edit


MESSAGE_DIGEST, SMIME_CAPABILITIES = "1.2.840.113549.1.9.4", "1.2.840.113549.1.9.15"


def test_regression_signed_attribute_with_an_empty_sequence_in_it() -> None:
    """A signed attribute value holding an empty SEQUENCE (``30 02 30 00``): pyasn1's
    schemaless decode raised AttributeError ('NoneType' object has no attribute
    'tagSet') from parse_signed_data (fuzz_signed_data, first session: in the
    smimeCapabilities attribute).  An attribute est-hw does not read is not decoded now;
    the two it reads are decoded by their type."""
    from est_hw.errors import ProtocolError, TrustError
    from est_hw.est.signed_data import parse_signed_data

    ignored = _signed_data(_set_attribute(SMIME_CAPABILITIES, "30023000"))
    with pytest.raises(TrustError, match="the signature does not verify"):
        parse_signed_data(ignored, what="t").verify()  # the attributes were changed
    read = _signed_data(_set_attribute(MESSAGE_DIGEST, "30023000"))
    with pytest.raises(ProtocolError, match="t: the signed message-digest attribute is malformed"):
        parse_signed_data(read, what="t")
    for der in (ignored, read):
        one_input("signed_data")(der)


@pytest.mark.parametrize("value", ["0201ff", "020a01" + "00" * 9], ids=["-1", "2**72"])
def test_regression_message_digest_that_is_an_integer(value: str) -> None:
    """A messageDigest attribute that is an INTEGER: bytes() of it made that many zero
    bytes, or raised ValueError (negative count) or OverflowError (found reading the code
    the fuzzer pointed at).  It must be an OCTET STRING (RFC 5652 section 11.2)."""
    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    der = _signed_data(_set_attribute(MESSAGE_DIGEST, value))
    with pytest.raises(ProtocolError, match="the signed message-digest attribute is malformed"):
        parse_signed_data(der, what="t")


@pytest.mark.filterwarnings("ignore:PKCS#7 certificates could not be parsed as DER")
@pytest.mark.parametrize("salt", [-1, 2**70, 2049])
def test_regression_pss_salt_length_out_of_range(salt: int) -> None:
    """RSASSA-PSS parameters with a negative or huge saltLength: cryptography's PSS raised
    ValueError ('salt_length must be zero or greater') or, at verify, OverflowError
    (found reading the code the fuzzer pointed at)."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1.type import univ
    from pyasn1_modules import rfc4055

    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    def edit(signer: Any) -> None:
        algorithm = signer["signatureAlgorithm"]
        params, _ = decoder.decode(
            bytes(algorithm["parameters"]), asn1Spec=rfc4055.RSASSA_PSS_params()
        )
        params["saltLength"] = salt
        algorithm["parameters"] = univ.Any(encoder.encode(params))

    signed = parse_signed_data(_signed_data(edit, rsa_pss=True), what="t")
    with pytest.raises(ProtocolError, match="t: the RSASSA-PSS salt length is negative or too"):
        signed.verify()
    assert parse_signed_data(_signed_data(rsa_pss=True), what="t").verify()  # unedited


def test_regression_signed_data_certificate_with_a_malformed_issuer() -> None:
    """The signer's certificate, sent in the SignedData, with its issuer CN tagged 0x0D
    (RELATIVE-OID): cryptography loads it, and the signer look-up's read of its issuer
    raised a bare ValueError (fuzz_signed_data, first session).  Every certificate of the
    SignedData is read at once now, as decode_certs_only does."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    der = _signed_data()
    cert = parse_signed_data(der, what="t").certificates[0].public_bytes(Encoding.DER)
    issuer = bytes.fromhex("06035504030c")  # commonName, UTF8String
    assert cert in der and cert.count(issuer) == 2  # issuer, then subject
    spoiled = cert.replace(issuer, bytes.fromhex("06035504030d"), 1)
    with pytest.raises(ProtocolError, match="certificate 1 of 1 of the SignedData is malformed"):
        parse_signed_data(der.replace(cert, spoiled), what="t")
    one_input("signed_data")(der.replace(cert, spoiled))


def test_regression_rsa_key_too_small_for_pss() -> None:
    """The signer's certificate in the SignedData with an RSA key too small for the
    RSASSA-PSS digest (256 bits, SHA-256): cryptography's verify raised ValueError ('Digest
    too large for key size'), found reading the code the fuzzer pointed at."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from pyasn1.codec.der import decoder, encoder
    from pyasn1_modules import rfc5280, rfc5652

    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    small = rsa.RSAPublicNumbers(65537, (1 << 255) + 3).public_key()
    spki_der = small.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    spki, _ = decoder.decode(spki_der, asn1Spec=rfc5280.SubjectPublicKeyInfo())
    info, _ = decoder.decode(_signed_data(rsa_pss=True), asn1Spec=rfc5652.ContentInfo())
    signed, _ = decoder.decode(info["content"], asn1Spec=rfc5652.SignedData())
    signed["certificates"][0]["certificate"]["tbsCertificate"]["subjectPublicKeyInfo"] = spki
    info["content"] = encoder.encode(signed)
    der = bytes(encoder.encode(info))
    content = parse_signed_data(der, what="t")
    assert content.certificates[0].public_key().key_size == 256
    with pytest.raises(ProtocolError, match="t: the signer's key cannot check this signature"):
        content.verify()
    one_input("signed_data")(der)


@pytest.mark.parametrize("version", [3, 61])
def test_regression_signed_data_certificate_with_an_invalid_version(version: int) -> None:
    """The signer's certificate, sent in the SignedData, with version 3 or 61 (v4, v62;
    RFC 5280 has v1 to v3, encoded 0 to 2): load_der_pkcs7_certificates raised
    cryptography.x509.InvalidVersion, which is not a ValueError (fuzz_signed_data, first
    session, under Hypothesis and atheris both)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    der = _signed_data()
    cert = parse_signed_data(der, what="t").certificates[0].public_bytes(Encoding.DER)
    v3 = bytes.fromhex("a003020102")  # [0] EXPLICIT Version v3
    assert cert.count(v3) == 1
    spoiled = der.replace(cert, cert.replace(v3, v3[:-1] + bytes([version])))
    with pytest.raises(
        ProtocolError, match=f"certificates do not load: InvalidVersion: {version} "
    ):
        parse_signed_data(spoiled, what="t")
    one_input("signed_data")(spoiled)


HUGE_LENGTH = "88" + "80" + "00" * 7  # a DER length of 2**63, in 8 octets


def test_regression_length_of_2_63_bytes() -> None:
    """A ContentInfo whose [0] content claims 2**63 bytes: pyasn1 raised OverflowError
    ('cannot fit 'int' into an index-sized integer') instead of PyAsn1Error
    (fuzz_signed_data, first atheris session)."""
    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    der = bytes.fromhex("3015 06092a864886f70d010702 a0" + HUGE_LENGTH)  # SEQUENCE, OID, [0]
    with pytest.raises(ProtocolError, match=r"does not parse: a length of 2\*\*63 bytes or more"):
        parse_signed_data(der, what="t")
    one_input("signed_data")(der)


@pytest.mark.filterwarnings("ignore:PKCS#7 certificates could not be parsed as DER")
def test_regression_length_of_2_63_bytes_in_the_pss_parameters() -> None:
    """The same in the RSASSA-PSS parameters, which are decoded only by verify: a
    saltLength INTEGER of 2**63 bytes."""
    from pyasn1.type import univ

    from est_hw.errors import ProtocolError
    from est_hw.est.signed_data import parse_signed_data

    def edit(signer: Any) -> None:
        params = bytes.fromhex("300c a20a 02" + HUGE_LENGTH)  # saltLength [2] INTEGER
        signer["signatureAlgorithm"]["parameters"] = univ.Any(params)

    der = _signed_data(edit, rsa_pss=True)
    with pytest.raises(ProtocolError, match=r"PSS parameters do not parse: a length of 2\*\*63"):
        parse_signed_data(der, what="t").verify()
    one_input("signed_data")(der)

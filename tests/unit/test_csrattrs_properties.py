"""Property tests for CSR attributes: round trips, and no crash on any input."""

from __future__ import annotations

import base64
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from est_hw.errors import EstHwError
from est_hw.est.messages import (
    OID_CERTIFICATION_REQUEST_INFO_TEMPLATE,
    OID_EC_PUBLIC_KEY,
    OID_EXTENSION_REQUEST,
    CsrAttribute,
    CsrAttributes,
    NameAttributeTemplate,
    RequestedExtension,
    decode_csrattrs,
    decode_csrattrs_response,
    encode_csrattrs,
    encode_extensions_value,
    encode_integer_value,
    encode_oid_value,
    encode_template,
)

FAST = settings(max_examples=200, deadline=None)
SLOW = settings(max_examples=60, deadline=None)  # pyasn1 encoding is slow-ish

oids = st.builds(
    lambda first, second, rest: ".".join(map(str, [first, second, *rest])),
    st.integers(0, 2),
    st.integers(0, 39),
    st.lists(st.integers(0, 2**40), max_size=6),
)
values = st.one_of(
    oids.map(encode_oid_value),
    st.integers(-(2**70), 2**70).map(encode_integer_value),
    st.binary(max_size=40).map(lambda b: bytes([0x04, len(b)]) + b),  # OCTET STRING
)
attributes = st.builds(CsrAttribute, oids, st.lists(values, min_size=1, max_size=4).map(tuple))
items = st.lists(st.one_of(oids, attributes), max_size=8)
extensions = st.builds(
    RequestedExtension, oids, st.booleans(), st.binary(max_size=30).map(lambda b: b"\x04\x00" + b)
)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return bytes([0x0C, len(data)]) + data if len(data) < 0x80 else b"\x0c\x00"


def _exercise(attrs: CsrAttributes) -> None:
    """Every interpretation of a decoded response, which must not raise either."""
    _ = (
        attrs.challenge_password_requested,
        attrs.key_type_hint,
        attrs.signature_hash_hint,
        attrs.extension_requests,
    )
    if attrs.template is not None:
        _ = attrs.template.key_type_hint
        for rdn in attrs.template.subject or ():
            for entry in rdn:
                _ = entry.text


def _refused_or_usable(decode: Callable[[bytes], CsrAttributes], data: bytes) -> None:
    """``decode(data)`` raises an est-hw error, or its result can be used without raising."""
    try:
        attrs = decode(data)
    except EstHwError:
        return
    _exercise(attrs)


@SLOW
@given(items)
def test_encode_decode_round_trip(case: list[str | CsrAttribute]) -> None:
    attrs = decode_csrattrs(encode_csrattrs(case))
    assert attrs.oids == tuple(item for item in case if isinstance(item, str))
    expected = [item for item in case if isinstance(item, CsrAttribute)]
    assert [a.oid for a in attrs.attributes] == [a.oid for a in expected]
    for got, want in zip(attrs.attributes, expected, strict=True):
        assert sorted(got.values) == sorted(want.values)  # a SET: DER sorts it
    _exercise(attrs)


@SLOW
@given(st.lists(extensions, min_size=1, max_size=5))
def test_extension_request_round_trip(exts: list[RequestedExtension]) -> None:
    body = encode_csrattrs([CsrAttribute(OID_EXTENSION_REQUEST, (encode_extensions_value(exts),))])
    first: dict[str, RequestedExtension] = {}
    for ext in exts:
        first.setdefault(ext.oid, ext)
    assert decode_csrattrs(body).extension_requests == tuple(first.values())


@SLOW
@given(
    st.lists(
        st.lists(
            st.builds(
                NameAttributeTemplate,
                oids,
                st.one_of(st.none(), st.text(max_size=20).map(_utf8)),
            ),
            min_size=1,
            max_size=3,
        ),
        max_size=4,
    ),
    st.lists(extensions.map(lambda e: RequestedExtension(e.oid, e.critical, None)), max_size=3),
)
def test_template_round_trip(
    subject: list[list[NameAttributeTemplate]], exts: list[RequestedExtension]
) -> None:
    der = encode_template(
        subject=subject,
        public_key_algorithm=OID_EC_PUBLIC_KEY,
        public_key_parameters=encode_oid_value("1.3.132.0.35"),
        extensions=exts,
    )
    attrs = decode_csrattrs(
        encode_csrattrs([CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (der,))])
    )
    assert attrs.template is not None
    assert attrs.key_type_hint == "ec-p521"
    assert attrs.template.subject is not None
    assert [sorted(rdn, key=repr) for rdn in attrs.template.subject] == [
        sorted(rdn, key=repr) for rdn in subject
    ]
    _exercise(attrs)


@FAST
@given(st.binary(max_size=300))
def test_decode_csrattrs_raises_only_est_hw_errors(der: bytes) -> None:
    _refused_or_usable(decode_csrattrs, der)


@FAST
@given(st.binary(max_size=300))
def test_decode_csrattrs_of_sequence_shaped_bytes(data: bytes) -> None:
    der = (
        bytes([0x30, len(data)]) + data
        if len(data) < 0x80
        else b"\x30\x81" + bytes([len(data)]) + data
    )
    _refused_or_usable(decode_csrattrs, der)


SEEDS = [
    base64.b64decode(
        "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJ"
        "BgcrBgEBAQEWBggqhkjOPQQDAw=="
    ),
    base64.b64decode(
        "MGgwZgYJKoZIhvcNAQkOMVkwVzBVBgNVHREBAf8ESzBJoEcGCCsGAQUFBwgKoDsWOXJmYzg5OTQrZmQ3MzlmYzIz"
        "YzM0NDAxMTIyMzM0NDU1MDAwMDAwMDArQGFjcC5leGFtcGxlLmNvbQ=="
    ),
    encode_csrattrs(
        [
            CsrAttribute(
                OID_CERTIFICATION_REQUEST_INFO_TEMPLATE,
                (
                    encode_template(
                        subject=[[NameAttributeTemplate("2.5.4.3")]],
                        public_key_algorithm="1.2.840.113549.1.1.1",
                        subject_public_key=b"\x30\x06\x02\x01\x7f\x02\x01\x03",
                        extensions=[RequestedExtension("2.5.29.17", True, b"\x30\x00")],
                    ),
                ),
            )
        ]
    ),
]


@FAST
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    st.integers(0, 10_000),
)
def test_decode_csrattrs_of_mutated_examples(
    seed: bytes, flips: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(seed)
    for where, byte in flips:
        data[where % len(data)] = byte
    _refused_or_usable(decode_csrattrs, bytes(data[: max(1, len(data) - cut % 4)]))


@FAST
@given(st.binary(max_size=300))
def test_decode_csrattrs_response_raises_only_est_hw_errors(body: bytes) -> None:
    _refused_or_usable(decode_csrattrs_response, body)

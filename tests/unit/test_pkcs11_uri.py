"""PKCS#11 URIs (RFC 7512): the examples of its section 3, refusals, and a round trip."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from est_hw.errors import UsageError
from est_hw.keys.uri import OBJECT_TYPES, Pkcs11Uri, format_pkcs11_uri, parse_pkcs11_uri


def _joined(*lines: str) -> str:
    """RFC 7512 section 3 prints long URIs over several lines; the URI has no whitespace."""
    return "".join(line.strip() for line in lines)


RFC_7512_EXAMPLES = [
    ("pkcs11:", Pkcs11Uri()),
    ("pkcs11:object=my-pubkey;type=public", Pkcs11Uri(object="my-pubkey", type="public")),
    (
        "pkcs11:object=my-key;type=private?pin-source=file:/etc/token",
        Pkcs11Uri(object="my-key", type="private", pin_source="file:/etc/token"),
    ),
    (
        _joined(
            "pkcs11:token=The%20Software%20PKCS%2311%20Softtoken;",
            "       manufacturer=Snake%20Oil,%20Inc.;",
            "       model=1.0;",
            "       object=my-certificate;",
            "       type=cert;",
            "       id=%69%95%3E%5C%F4%BD%EC%91;",
            "       serial=",
            "       ?pin-source=file:/etc/token_pin",
        ),
        Pkcs11Uri(
            token="The Software PKCS#11 Softtoken",
            manufacturer="Snake Oil, Inc.",
            model="1.0",
            object="my-certificate",
            type="cert",
            id=bytes.fromhex("69953e5cf4bdec91"),
            serial="",
            pin_source="file:/etc/token_pin",
        ),
    ),
    (
        "pkcs11:object=my-sign-key;type=private?module-name=mypkcs11",
        Pkcs11Uri(object="my-sign-key", type="private", module_name="mypkcs11"),
    ),
    (
        "pkcs11:object=my-sign-key;type=private?module-path=/mnt/libmypkcs11.so.1",
        Pkcs11Uri(object="my-sign-key", type="private", module_path="/mnt/libmypkcs11.so.1"),
    ),
    ("pkcs11:slot-description=Sun%20Metaslot", Pkcs11Uri(slot_description="Sun Metaslot")),
    (
        _joined(
            "pkcs11:library-manufacturer=Snake%20Oil,%20Inc.;",
            "       library-description=Soft%20Token%20Library;",
            "       library-version=1.23",
        ),
        Pkcs11Uri(
            library_manufacturer="Snake Oil, Inc.",
            library_description="Soft Token Library",
            library_version="1.23",
        ),
    ),
    (
        _joined(
            "pkcs11:token=My%20token%25%20created%20by%20Joe;",
            "       library-version=3;",
            "       id=%01%02%03%Ba%dd%Ca%fe%04%05%06",
        ),
        Pkcs11Uri(
            token="My token% created by Joe",
            library_version="3",
            id=bytes.fromhex("010203baddcafe040506"),
        ),
    ),
    (
        "pkcs11:token=A%20name%20with%20a%20substring%20%25%3B;object=my-certificate;type=cert",
        Pkcs11Uri(token="A name with a substring %;", object="my-certificate", type="cert"),
    ),
    (
        _joined(
            "pkcs11:token=Name%20with%20a%20small%20A%20with%20acute:%20%C3%A1;",
            "       object=my-certificate;",
            "       type=cert",
        ),
        Pkcs11Uri(
            token="Name with a small A with acute: \u00e1", object="my-certificate", type="cert"
        ),
    ),
]


@pytest.mark.parametrize(("text", "expected"), RFC_7512_EXAMPLES, ids=lambda x: str(x)[:40])
def test_rfc_7512_examples(text: str, expected: Pkcs11Uri) -> None:
    uri = parse_pkcs11_uri(text)
    assert uri == expected
    assert parse_pkcs11_uri(format_pkcs11_uri(uri)) == uri


def test_pin_value_is_refused_without_echoing_it() -> None:
    rfc_example = _joined(
        "pkcs11:token=Software%20PKCS%2311%20softtoken;",
        "       manufacturer=Snake%20Oil,%20Inc.",
        "       ?pin-value=the-pin",
    )
    for text in (
        rfc_example,
        "pkcs11:token=x;pin-value=the-pin",
        "pkcs11:token=bad value?pin-value=the-pin",  # refused first, before other errors
        "pkcs11:?PIN-VALUE=the-pin",
    ):
        with pytest.raises(UsageError) as caught:
            parse_pkcs11_uri(text)
        assert str(caught.value) == "pin-value in a PKCS#11 URI is refused; use --pin-source"
        assert "the-pin" not in str(caught.value)


def test_vendor_attributes() -> None:
    """``x-`` attributes are ignored; any other unknown name is refused, by name.

    RFC 7512 section 3's last example uses ``vendor-aaa``/``vendor-bbb``; est-hw refuses
    them rather than ignore a selection criterion it does not understand.
    """
    rfc_example = _joined(
        "pkcs11:token=my-token;",
        "       object=my-certificate;",
        "       type=cert;",
        "       vendor-aaa=value-a",
        "       ?pin-source=file:/etc/token_pin",
        "       &vendor-bbb=value-b",
    )
    with pytest.raises(UsageError, match="'vendor-aaa'"):
        parse_pkcs11_uri(rfc_example)
    with pytest.raises(UsageError, match="'vendor-bbb'"):
        parse_pkcs11_uri("pkcs11:token=my-token?vendor-bbb=value-b")
    assert parse_pkcs11_uri(
        "pkcs11:token=my-token;x-aaa=value-a?pin-source=file:/p&x-bbb=value-b"
    ) == Pkcs11Uri(token="my-token", pin_source="file:/p")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("pkcs12:token=a", "starts with 'pkcs11:'"),
        ("token=a", "starts with 'pkcs11:'"),
        ("pkcs11:token", "name=value"),
        ("pkcs11:token=a;;object=b", "name=value"),
        ("pkcs11:=a", "name=value"),
        ("pkcs11:token=a;token=b", "'token' appears more than once"),
        ("pkcs11:token=a%2", "bad percent-escape"),
        ("pkcs11:token=a%zz", "bad percent-escape"),
        ("pkcs11:token=My Token", "percent-encode it as %20"),
        ("pkcs11:object=a/b", "percent-encode it as %2F"),
        ("pkcs11:token=\u00e1", "percent-encode it as %C3%A1"),
        ("pkcs11:token=a#frag", "fragment"),
        ("pkcs11:token=%ff", "not valid UTF-8"),
        ("pkcs11:slot-id=0x5", "decimal"),
        ("pkcs11:slot-id=", "decimal"),
        ("pkcs11:type=key", "type must be one of"),
        ("pkcs11:library-version=1.2.3", "library-version"),
        ("pkcs11:pin-source=file:/x", "belongs in the query"),
        ("pkcs11:?token=a", "belongs in the path"),
        ("pkcs11:tok.en=a", "letters, digits"),
        ("pkcs11:colour=blue", "unknown PKCS#11 URI attribute 'colour'"),
    ],
)
def test_malformed_uris_are_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_pkcs11_uri(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_lenient_spellings() -> None:
    assert parse_pkcs11_uri("  PKCS11:TOKEN=a;Type=PRIVATE;slot-id=42 \n") == Pkcs11Uri(
        token="a", type="private", slot_id=42
    )
    assert parse_pkcs11_uri("pkcs11:object=a=b&c").object == "a=b&c"
    assert parse_pkcs11_uri("pkcs11:?module-path=/usr/lib/x.so").module_path == "/usr/lib/x.so"


def test_format() -> None:
    uri = Pkcs11Uri(
        token="My Token",
        serial="9594b3acb8db2511",
        slot_id=953885969,
        object="device;1",
        type="private",
        id=b"\x01\xab",
        module_path="/usr/lib/softhsm/libsofthsm2.so",
        pin_source="file:/run/pin",
    )
    assert format_pkcs11_uri(uri) == (
        "pkcs11:slot-id=953885969;token=My%20Token;serial=9594b3acb8db2511;"
        "object=device%3B1;type=private;id=%01%AB"
        "?pin-source=file:/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so"
    )
    assert str(uri) == format_pkcs11_uri(uri)


def test_invalid_fields_are_refused_at_construction() -> None:
    with pytest.raises(UsageError):
        Pkcs11Uri(type="secret")
    with pytest.raises(UsageError):
        Pkcs11Uri(slot_id=-1)
    with pytest.raises(UsageError):
        Pkcs11Uri(library_version="v1")


_text = st.none() | st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_uris = st.builds(
    Pkcs11Uri,
    token=_text,
    manufacturer=_text,
    serial=_text,
    model=_text,
    library_manufacturer=_text,
    library_description=_text,
    library_version=st.none() | st.from_regex(r"\A[0-9]{1,3}(\.[0-9]{1,3})?\Z"),
    slot_manufacturer=_text,
    slot_description=_text,
    slot_id=st.none() | st.integers(min_value=0, max_value=2**64 - 1),
    object=_text,
    type=st.none() | st.sampled_from(sorted(OBJECT_TYPES)),
    id=st.none() | st.binary(max_size=32),
    pin_source=_text,
    module_name=_text,
    module_path=_text,
)


@given(_uris)
def test_round_trip(uri: Pkcs11Uri) -> None:
    text = format_pkcs11_uri(uri)
    assert text.isascii()
    assert not any(c.isspace() for c in text)
    assert parse_pkcs11_uri(text) == uri

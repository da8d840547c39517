"""--subject and --san parsing (RFC 4514, RFC 5280 4.2.1.6)."""

from __future__ import annotations

import ipaddress

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st

from est_hw.errors import UsageError
from est_hw.x509.names import format_san, parse_san, parse_subject, serial_hex


def test_subject_rfc4514() -> None:
    name = parse_subject("CN=dev-1,O=Example Corp,C=DE")
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dev-1"
    assert name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Example Corp"


@pytest.mark.parametrize("bad", ["", "   ", "CN", "nonsense=1=2", "FOO=bar"])
def test_bad_subject_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="subject"):
        parse_subject(bad)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("dns:dev1.example", x509.DNSName("dev1.example")),
        ("ip:192.0.2.7", x509.IPAddress(ipaddress.ip_address("192.0.2.7"))),
        ("ip:2001:db8::1", x509.IPAddress(ipaddress.ip_address("2001:db8::1"))),
        ("uri:urn:dev:1", x509.UniformResourceIdentifier("urn:dev:1")),
        ("email:ops@example.org", x509.RFC822Name("ops@example.org")),
        ("DNS:upper.example", x509.DNSName("upper.example")),
    ],
)
def test_san_kinds(text: str, expected: x509.GeneralName) -> None:
    assert parse_san(text) == expected


@pytest.mark.parametrize("bad", ["dev1", "dns:", "ip:300.1.1.1", "email:nobody", "x400:foo"])
def test_bad_san_is_a_usage_error(bad: str) -> None:
    with pytest.raises(UsageError, match="--san"):
        parse_san(bad)


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True))
def test_dns_san_round_trip(host: str) -> None:
    assert parse_san(format_san(parse_san(f"dns:{host}"))) == x509.DNSName(host)


@given(st.ip_addresses())
def test_ip_san_round_trip(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert parse_san(format_san(x509.IPAddress(address))) == x509.IPAddress(address)


def test_serial_hex_is_whole_octets() -> None:
    assert serial_hex(0xFA3) == "0fa3"
    assert serial_hex(0x0FA399904C7F25BF829D994E3C327F19B9176EE0) == (
        "0fa399904c7f25bf829d994e3c327f19b9176ee0"
    )
    assert serial_hex(1) == "01"
    assert serial_hex(0) == "00"


@given(st.integers(min_value=0, max_value=2**160 - 1))
def test_serial_hex_round_trips(serial: int) -> None:
    text = serial_hex(serial)
    assert int(text, 16) == serial
    assert len(text) % 2 == 0
    assert text == text.lower()
    assert len(text) <= 2 or not text.startswith("00")

"""Names and numbers of certificates as users write and read them.

Subjects are RFC 4514 strings; SANs are ``dns:NAME``, ``ip:ADDR``, ``uri:URI`` or
``email:ADDR`` (RFC 5280 section 4.2.1.6 GeneralName choices); serial numbers are shown
as the hex of their octets (:func:`serial_hex`).
"""

from __future__ import annotations

import ipaddress

from cryptography import x509

from est_hw.errors import UsageError

_SAN_KINDS = ("dns", "ip", "uri", "email")


def parse_subject(text: str) -> x509.Name:
    """Parse an RFC 4514 distinguished name such as ``CN=dev-1,O=Example``.

    :raises UsageError: when the string is not a valid RFC 4514 name.
    """
    try:
        name = x509.Name.from_rfc4514_string(text)
    except ValueError as exc:
        raise UsageError(f"invalid subject {text!r}: {exc}") from None
    if not text.strip():
        raise UsageError("the subject is empty")
    return name


def parse_san(text: str) -> x509.GeneralName:
    """Parse one ``KIND:VALUE`` subjectAltName (RFC 5280 section 4.2.1.6).

    :raises UsageError: for an unknown kind or a malformed value.
    """
    kind, sep, value = text.partition(":")
    kind = kind.strip().lower()
    if not sep or kind not in _SAN_KINDS or not value:
        raise UsageError(f"invalid --san {text!r}: expected one of dns:, ip:, uri:, email:")
    if kind == "dns":
        return x509.DNSName(value)
    if kind == "ip":
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            raise UsageError(f"invalid --san {text!r}: not an IP address") from None
    if kind == "uri":
        return x509.UniformResourceIdentifier(value)
    if "@" not in value:
        raise UsageError(f"invalid --san {text!r}: not an e-mail address")
    return x509.RFC822Name(value)


def format_san(name: x509.GeneralName) -> str:
    """The ``KIND:VALUE`` form of a GeneralName (inverse of :func:`parse_san`)."""
    if isinstance(name, x509.DNSName):
        return f"dns:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"ip:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"uri:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    return f"other:{name!r}"


def serial_hex(serial: int) -> str:
    """A certificate serial number (RFC 5280 section 4.1.2.2) as lower-case hex of whole
    octets, e.g. ``0fa3`` rather than ``fa3``: the digits ``openssl x509 -serial`` and
    pkcs11-tool print, so reports can be matched with them."""
    return serial.to_bytes(max(1, (serial.bit_length() + 7) // 8), "big").hex()

"""PKCS#11 URIs (RFC 7512): parse and format.

A PKCS#11 URI names a library, slot, token or object: ``pkcs11:token=My%20Token;
object=device;type=private?module-path=/usr/lib/softhsm/libsofthsm2.so``.

The path component holds ``;``-separated attributes (RFC 7512 section 2.3:
``library-*``, ``slot-*``, ``token``, ``manufacturer``, ``model``, ``serial``, ``object``,
``type``, ``id``) and the query component ``&``-separated ones (``pin-source``,
``module-name``, ``module-path``).  Values are percent-encoded UTF-8 (``id`` is raw bytes).

est-hw is strict where RFC 7512 lets a consumer choose:

* ``pin-value`` is refused: a secret in a URI ends up in argv, shell history and logs.
  The PIN comes from ``--pin-source`` (env, file or prompt) instead.
* An attribute est-hw does not know is refused, unless its name starts with ``x-``
  (vendor attributes, ignored).  Ignoring an unknown selection attribute could select the
  wrong token or key.
* Each attribute appears at most once, path attributes only in the path and query
  attributes only in the query.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from est_hw.errors import UsageError

SCHEME = "pkcs11:"

#: ``type`` values of RFC 7512 section 2.3 (CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_CERTIFICATE,
#: CKO_SECRET_KEY, CKO_DATA).
OBJECT_TYPES = frozenset({"public", "private", "cert", "secret-key", "data"})

# attribute name in the URI -> dataclass field, in the order format_pkcs11_uri writes them.
_PATH_ATTRS: dict[str, str] = {
    "library-manufacturer": "library_manufacturer",
    "library-description": "library_description",
    "library-version": "library_version",
    "slot-manufacturer": "slot_manufacturer",
    "slot-description": "slot_description",
    "slot-id": "slot_id",
    "token": "token",
    "manufacturer": "manufacturer",
    "model": "model",
    "serial": "serial",
    "object": "object",
    "type": "type",
    "id": "id",
}
_QUERY_ATTRS: dict[str, str] = {
    "pin-source": "pin_source",
    "module-name": "module_name",
    "module-path": "module_path",
}
_PIN_VALUE_REFUSED = "pin-value in a PKCS#11 URI is refused; use --pin-source"

# RFC 3986 unreserved characters plus pk11-path-res-avail / pk11-query-res-avail
# (RFC 7512 section 2.3).  Anything else must be percent-encoded.
_UNRESERVED = string.ascii_letters + string.digits + "-._~"
_PATH_RAW = frozenset(_UNRESERVED + ":[]@!$'()*+,=&")
_QUERY_RAW = frozenset(_UNRESERVED + ":[]@!$'()*+,=/?|;")
# What format_pkcs11_uri leaves unencoded: a conservative subset of the above.
_PATH_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,")
_QUERY_SAFE = frozenset(_UNRESERVED + ":[]@!$'()*+,/|")

_NAME_RE = re.compile(r"[A-Za-z0-9_-]+\Z")  # pk11-v-attr-nm-char
_VERSION_RE = re.compile(r"[0-9]+(\.[0-9]+)?\Z")  # pk11-library-version
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True)
class Pkcs11Uri:
    """A parsed PKCS#11 URI (RFC 7512).  ``None`` means the attribute is absent.

    :param token: token label (``CK_TOKEN_INFO.label``).
    :param manufacturer: token manufacturer (``CK_TOKEN_INFO.manufacturerID``).
    :param serial: token serial number (``CK_TOKEN_INFO.serialNumber``).
    :param model: token model (``CK_TOKEN_INFO.model``).
    :param library_manufacturer: ``CK_INFO.manufacturerID``.
    :param library_description: ``CK_INFO.libraryDescription``.
    :param library_version: ``CK_INFO.libraryVersion`` as ``"M"`` or ``"M.N"``.
    :param slot_manufacturer: ``CK_SLOT_INFO.manufacturerID``.
    :param slot_description: ``CK_SLOT_INFO.slotDescription``.
    :param slot_id: the ``CK_SLOT_ID`` (a decimal number in the URI).
    :param object: object label (``CKA_LABEL``).
    :param type: object class: public, private, cert, secret-key or data (``CKA_CLASS``).
    :param id: object id (``CKA_ID``), raw bytes.
    :param pin_source: where the PIN comes from (query attribute, RFC 7512 section 2.4).
    :param module_name: PKCS#11 module name without path and suffix (query attribute).
    :param module_path: PKCS#11 module file (query attribute).
    """

    token: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    model: str | None = None
    library_manufacturer: str | None = None
    library_description: str | None = None
    library_version: str | None = None
    slot_manufacturer: str | None = None
    slot_description: str | None = None
    slot_id: int | None = None
    object: str | None = None
    type: str | None = None
    id: bytes | None = None
    pin_source: str | None = None
    module_name: str | None = None
    module_path: str | None = None

    def __post_init__(self) -> None:
        if self.type is not None and self.type not in OBJECT_TYPES:
            raise UsageError(
                f"PKCS#11 URI type must be one of {', '.join(sorted(OBJECT_TYPES))}, "
                f"not {self.type!r} (RFC 7512 section 2.3)"
            )
        if self.slot_id is not None and self.slot_id < 0:
            raise UsageError(f"PKCS#11 URI slot-id must not be negative, got {self.slot_id}")
        if self.library_version is not None and not _VERSION_RE.match(self.library_version):
            raise UsageError(
                "PKCS#11 URI library-version must be 'M' or 'M.N' (decimal), "
                f"got {self.library_version!r}"
            )

    def __str__(self) -> str:
        return format_pkcs11_uri(self)


def parse_pkcs11_uri(text: str) -> Pkcs11Uri:
    """Parse a PKCS#11 URI (RFC 7512 section 2.3).

    Leading and trailing whitespace is ignored; the scheme name is case-insensitive
    (RFC 3986 section 3.1), and so are attribute names and ``type`` values (RFC 5234
    section 2.3 quoted strings).

    :raises UsageError: with one line naming the problem, for anything malformed, for an
        unknown attribute that is not an ``x-`` vendor attribute, and for ``pin-value``.
    """
    text = text.strip()
    if text[: len(SCHEME)].lower() != SCHEME:
        raise UsageError("a PKCS#11 URI starts with 'pkcs11:' (RFC 7512 section 2.3)")
    body = text[len(SCHEME) :]
    path, _, query = body.partition("?")
    path_items = _split(path, ";")
    query_items = _split(query, "&")
    # Refuse a secret before looking at anything else, so that no later error message
    # could quote a part of the URI near it.
    if any(name.lower() == "pin-value" for name, _ in path_items + query_items):
        raise UsageError(_PIN_VALUE_REFUSED)
    if "#" in body:
        raise UsageError("a PKCS#11 URI has no fragment: percent-encode '#' as %23")

    values: dict[str, str | int | bytes] = {}
    for component, items, known, other, raw in (
        ("path", path_items, _PATH_ATTRS, _QUERY_ATTRS, _PATH_RAW),
        ("query", query_items, _QUERY_ATTRS, _PATH_ATTRS, _QUERY_RAW),
    ):
        for name, value in items:
            _check_name(name, component)
            key = name.lower()
            if key.startswith("x-"):
                continue  # vendor-specific attribute: ignored
            if key in other:
                place = "query (after '?')" if component == "path" else "path (before '?')"
                raise UsageError(f"PKCS#11 URI attribute '{key}' belongs in the {place}")
            if key not in known:
                raise UsageError(
                    f"unknown PKCS#11 URI attribute '{name}' (RFC 7512 section 2.3; "
                    "vendor attributes must start with 'x-')"
                )
            if known[key] in values:
                raise UsageError(f"PKCS#11 URI attribute '{key}' appears more than once")
            values[known[key]] = _convert(key, _percent_decode(value, key, raw))
    return Pkcs11Uri(**values)  # type: ignore[arg-type]


def format_pkcs11_uri(uri: Pkcs11Uri) -> str:
    """Format ``uri`` as a PKCS#11 URI string (RFC 7512 section 2.3).

    Attributes come in a fixed order; text is percent-encoded UTF-8 except for unreserved
    and a few safe characters; ``id`` is percent-encoded byte by byte as RFC 7512
    section 2.3 recommends.  ``parse_pkcs11_uri(format_pkcs11_uri(u)) == u``.
    """
    path = [
        f"{name}={_encode_value(getattr(uri, attr), _PATH_SAFE)}"
        for name, attr in _PATH_ATTRS.items()
        if getattr(uri, attr) is not None
    ]
    query = [
        f"{name}={_encode_value(getattr(uri, attr), _QUERY_SAFE)}"
        for name, attr in _QUERY_ATTRS.items()
        if getattr(uri, attr) is not None
    ]
    return SCHEME + ";".join(path) + ("?" + "&".join(query) if query else "")


def _split(component: str, separator: str) -> list[tuple[str, str]]:
    """Split a path or query component into (name, raw value) pairs."""
    if component == "":
        return []
    items = []
    for item in component.split(separator):
        name, equals, value = item.partition("=")
        if not equals or not name:
            shown = item if len(item) <= 40 else item[:40] + "..."
            raise UsageError(f"PKCS#11 URI attribute {shown!r} is not of the form name=value")
        items.append((name, value))
    return items


def _check_name(name: str, component: str) -> None:
    if not _NAME_RE.match(name):
        raise UsageError(
            f"PKCS#11 URI {component} attribute name {name!r} has characters other than "
            "letters, digits, '-' and '_'"
        )


def _percent_decode(value: str, name: str, raw_ok: frozenset[str]) -> bytes:
    """Decode ``%XX`` escapes (RFC 3986 section 2.1); refuse characters that must be escaped."""
    out = bytearray()
    i = 0
    while i < len(value):
        char = value[i]
        if char == "%":
            escape = value[i + 1 : i + 3]
            if len(escape) != 2 or not set(escape) <= _HEX:
                bad = value[i : i + 3]
                raise UsageError(f"PKCS#11 URI attribute '{name}' has a bad percent-escape {bad!r}")
            out.append(int(escape, 16))
            i += 3
            continue
        if char not in raw_ok:
            raise UsageError(
                f"PKCS#11 URI attribute '{name}' contains {char!r}: percent-encode it "
                f"as {_encode_value(char, frozenset())}"
            )
        out += char.encode("ascii")
        i += 1
    return bytes(out)


def _convert(name: str, raw: bytes) -> str | int | bytes:
    """Turn a decoded value into the field's type."""
    if name == "id":
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"PKCS#11 URI attribute '{name}' is not valid UTF-8") from None
    if name == "slot-id":
        if not text.isascii() or not text.isdigit():
            raise UsageError(f"PKCS#11 URI slot-id must be a decimal number, got {text!r}")
        return int(text)
    if name == "type":
        return text.lower()
    return text


def _encode_value(value: str | int | bytes, safe: frozenset[str]) -> str:
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return "".join(f"%{byte:02X}" for byte in value)
    return "".join(
        chr(byte) if chr(byte) in safe else f"%{byte:02X}" for byte in value.encode("utf-8")
    )

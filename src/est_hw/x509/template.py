"""Turning the server's CSR attributes into the CSR (RFC 7030 4.5.2, RFC 8951 4, RFC 9908).

What is understood is applied: the requested key type and curve/size, the signature hash,
extension requests with values, and the RFC 9908 template's subject (fixed values taken,
values to fill taken from ``--subject``).  What is not understood is ignored with a note;
the server has the last word on the request anyway.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from est_hw.errors import ProtocolError, UsageError
from est_hw.est.csrattrs import CsrAttributes, NameAttributeTemplate
from est_hw.keys.base import KeyType
from est_hw.x509.csr import CsrContent

#: Key type hints (est.csrattrs) that map to a key est-hw makes.
_KEY_TYPES = {
    "ec": KeyType.EC_P256,
    "ec-p256": KeyType.EC_P256,
    "ec-p384": KeyType.EC_P384,
    "rsa": KeyType.RSA_2048,
    "rsa-2048": KeyType.RSA_2048,
    "rsa-3072": KeyType.RSA_3072,
    "rsa-4096": KeyType.RSA_4096,
}
_HASHES = ("sha256", "sha384", "sha512")


@dataclass(frozen=True)
class CsrPlan:
    """The key to make and the CSR to sign, after the server's attributes are applied.

    :param notes: what was asked for and not honoured, one line each (logged as warnings).
    """

    key_type: KeyType
    content: CsrContent
    notes: tuple[str, ...] = ()


def apply_csrattrs(
    attributes: CsrAttributes,
    *,
    key_type: KeyType,
    key_type_explicit: bool,
    content: CsrContent,
) -> CsrPlan:
    """Apply the CSR attributes the server asked for.

    :param key_type_explicit: the user chose the key type (``--key-type``); a conflicting
        server wish is then noted, not followed.
    :raises UsageError: when the RFC 9908 template needs a subject attribute the user did
        not give.
    """
    notes: list[str] = []
    key_type = _key_type(attributes.key_type_hint, key_type, key_type_explicit, notes)
    hash_hint = attributes.signature_hash_hint
    if hash_hint in _HASHES:
        content = dataclasses.replace(content, signature_hash=hash_hint)
    elif hash_hint is not None:
        notes.append(f"the server asks for {hash_hint} signatures; using SHA-2")
    content = _with_extensions(attributes, content, notes)
    if attributes.template is not None and attributes.template.subject is not None:
        subject = _template_subject(attributes.template.subject, content.subject, notes)
        content = dataclasses.replace(content, subject=subject)
    return CsrPlan(key_type, content, tuple(notes))


def _key_type(hint: str | None, chosen: KeyType, explicit: bool, notes: list[str]) -> KeyType:
    if hint is None:
        return chosen
    wanted = _KEY_TYPES.get(hint)
    if wanted is None:
        notes.append(f"the server asks for a {hint} key, which est-hw does not make")
        return chosen
    if hint in ("ec", "rsa") and chosen.is_ec == (hint == "ec"):
        return chosen  # any curve / any size: the chosen one fits
    if explicit and wanted != chosen:
        notes.append(f"the server asks for a {hint} key; keeping --key-type {chosen.value}")
        return chosen
    return wanted


def _with_extensions(
    attributes: CsrAttributes, content: CsrContent, notes: list[str]
) -> CsrContent:
    present = {ext.oid.dotted_string for ext in content.extensions}
    if content.sans:
        present.add(ExtensionOID.SUBJECT_ALTERNATIVE_NAME.dotted_string)
    added: list[x509.Extension[x509.ExtensionType]] = []
    for requested in attributes.extension_requests:
        if requested.oid in present:
            continue
        if not requested.value:
            notes.append(f"the server leaves extension {requested.oid} to the client; not added")
            continue
        oid = x509.ObjectIdentifier(requested.oid)
        value = x509.UnrecognizedExtension(oid, requested.value)
        added.append(x509.Extension(oid, requested.critical, value))
        present.add(requested.oid)
    return dataclasses.replace(content, extensions=(*content.extensions, *added))


def _template_subject(
    template: tuple[tuple[NameAttributeTemplate, ...], ...],
    given: x509.Name,
    notes: list[str],
) -> x509.Name:
    """RFC 9908 3.4: fixed values are used as they are; the others come from ``given``."""
    rdns: list[x509.RelativeDistinguishedName] = []
    used: set[str] = set()
    for rdn in template:
        attrs: list[x509.NameAttribute[Any]] = []
        for item in rdn:
            oid = x509.ObjectIdentifier(item.oid)
            if item.value is not None:
                text = item.text
                if text is None:
                    notes.append(f"template subject value of {item.oid} is not a string; skipped")
                    continue
                attrs.append(_name_attribute(oid, text))
                continue
            mine = given.get_attributes_for_oid(oid)
            if not mine:
                raise UsageError(
                    f"the server's CSR template asks for {_name_of(oid)} in the subject: "
                    "give it in --subject"
                )
            attrs.append(mine[0])
            used.add(item.oid)
        if attrs:
            try:
                rdns.append(x509.RelativeDistinguishedName(attrs))
            except ValueError as exc:
                raise ProtocolError(f"the /csrattrs template has an invalid RDN: {exc}") from None
    extra = [a for a in given if a.oid.dotted_string not in used]
    if extra:
        names = ", ".join(_name_of(a.oid) for a in extra)
        notes.append(f"the server's CSR template has no place for {names}; left out")
    return x509.Name(rdns)


_SHORT_NAMES = {
    NameOID.COMMON_NAME: "CN",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COUNTRY_NAME: "C",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


def _name_attribute(oid: x509.ObjectIdentifier, text: str) -> x509.NameAttribute[Any]:
    """A subject attribute the server's template fixes, checked as cryptography checks it
    (e.g. countryName of two letters, commonName of at most 64 characters)."""
    try:
        return x509.NameAttribute(oid, text)
    except ValueError as exc:
        raise ProtocolError(
            f"the /csrattrs template asks for an invalid {_name_of(oid)}: {exc}"
        ) from None


def _name_of(oid: x509.ObjectIdentifier) -> str:
    return _SHORT_NAMES.get(oid, oid.dotted_string)

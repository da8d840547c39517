"""CSR Attributes: decode and encode the /csrattrs body (RFC 7030 4.5.2, RFC 8951 4, RFC 9908).

The body is ``CsrAttrs ::= SEQUENCE SIZE (0..MAX) OF AttrOrOID`` where ``AttrOrOID`` is a
bare OBJECT IDENTIFIER or an ``Attribute { type, values SET OF ANY }`` (RFC 7030 section
4.5.2 as restated by RFC 8951 section 4).  What it *means* was clarified by RFC 9908:

* section 3 (extending RFC 7030 4.5.2): an ``id-ExtensionReq`` (1.2.840.113549.1.9.14)
  attribute holds exactly one ``Extensions`` value the client is to put in its CSR.  The
  example in RFC 7030 section 4.5.2 (repeated in RFC 8951 section 4) does not do that -- its
  extensionRequest value is a bare OID (macAddress) -- and RFC 9908 calls it incorrect, so
  such values are kept raw and ignored here.
* key type conventions (RFC 7030 4.5.2 example; RFC 9908 examples): an ``id-ecPublicKey``
  attribute whose value is a named-curve OID asks for that curve; an ``rsaEncryption``
  attribute whose value is an INTEGER asks for that modulus size; bare algorithm OIDs
  (``ecdsa-with-SHA384``, ``sha256WithRSAEncryption``) name the signature algorithm.
* section 3.4: the ``id-aa-certificationRequestInfoTemplate`` attribute
  (1.2.840.113549.1.9.16.2.61) carries a ``CertificationRequestInfoTemplate``: a partly
  filled-in CertificationRequestInfo (subject RDNs with optional values, an optional
  SubjectPublicKeyInfo template, and attributes that may hold ``id-ExtensionReq`` or
  ``id-aa-extensionReqTemplate`` (1.2.840.113549.1.9.16.2.62) extensions whose values are
  optional).  A client that understands the template uses it and ignores the other
  elements.  The OIDs (TBD in the drafts) are the IANA assignments as used by
  pyasn1-alt-modules' rfc9908 module; pyasn1-modules 0.4.2 has no RFC 9908 module, so the
  template's ASN.1 is declared here from RFC 9908 Appendix A (IMPLICIT TAGS).

Unknown OIDs and attributes are kept (``oids``, ``attributes``) and otherwise ignored
(RFC 7030 section 4.5.2 as replaced by RFC 8951 section 4: the client MUST ignore any OID or
attribute it does not recognize).  Malformed DER is a :class:`~est_hw.errors.ProtocolError`.
pyasn1 is imported on first use (about 90 ms).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from est_hw.errors import ProtocolError
from est_hw.est.codec import decode_base64_body

__all__ = [
    "OID_CERTIFICATION_REQUEST_INFO_TEMPLATE",
    "OID_CHALLENGE_PASSWORD",
    "OID_EC_PUBLIC_KEY",
    "OID_ED448",
    "OID_ED25519",
    "OID_EXTENSION_REQUEST",
    "OID_EXTENSION_REQ_TEMPLATE",
    "OID_RSA_ENCRYPTION",
    "CsrAttribute",
    "CsrAttributes",
    "CsrTemplate",
    "NameAttributeTemplate",
    "RequestedExtension",
    "decode_csrattrs",
    "decode_csrattrs_response",
    "encode_csrattrs",
    "encode_extensions_value",
    "encode_integer_value",
    "encode_oid_value",
    "encode_template",
]

#: PKCS#9 challengePassword (RFC 2985 section 5.4.1); RFC 7030 section 3.5 puts the TLS
#: channel binding in it.
OID_CHALLENGE_PASSWORD = "1.2.840.113549.1.9.7"  # noqa: S105 (an OID, not a password)
#: PKCS#9 extensionRequest, ``id-ExtensionReq`` (RFC 2985 section 5.4.2; RFC 9908 section 3).
OID_EXTENSION_REQUEST = "1.2.840.113549.1.9.14"
#: ``id-ecPublicKey`` (RFC 5480 section 2.1.1).
OID_EC_PUBLIC_KEY = "1.2.840.10045.2.1"
#: ``rsaEncryption`` (RFC 8017 appendix C).
OID_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
#: ``id-Ed25519`` and ``id-Ed448`` (RFC 8410 section 3).
OID_ED25519 = "1.3.101.112"
OID_ED448 = "1.3.101.113"
#: ``id-aa-certificationRequestInfoTemplate`` (RFC 9908 section 3.4 and appendix A).
OID_CERTIFICATION_REQUEST_INFO_TEMPLATE = "1.2.840.113549.1.9.16.2.61"
#: ``id-aa-extensionReqTemplate`` (RFC 9908 section 3.4 and appendix A).
OID_EXTENSION_REQ_TEMPLATE = "1.2.840.113549.1.9.16.2.62"

_WHAT = "the /csrattrs response"

# Named curves (RFC 5480 section 2.1.1.1, RFC 5639) -> key type hint.
_CURVES = {
    "1.2.840.10045.3.1.7": "ec-p256",
    "1.3.132.0.34": "ec-p384",
    "1.3.132.0.35": "ec-p521",
    "1.3.132.0.33": "ec-p224",
    "1.3.132.0.10": "ec-secp256k1",
    "1.3.36.3.3.2.8.1.1.7": "ec-brainpoolP256r1",
    "1.3.36.3.3.2.8.1.1.11": "ec-brainpoolP384r1",
    "1.3.36.3.3.2.8.1.1.13": "ec-brainpoolP512r1",
}
_KEY_ALGORITHMS = {
    OID_EC_PUBLIC_KEY: "ec",
    OID_RSA_ENCRYPTION: "rsa",
    OID_ED25519: "ed25519",
    OID_ED448: "ed448",
}
# Signature algorithm or hash OID -> hash name (RFC 5758 3.2, RFC 8017 appendix C,
# RFC 5754 2; bare hash OIDs appear in RFC 7030 appendix A.2's example).
_HASHES = {
    "1.2.840.10045.4.1": "sha1",
    "1.2.840.10045.4.3.1": "sha224",
    "1.2.840.10045.4.3.2": "sha256",
    "1.2.840.10045.4.3.3": "sha384",
    "1.2.840.10045.4.3.4": "sha512",
    "1.2.840.113549.1.1.5": "sha1",
    "1.2.840.113549.1.1.14": "sha224",
    "1.2.840.113549.1.1.11": "sha256",
    "1.2.840.113549.1.1.12": "sha384",
    "1.2.840.113549.1.1.13": "sha512",
    "1.3.14.3.2.26": "sha1",
    "2.16.840.1.101.3.4.2.4": "sha224",
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
}
# Signature algorithm OID -> the key family it implies.
_SIGNATURE_KEY_FAMILIES = {
    **{oid: "ec" for oid in _HASHES if oid.startswith("1.2.840.10045.4.")},
    **{oid: "rsa" for oid in _HASHES if oid.startswith("1.2.840.113549.1.1.")},
    "1.2.840.113549.1.1.10": "rsa",  # RSASSA-PSS
    OID_ED25519: "ed25519",
    OID_ED448: "ed448",
}
_OID_TEXT = re.compile(r"[0-2](\.(0|[1-9][0-9]*))+")


# --- the ASN.1, loaded on first use --------------------------------------------------------


@functools.cache
def _asn1() -> SimpleNamespace:
    """pyasn1, pyasn1-modules and the RFC 9908 template specs (imported on first use)."""
    from pyasn1.codec.der import decoder, encoder
    from pyasn1.type import char, namedtype, tag, univ
    from pyasn1_modules import rfc5280, rfc5652, rfc7030

    def implicit(spec: Any, number: int) -> Any:
        return spec.subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number)
        )

    # RFC 9908 appendix A.  NameTemplate is a CHOICE with one untagged alternative, so on
    # the wire it is the RDNSequenceTemplate itself.
    single_attribute = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("type", univ.ObjectIdentifier()),
            namedtype.OptionalNamedType("value", univ.Any()),
        )
    )
    rdn = univ.SetOf(componentType=single_attribute)
    rdn_sequence = univ.SequenceOf(componentType=rdn)
    spki = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("algorithm", rfc5280.AlgorithmIdentifier()),
            namedtype.OptionalNamedType("subjectPublicKey", univ.BitString()),
        )
    )
    # Attributes may be an empty SET here (RFC 2986's Attributes has no lower bound).
    attributes = univ.SetOf(componentType=rfc5652.Attribute())
    template = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("version", univ.Integer()),
            namedtype.OptionalNamedType("subject", rdn_sequence),
            namedtype.OptionalNamedType("subjectPKInfo", implicit(spki, 0)),
            namedtype.NamedType("attributes", implicit(attributes, 1)),
        )
    )
    extension_template = univ.Sequence(
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("extnID", univ.ObjectIdentifier()),
            namedtype.DefaultedNamedType("critical", univ.Boolean(False)),
            namedtype.OptionalNamedType("extnValue", univ.OctetString()),
        )
    )
    extension_templates = univ.SequenceOf(componentType=extension_template)
    rsa_public_key = univ.Sequence(  # RFC 8017 appendix A.1.1
        componentType=namedtype.NamedTypes(
            namedtype.NamedType("modulus", univ.Integer()),
            namedtype.NamedType("publicExponent", univ.Integer()),
        )
    )
    return SimpleNamespace(
        decoder=decoder,
        encoder=encoder,
        univ=univ,
        char=char,
        rfc5280=rfc5280,
        rfc5652=rfc5652,
        rfc7030=rfc7030,
        single_attribute=single_attribute,
        rdn=rdn,
        rdn_sequence=rdn_sequence,
        spki=implicit(spki, 0),
        template=template,
        extension_template=extension_template,
        extension_templates=extension_templates,
        rsa_public_key=rsa_public_key,
    )


def _decode_exactly(der: bytes, spec: Any) -> Any:
    """Decode ``der`` with ``spec``; any failure or trailing data raises ``ValueError``."""
    asn = _asn1()
    try:
        value, rest = asn.decoder.decode(der, asn1Spec=spec)
    except Exception as exc:  # PyAsn1Error, RecursionError, ...: the input is malformed
        lines = str(exc).strip().splitlines()
        detail = lines[0] if lines else type(exc).__name__
        raise ValueError(detail[:120]) from exc
    if rest:
        raise ValueError(f"{len(rest)} bytes after the end of the value")
    return value


def _oid_value(der: bytes) -> str | None:
    """The dotted OID that ``der`` encodes, or None when it is not an OBJECT IDENTIFIER."""
    try:
        return str(_decode_exactly(der, _asn1().univ.ObjectIdentifier()))
    except ValueError:
        return None


def _integer_value(der: bytes) -> int | None:
    """The INTEGER that ``der`` encodes, or None."""
    try:
        return int(_decode_exactly(der, _asn1().univ.Integer()))
    except ValueError:
        return None


def _curve_hint(curve_oid: str) -> str:
    return _CURVES.get(curve_oid, f"ec-{curve_oid}")


def _check_oid(oid: str) -> str:
    if not _OID_TEXT.fullmatch(oid):
        raise ValueError(f"not a dotted OBJECT IDENTIFIER: {oid!r}")
    return oid


# --- the data model ------------------------------------------------------------------------


@dataclass(frozen=True)
class CsrAttribute:
    """One ``Attribute`` of a CsrAttrs (or of a template): its type and DER-encoded values.

    ``values`` holds the complete DER (tag, length, contents) of each value, in the order
    of the SET.  RFC 7030 section 4.5.2: the values are defined by ``oid``.
    """

    oid: str
    values: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class RequestedExtension:
    """An X.509 extension the server wants in the CSR (RFC 9908 sections 3 and 3.4).

    :ivar oid: the extnID, dotted.
    :ivar critical: the critical flag (DEFAULT FALSE).
    :ivar value: the extnValue contents, i.e. the DER of the extension's own value (for
        subjectAltName, the GeneralNames SEQUENCE) -- ready for
        ``x509.UnrecognizedExtension(ObjectIdentifier(oid), value)``.  None when an
        RFC 9908 ExtensionTemplate leaves the value to the client.  An empty value (b""),
        the CRMF-template way of saying "fill this in" (RFC 9483 4.3.3), is kept as is.
    """

    oid: str
    critical: bool = False
    value: bytes | None = None


@dataclass(frozen=True)
class NameAttributeTemplate:
    """One ``SingleAttributeTemplate`` of an RFC 9908 subject template (section 3.4).

    :ivar oid: the attribute type, e.g. ``"2.5.4.3"`` (commonName).
    :ivar value: the DER of the value the client MUST use, or None when the client is
        expected to fill in a value of this type.
    """

    oid: str
    value: bytes | None = None

    @property
    def text(self) -> str | None:
        """``value`` as text when it is a character string (UTF8String, PrintableString...)."""
        if self.value is None:
            return None
        asn = _asn1()
        try:
            decoded, rest = asn.decoder.decode(self.value)
        except Exception:  # not decodable: no text form
            return None
        if rest or not isinstance(decoded, asn.char.AbstractCharacterString):
            return None
        return str(decoded)


def _dedupe(extensions: Iterable[RequestedExtension]) -> tuple[RequestedExtension, ...]:
    """The first extension of each extnID (RFC 9908 section 3: an extnID appears at most once)."""
    seen: set[str] = set()
    kept: list[RequestedExtension] = []
    for extension in extensions:
        if extension.oid not in seen:
            seen.add(extension.oid)
            kept.append(extension)
    return tuple(kept)


def _decode_extensions(
    der: bytes, *, template: bool = False, single: bool = False
) -> list[RequestedExtension]:
    """An ``Extensions`` value (with ``template``, an ``ExtensionTemplates``; with
    ``single``, one lone ``Extension``).

    :raises ValueError: ``der`` is not one.
    """
    asn = _asn1()
    if single:
        decoded = [_decode_exactly(der, asn.rfc5280.Extension())]
    else:
        spec = asn.extension_templates if template else asn.rfc5280.Extensions()
        decoded = _decode_exactly(der, spec)
    result: list[RequestedExtension] = []
    for extension in decoded:
        value = extension["extnValue"]
        result.append(
            RequestedExtension(
                oid=str(extension["extnID"]),
                critical=bool(extension["critical"]),
                value=bytes(value) if value.isValue else None,
            )
        )
    return result


@dataclass(frozen=True)
class CsrTemplate:
    """An RFC 9908 ``CertificationRequestInfoTemplate`` (section 3.4), decoded.

    :ivar der: the DER of the template, as the server sent it.
    :ivar version: the version field (RFC 9908: MUST be 0, v1; others are kept, not judged).
    :ivar subject: the subject RDNs in order, each a tuple of attribute templates; None when
        the server places no requirement on the subject.
    :ivar public_key_algorithm: the dotted algorithm OID of ``subjectPKInfo``, or None when
        the server places no requirement on the key.
    :ivar public_key_parameters: the DER of the algorithm parameters (for EC, the curve OID).
    :ivar rsa_key_size: for rsaEncryption, the modulus size of the dummy public key the
        server put in ``subjectPublicKey`` to say which size it wants.
    :ivar extensions: the extensions asked for through ``id-ExtensionReq`` or
        ``id-aa-extensionReqTemplate`` attributes, first occurrence of each extnID.
    :ivar attributes: every attribute of the template's ``attributes`` field, raw.
    """

    der: bytes
    version: int = 0
    subject: tuple[tuple[NameAttributeTemplate, ...], ...] | None = None
    public_key_algorithm: str | None = None
    public_key_parameters: bytes | None = None
    rsa_key_size: int | None = None
    extensions: tuple[RequestedExtension, ...] = ()
    attributes: tuple[CsrAttribute, ...] = ()

    @property
    def key_type_hint(self) -> str | None:
        """The key type the template asks for, in :attr:`CsrAttributes.key_type_hint` form."""
        algorithm = self.public_key_algorithm
        if algorithm == OID_EC_PUBLIC_KEY:
            params = self.public_key_parameters
            curve = _oid_value(params) if params else None
            return _curve_hint(curve) if curve else "ec"
        if algorithm == OID_RSA_ENCRYPTION:
            return f"rsa-{self.rsa_key_size}" if self.rsa_key_size else "rsa"
        if algorithm is None:
            return None
        return _KEY_ALGORITHMS.get(algorithm)


def _decode_template(der: bytes) -> CsrTemplate:
    asn = _asn1()
    try:
        decoded = _decode_exactly(der, asn.template)
        subject = None
        if decoded["subject"].isValue:
            subject = tuple(
                tuple(
                    NameAttributeTemplate(
                        oid=str(item["type"]),
                        value=bytes(item["value"]) if item["value"].isValue else None,
                    )
                    for item in rdn
                )
                for rdn in decoded["subject"]
            )
        algorithm = parameters = None
        rsa_bits = None
        spki = decoded["subjectPKInfo"]
        if spki.isValue:
            algorithm = str(spki["algorithm"]["algorithm"])
            params = spki["algorithm"]["parameters"]
            parameters = bytes(params) if params.isValue else None
            key = spki["subjectPublicKey"]
            if algorithm == OID_RSA_ENCRYPTION and key.isValue:
                rsa_bits = _rsa_modulus_bits(bytes(key.asOctets()))
        attributes = tuple(
            CsrAttribute(str(attr["attrType"]), tuple(bytes(v) for v in attr["attrValues"]))
            for attr in decoded["attributes"]
        )
        extensions: list[RequestedExtension] = []
        for attribute in attributes:
            if attribute.oid in (OID_EXTENSION_REQUEST, OID_EXTENSION_REQ_TEMPLATE):
                for value in attribute.values:
                    extensions += _decode_extensions(
                        value, template=attribute.oid == OID_EXTENSION_REQ_TEMPLATE
                    )
        return CsrTemplate(
            der=der,
            version=int(decoded["version"]),
            subject=subject,
            public_key_algorithm=algorithm,
            public_key_parameters=parameters,
            rsa_key_size=rsa_bits,
            extensions=_dedupe(extensions),
            attributes=attributes,
        )
    except ValueError as exc:
        raise ProtocolError(
            f"{_WHAT} has a malformed CertificationRequestInfoTemplate (RFC 9908): {exc}"
        ) from exc


def _rsa_modulus_bits(key: bytes) -> int | None:
    """The modulus size of a (dummy) RSAPublicKey, or None when it is not one."""
    try:
        decoded = _decode_exactly(key, _asn1().rsa_public_key)
    except ValueError:
        return None
    bits = int(decoded["modulus"]).bit_length()
    return bits or None


@dataclass(frozen=True)
class CsrAttributes:
    """A decoded /csrattrs response (RFC 7030 section 4.5.2, RFC 9908).

    :ivar oids: the bare OIDs, in order (dotted strings).
    :ivar attributes: the attributes, in order, with their raw DER values (the template
        attribute included).
    :ivar template: the RFC 9908 CertificationRequestInfoTemplate, when the server sent one
        (the first, if it sent several).

    The properties interpret these.  RFC 9908 (co-existence with RFC 7030-style elements)
    says a client that understands the template MUST use it and ignore the other elements,
    so when there is a template, :attr:`key_type_hint` and :attr:`extension_requests` come
    from it alone.  :attr:`signature_hash_hint` and :attr:`challenge_password_requested`
    still look at the other elements, because a template cannot express a hash and a
    challengePassword request only makes the client add the channel binding the server
    asked for.  An empty body (or HTTP 204/404, RFC 7030 section 4.5.2) is
    ``CsrAttributes()``: no request at all.
    """

    oids: tuple[str, ...] = ()
    attributes: tuple[CsrAttribute, ...] = ()
    template: CsrTemplate | None = None

    def find_attribute(self, oid: str) -> CsrAttribute | None:
        """The first attribute of type ``oid``, or None."""
        return next((attr for attr in self.attributes if attr.oid == oid), None)

    @property
    def challenge_password_requested(self) -> bool:
        """challengePassword (1.2.840.113549.1.9.7) is asked for, as an OID or attribute.

        Looks at the bare OIDs, the attributes and the template's attributes.  RFC 7030
        section 3.5 uses it for the tls-unique channel binding.
        """
        types = set(self.oids) | {attr.oid for attr in self.attributes}
        if self.template is not None:
            types |= {attr.oid for attr in self.template.attributes}
        return OID_CHALLENGE_PASSWORD in types

    @property
    def key_type_hint(self) -> str | None:
        """The key type the server asks for, or None when it asks for none.

        ``"ec-p256"``, ``"ec-p384"``, ``"ec-p521"`` (and ``"ec-p224"``, ``"ec-secp256k1"``,
        ``"ec-brainpoolP256r1"``...; ``"ec-<dotted OID>"`` for any other curve), ``"ec"``
        (any curve), ``"rsa-<bits>"``, ``"rsa"`` (any size), ``"ed25519"``, ``"ed448"``.

        With a template, it is the template's ``subjectPKInfo`` (RFC 9908 section 3.4).
        Otherwise, most specific first: an ``id-ecPublicKey`` attribute whose value is a
        curve OID or an ``rsaEncryption`` attribute whose value is an INTEGER (RFC 7030
        4.5.2 example, RFC 9908 examples); a bare named-curve OID (RFC 7030 appendix A.2);
        a bare key algorithm OID; the key family implied by a signature algorithm OID
        (``ecdsa-with-SHA384`` -> ``"ec"``).  Ties go to the earliest element.
        """
        if self.template is not None:
            return self.template.key_type_hint
        for attr in self.attributes:
            if attr.oid == OID_EC_PUBLIC_KEY and attr.values:
                curve = _oid_value(attr.values[0])
                if curve:
                    return _curve_hint(curve)
            if attr.oid == OID_RSA_ENCRYPTION and attr.values:
                bits = _integer_value(attr.values[0])
                if bits is not None and bits > 0:
                    return f"rsa-{bits}"
        for oid in self.oids:
            if oid in _CURVES:
                return _CURVES[oid]
        types = [*self.oids, *(attr.oid for attr in self.attributes)]
        for table in (_KEY_ALGORITHMS, _SIGNATURE_KEY_FAMILIES):
            for oid in types:
                if oid in table:
                    return table[oid]
        return None

    @property
    def signature_hash_hint(self) -> str | None:
        """The hash the server wants the CSR signed with, or None.

        From the first signature algorithm OID (``ecdsa-with-SHA384`` -> ``"sha384"``,
        ``sha256WithRSAEncryption`` -> ``"sha256"``) or bare hash OID (RFC 7030 appendix
        A.2) among the OIDs and attribute types.  One of ``"sha1"``, ``"sha224"``,
        ``"sha256"``, ``"sha384"``, ``"sha512"``; refusing SHA-1 is the caller's call.
        """
        for oid in (*self.oids, *(attr.oid for attr in self.attributes)):
            if oid in _HASHES:
                return _HASHES[oid]
        return None

    @property
    def extension_requests(self) -> tuple[RequestedExtension, ...]:
        """The X.509 extensions the server asks the CSR to carry (RFC 9908 section 3).

        With a template, the template's extensions.  Otherwise the ``Extensions`` values of
        the ``id-ExtensionReq`` attributes.  A value that is one lone ``Extension`` (as in
        early drafts of RFC 9908's ACP example) is taken as a list of one; any other value
        (the RFC 7030 section 4.5.2 example puts a bare OID there) is skipped.  The first
        occurrence of each extnID wins.
        """
        if self.template is not None:
            return self.template.extensions
        found: list[RequestedExtension] = []
        for attr in self.attributes:
            if attr.oid != OID_EXTENSION_REQUEST:
                continue
            for value in attr.values:
                for single in (False, True):
                    try:
                        found += _decode_extensions(value, single=single)
                        break
                    except ValueError:
                        continue
        return _dedupe(found)


# --- decoding ----------------------------------------------------------------------------


def decode_csrattrs(der: bytes) -> CsrAttributes:
    """Decode a CsrAttrs (RFC 7030 section 4.5.2) from DER (already base64-decoded).

    An empty ``der`` is an empty result.  A CertificationRequestInfoTemplate attribute
    (RFC 9908 section 3.4) is decoded into :attr:`CsrAttributes.template`.

    :raises ProtocolError: not a DER CsrAttrs, trailing bytes, or a malformed template.
    """
    if not der:
        return CsrAttributes()
    asn = _asn1()
    try:
        decoded = _decode_exactly(bytes(der), asn.rfc7030.CsrAttrs())
    except ValueError as exc:
        raise ProtocolError(
            f"{_WHAT} is not a valid CsrAttrs (RFC 7030 section 4.5.2): {exc}"
        ) from exc
    oids: list[str] = []
    attributes: list[CsrAttribute] = []
    for item in decoded:
        if item.getName() == "oid":
            oids.append(str(item["oid"]))
        else:
            attr = item["attribute"]
            values = tuple(bytes(value) for value in attr["attrValues"])
            attributes.append(CsrAttribute(str(attr["attrType"]), values))
    template = next(
        (
            _decode_template(attr.values[0])
            for attr in attributes
            if attr.oid == OID_CERTIFICATION_REQUEST_INFO_TEMPLATE and attr.values
        ),
        None,
    )
    return CsrAttributes(tuple(oids), tuple(attributes), template)


def decode_csrattrs_response(body: bytes) -> CsrAttributes:
    """Decode a whole /csrattrs HTTP 200 body: base64 (any layout) then CsrAttrs.

    A body that is empty, or only white space and NUL bytes, means "no attributes" (as a
    204 or 404 does, RFC 7030 section 4.5.2) and gives ``CsrAttributes()``.

    :raises ProtocolError: the body is neither valid base64 nor a CsrAttrs.
    """
    if not bytes(body).strip(b" \t\r\n\x00"):
        return CsrAttributes()
    return decode_csrattrs(decode_base64_body(body, what=_WHAT))


# --- encoding (test bodies, the test server) -------------------------------------------------


def encode_oid_value(oid: str) -> bytes:
    """DER of an OBJECT IDENTIFIER, e.g. a curve OID as an ``id-ecPublicKey`` value."""
    asn = _asn1()
    return bytes(asn.encoder.encode(asn.univ.ObjectIdentifier(_check_oid(oid))))


def encode_integer_value(value: int) -> bytes:
    """DER of an INTEGER, e.g. an RSA key size as an ``rsaEncryption`` value."""
    asn = _asn1()
    return bytes(asn.encoder.encode(asn.univ.Integer(value)))


def encode_extensions_value(extensions: Iterable[RequestedExtension]) -> bytes:
    """DER of an ``Extensions`` (RFC 5280 4.1), the value of an ``id-ExtensionReq`` attribute.

    :raises ValueError: an extension has no value (use :func:`encode_template` for that).
    """
    asn = _asn1()
    sequence = asn.rfc5280.Extensions()
    for requested in extensions:
        if requested.value is None:
            raise ValueError(f"extension {requested.oid} has no value")
        extension = asn.rfc5280.Extension()
        extension["extnID"] = asn.univ.ObjectIdentifier(_check_oid(requested.oid))
        extension["critical"] = requested.critical
        extension["extnValue"] = requested.value
        sequence.append(extension)
    return bytes(asn.encoder.encode(sequence))


def _attribute(attribute: CsrAttribute) -> Any:
    asn = _asn1()
    encoded = asn.rfc5652.Attribute()
    encoded["attrType"] = asn.univ.ObjectIdentifier(_check_oid(attribute.oid))
    values = encoded["attrValues"]
    for value in attribute.values:
        values.append(asn.univ.Any(value))
    return encoded


def encode_template(
    *,
    subject: Sequence[Sequence[NameAttributeTemplate]] | None = None,
    public_key_algorithm: str | None = None,
    public_key_parameters: bytes | None = None,
    subject_public_key: bytes | None = None,
    extensions: Sequence[RequestedExtension] = (),
    attributes: Sequence[CsrAttribute] = (),
) -> bytes:
    """DER of an RFC 9908 ``CertificationRequestInfoTemplate`` (section 3.4, appendix A).

    ``subject`` is the RDN sequence (a value of None in an attribute leaves it to the
    client); ``subject_public_key`` the octets of the dummy ``subjectPublicKey`` (e.g. the
    DER of an RSAPublicKey whose modulus has the wanted size).  Non-empty ``extensions``
    become one ``id-aa-extensionReqTemplate`` attribute, placed after ``attributes``.  Wrap
    the result as ``CsrAttribute(OID_CERTIFICATION_REQUEST_INFO_TEMPLATE, (der,))``.
    """
    asn = _asn1()
    template = asn.template.clone()
    template["version"] = 0
    if subject is not None:
        rdns = asn.rdn_sequence.clone()
        rdns.clear()  # an empty subject (30 00) is a value, not an absent one
        for rdn_entries in subject:
            rdn = asn.rdn.clone()
            for entry in rdn_entries:
                item = asn.single_attribute.clone()
                item["type"] = asn.univ.ObjectIdentifier(_check_oid(entry.oid))
                if entry.value is not None:
                    item["value"] = asn.univ.Any(entry.value)
                rdn.append(item)
            rdns.append(rdn)
        template["subject"] = rdns
    if public_key_algorithm is not None:
        spki = asn.spki.clone()
        spki["algorithm"]["algorithm"] = asn.univ.ObjectIdentifier(_check_oid(public_key_algorithm))
        if public_key_parameters is not None:
            spki["algorithm"]["parameters"] = asn.univ.Any(public_key_parameters)
        if subject_public_key is not None:
            spki["subjectPublicKey"] = asn.univ.BitString.fromOctetString(subject_public_key)
        template["subjectPKInfo"] = spki
    all_attributes = list(attributes)
    if extensions:
        ext_templates = asn.extension_templates.clone()
        for requested in extensions:
            ext = asn.extension_template.clone()
            ext["extnID"] = asn.univ.ObjectIdentifier(_check_oid(requested.oid))
            if requested.critical:
                ext["critical"] = True
            if requested.value is not None:
                ext["extnValue"] = requested.value
            ext_templates.append(ext)
        value = bytes(asn.encoder.encode(ext_templates))
        all_attributes.append(CsrAttribute(OID_EXTENSION_REQ_TEMPLATE, (value,)))
    encoded_attributes = template["attributes"]
    for attribute in all_attributes:
        encoded_attributes.append(_attribute(attribute))
    # pyasn1's DER encoder drops empty OPTIONAL components; an empty subject is meaningful.
    return bytes(asn.encoder.encode(template, omitEmptyOptionals=False))


def encode_csrattrs(items: Iterable[str | CsrAttribute]) -> bytes:
    """DER of a CsrAttrs (RFC 7030 4.5.2): a str is a bare OID, a CsrAttribute an attribute.

    The order of ``items`` is kept.  Apply ``encode_base64_body`` for an HTTP body.

    :raises ValueError: an OID is not in dotted form.
    """
    asn = _asn1()
    sequence = asn.rfc7030.CsrAttrs()
    for item in items:
        choice = asn.rfc7030.AttrOrOID()
        if isinstance(item, str):
            choice["oid"] = asn.univ.ObjectIdentifier(_check_oid(item))
        else:
            choice["attribute"] = _attribute(item)
        sequence.append(choice)
    if not len(sequence):
        return b"\x30\x00"
    return bytes(asn.encoder.encode(sequence))

"""CMS SignedData: its content, and the check of its signature (RFC 5652 section 5).

RFC 7030 section 4.4.2 wraps a server-generated key in a SignedData "signed by the party
that generated the private key"; :func:`parse_signed_data` reads one and
:meth:`SignedContent.verify` checks that one of its SignerInfos (section 5.3) really
signed the content (section 5.6): the signed attributes carry the content type and the
digest of the content (section 5.4, 11.1, 11.2), and the signature over their DER
encoding verifies with the signer certificate's key.  Whether that certificate is to be
trusted is the caller's question (RFC 5280 path validation, :mod:`est_hw.x509.trust`).

Signatures: RSASSA-PKCS1-v1_5 and RSASSA-PSS (RFC 4056), ECDSA (RFC 5753) and Ed25519 /
Ed448 (RFC 8419), with SHA-2 digests; SHA-1 is refused.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa

from est_hw.errors import ProtocolError, TrustError
from est_hw.est import der
from est_hw.est.codec import check_certificate

_SIGNED_DATA = "1.2.840.113549.1.7.2"
_CONTENT_TYPE_ATTR = "1.2.840.113549.1.9.3"
_MESSAGE_DIGEST_ATTR = "1.2.840.113549.1.9.4"
_ATTRIBUTE_NAMES = {_CONTENT_TYPE_ATTR: "content-type", _MESSAGE_DIGEST_ATTR: "message-digest"}

#: The SHA-2 digests by OID (RFC 5754 section 2).
HASHES: dict[str, type[hashes.SHA224 | hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "2.16.840.1.101.3.4.2.4": hashes.SHA224,
    "2.16.840.1.101.3.4.2.1": hashes.SHA256,
    "2.16.840.1.101.3.4.2.2": hashes.SHA384,
    "2.16.840.1.101.3.4.2.3": hashes.SHA512,
}
SHA1 = "1.3.14.3.2.26"  # id-sha1, the default of RFC 4055's PSS and OAEP parameters

_RSASSA_PSS = "1.2.840.113549.1.1.10"
#: RSASSA-PKCS1-v1_5 (RFC 5754 section 3.2): the digest each OID names; rsaEncryption
#: (RFC 5652 section 12.2 allows it) takes the SignerInfo's digest algorithm.
_RSA_SIGNATURES: dict[str, type[hashes.HashAlgorithm] | None] = {
    "1.2.840.113549.1.1.1": None,
    "1.2.840.113549.1.1.14": hashes.SHA224,
    "1.2.840.113549.1.1.11": hashes.SHA256,
    "1.2.840.113549.1.1.12": hashes.SHA384,
    "1.2.840.113549.1.1.13": hashes.SHA512,
}
#: ECDSA (RFC 5753 section 7.1.3, RFC 5754 section 3.3); id-ecPublicKey takes the
#: SignerInfo's digest algorithm.
_ECDSA_SIGNATURES: dict[str, type[hashes.HashAlgorithm] | None] = {
    "1.2.840.10045.2.1": None,
    "1.2.840.10045.4.3.1": hashes.SHA224,
    "1.2.840.10045.4.3.2": hashes.SHA256,
    "1.2.840.10045.4.3.3": hashes.SHA384,
    "1.2.840.10045.4.3.4": hashes.SHA512,
}
_EDDSA = {"1.3.101.112", "1.3.101.113"}  # Ed25519, Ed448 (RFC 8419)
_MGF1 = "1.2.840.113549.1.1.8"  # id-mgf1 (RFC 8017 appendix B.2.1), PSS's and OAEP's
#: No RSA key has room for a longer RSASSA-PSS salt (OpenSSL's largest modulus is 16384 bits).
_MAX_PSS_SALT = 2048


def hash_for(oid: str, *, what: str) -> hashes.HashAlgorithm:
    """The SHA-2 digest an AlgorithmIdentifier names (RFC 5754); SHA-1 and others refused.

    :raises ProtocolError: any other digest.
    """
    if oid == SHA1:
        raise ProtocolError(f"{what}: SHA-1 is not accepted")
    if oid not in HASHES:
        raise ProtocolError(f"{what}: unsupported digest algorithm {oid}")
    return HASHES[oid]()


@dataclass(frozen=True)
class SignerInfo:
    """One SignerInfo (RFC 5652 section 5.3), reduced to what verification needs."""

    issuer_der: bytes | None  # sid: issuerAndSerialNumber ...
    serial_number: int | None
    subject_key_id: bytes | None  # ... or subjectKeyIdentifier
    digest_oid: str
    signed_attrs_der: bytes | None  # re-tagged as SET OF (section 5.4)
    content_type_attr: str | None
    message_digest_attr: bytes | None
    signature_oid: str
    signature_params_der: bytes | None
    signature: bytes

    def names(self, cert: x509.Certificate) -> bool:
        """Does this SignerInfo's sid name ``cert`` (section 5.3)?"""
        if self.subject_key_id is not None:
            try:
                ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            except x509.ExtensionNotFound:
                return False
            return ski.value.digest == self.subject_key_id
        return (
            cert.serial_number == self.serial_number
            and cert.issuer.public_bytes() == self.issuer_der
        )


@dataclass(frozen=True)
class SignedContent:
    """The eContent of a SignedData, with what is needed to check who signed it."""

    content_type: str
    content: bytes = field(repr=False)  # a server-generated key: never printed
    certificates: tuple[x509.Certificate, ...]
    signers: tuple[SignerInfo, ...]
    what: str

    def verify(self, candidates: Sequence[x509.Certificate] = ()) -> x509.Certificate:
        """The certificate of a signer whose signature over the content verifies (5.6).

        The signer's certificate is looked up among the SignedData's own certificates
        and ``candidates`` (the CA certificates the caller knows).

        :raises TrustError: no signer's certificate is known, or no signature verifies.
        :raises ProtocolError: an unsupported algorithm or malformed signed attributes.
        """
        known = [*self.certificates, *candidates]
        failures: list[str] = []
        for signer in self.signers:
            cert = next((c for c in known if signer.names(c)), None)
            if cert is None:
                failures.append("its signer's certificate was not sent and is not known")
                continue
            try:
                self._check(signer, cert)
            except InvalidSignature:
                failures.append("the signature does not verify")
                continue
            return cert
        reason = "; ".join(dict.fromkeys(failures)) or "it has no signer"
        raise TrustError(f"{self.what}: the SignedData is not validly signed: {reason}")

    def _check(self, signer: SignerInfo, cert: x509.Certificate) -> None:
        """Section 5.4 (what is signed) and 5.6 (the check); InvalidSignature if not."""
        digest = hash_for(signer.digest_oid, what=self.what)
        signed = self.content
        if signer.signed_attrs_der is not None:
            if signer.content_type_attr != self.content_type:
                raise TrustError(
                    f"{self.what}: the signed content-type attribute does not match the content"
                )
            h = hashes.Hash(digest)
            h.update(self.content)
            if signer.message_digest_attr is None or not hmac.compare_digest(
                signer.message_digest_attr, h.finalize()
            ):
                raise InvalidSignature
            signed = signer.signed_attrs_der
        try:
            key = cert.public_key()
        except (UnsupportedAlgorithm, ValueError) as exc:
            raise ProtocolError(f"{self.what}: the signer's key is unsupported: {exc}") from None
        try:
            _verify_signature(key, signer, digest, signed, what=self.what)
        except ValueError as exc:  # an RSA key too small for the PSS digest, say
            raise ProtocolError(
                f"{self.what}: the signer's key cannot check this signature: {exc}"
            ) from None


def _verify_signature(
    key: object, signer: SignerInfo, digest: hashes.HashAlgorithm, data: bytes, *, what: str
) -> None:
    """Check one signature by its algorithm (RFC 5754, 4056, 5753, 8419)."""
    oid = signer.signature_oid
    if isinstance(key, rsa.RSAPublicKey) and oid == _RSASSA_PSS:
        pss_hash, pss = _pss_padding(signer.signature_params_der, what=what)
        key.verify(signer.signature, data, pss, pss_hash)
    elif isinstance(key, rsa.RSAPublicKey) and oid in _RSA_SIGNATURES:
        named = _RSA_SIGNATURES[oid]
        key.verify(signer.signature, data, padding.PKCS1v15(), named() if named else digest)
    elif isinstance(key, ec.EllipticCurvePublicKey) and oid in _ECDSA_SIGNATURES:
        named = _ECDSA_SIGNATURES[oid]
        key.verify(signer.signature, data, ec.ECDSA(named() if named else digest))
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey) and oid in _EDDSA:
        key.verify(signer.signature, data)
    else:
        raise ProtocolError(
            f"{what}: unsupported signature algorithm {oid} for a {type(key).__name__}"
        )


def _pss_padding(
    params_der: bytes | None, *, what: str
) -> tuple[hashes.HashAlgorithm, padding.PSS]:
    """RSASSA-PSS-params (RFC 4055 section 3.1); the SHA-1 defaults are refused."""
    from pyasn1.error import PyAsn1Error
    from pyasn1_modules import rfc4055

    if params_der is None:
        raise ProtocolError(f"{what}: RSASSA-PSS without parameters (SHA-1) is not accepted")
    try:
        params, _ = der.decode(params_der, rfc4055.RSASSA_PSS_params())
        hash_oid = SHA1
        if params["hashAlgorithm"].isValue:
            hash_oid = str(params["hashAlgorithm"]["algorithm"])
        mgf_oid = mgf1_hash_oid(params["maskGenAlgorithm"], what=f"{what}: RSASSA-PSS")
        salt = int(params["saltLength"])
    except PyAsn1Error as exc:
        raise ProtocolError(f"{what}: the RSASSA-PSS parameters do not parse: {exc}") from None
    if not 0 <= salt <= _MAX_PSS_SALT:  # cryptography: ValueError, OverflowError
        raise ProtocolError(f"{what}: the RSASSA-PSS salt length is negative or too large")
    pss_hash = hash_for(hash_oid, what=what)
    return pss_hash, padding.PSS(mgf=padding.MGF1(hash_for(mgf_oid, what=what)), salt_length=salt)


def mgf1_hash_oid(mask_generation: Any, *, what: str) -> str:
    """The digest OID of an RSASSA-PSS or RSAES-OAEP maskGenAlgorithm (RFC 4055 sections
    3.1 and 4.1): MGF1 (RFC 8017 appendix B.2.1) with SHA-1 when absent.

    :raises ProtocolError: a mask generation function other than MGF1.
    :raises PyAsn1Error: MGF1's parameters do not parse.
    """
    from pyasn1_modules import rfc5280

    if not mask_generation.isValue:
        return SHA1
    if str(mask_generation["algorithm"]) != _MGF1:
        raise ProtocolError(f"{what} with a mask generation other than MGF1")
    digest, _ = der.decode(bytes(mask_generation["parameters"]), rfc5280.AlgorithmIdentifier())
    return str(digest["algorithm"])


def parse_signed_data(message: bytes, *, what: str) -> SignedContent:
    """ContentInfo(SignedData) (RFC 5652 sections 3 and 5.1), its signature not yet checked.

    :raises ProtocolError: not a SignedData, no encapsulated content, or it does not parse.
    """
    from pyasn1.error import PyAsn1Error
    from pyasn1_modules import rfc5652

    try:
        info, rest = der.decode(message, rfc5652.ContentInfo())
        if rest or str(info["contentType"]) != _SIGNED_DATA:
            raise ProtocolError(f"{what}: not a CMS SignedData")
        signed, _ = der.decode(info["content"], rfc5652.SignedData())
        encap = signed["encapContentInfo"]
        if not encap["eContent"].isValue:
            raise ProtocolError(f"{what}: the SignedData has no content")
        signers = tuple(_signer_info(s, what=what) for s in signed["signerInfos"])
        return SignedContent(
            content_type=str(encap["eContentType"]),
            content=bytes(encap["eContent"]),
            certificates=_certificates(message, signed, what=what),
            signers=signers,
            what=what,
        )
    except PyAsn1Error as exc:
        raise ProtocolError(f"{what}: the SignedData does not parse: {exc}") from None


def _signer_info(signer: Any, *, what: str) -> SignerInfo:
    """One SignerInfo's fields; the signed attributes re-tagged as SET OF (section 5.4)."""
    from pyasn1.codec.der import encoder
    from pyasn1.error import PyAsn1Error
    from pyasn1_modules import rfc5652

    sid = signer["sid"]
    issuer_der = serial = ski = None
    if sid.getName() == "subjectKeyIdentifier":
        ski = bytes(sid["subjectKeyIdentifier"])
    else:
        issuer_der = encoder.encode(sid["issuerAndSerialNumber"]["issuer"])
        serial = int(sid["issuerAndSerialNumber"]["serialNumber"])
    attrs_der = content_type = message_digest = None
    if signer["signedAttrs"].isValue:
        tagged = encoder.encode(signer["signedAttrs"])
        attrs_der = b"\x31" + tagged[1:]  # [0] IMPLICIT -> the universal SET tag
        for attr in signer["signedAttrs"]:
            values = list(attr["attrValues"])
            kind = str(attr["attrType"])
            if kind not in _ATTRIBUTE_NAMES or len(values) != 1:
                continue  # both attributes are single-valued (11.1, 11.2): ignore others
            # decoded by type (11.1, 11.2): a schemaless decode can raise AttributeError in
            # pyasn1, and bytes() of an INTEGER makes that many zero bytes
            spec = rfc5652.ContentType() if kind == _CONTENT_TYPE_ATTR else rfc5652.MessageDigest()
            try:
                value, _ = der.decode(bytes(values[0]), spec)
            except PyAsn1Error as exc:
                raise ProtocolError(
                    f"{what}: the signed {_ATTRIBUTE_NAMES[kind]} attribute is malformed: {exc}"
                ) from None
            if kind == _CONTENT_TYPE_ATTR:
                content_type = str(value)
            else:
                message_digest = bytes(value)
    params = signer["signatureAlgorithm"]["parameters"]
    return SignerInfo(
        issuer_der=issuer_der,
        serial_number=serial,
        subject_key_id=ski,
        digest_oid=str(signer["digestAlgorithm"]["algorithm"]),
        signed_attrs_der=attrs_der,
        content_type_attr=content_type,
        message_digest_attr=message_digest,
        signature_oid=str(signer["signatureAlgorithm"]["algorithm"]),
        signature_params_der=bytes(params) if params.isValue else None,
        signature=bytes(signer["signature"]),
    )


def _certificates(message: bytes, signed: Any, *, what: str) -> tuple[x509.Certificate, ...]:
    """The SignedData's certificates field, as sent (none is an empty tuple), each checked
    field by field (:func:`~est_hw.est.codec.check_certificate`).

    cryptography refuses some valid SignedData (one whose SignerInfo names its signer by
    key identifier, or without certificates): their certificates are then taken from
    pyasn1's parse, re-encoded (DER in, the same DER out).

    :raises ProtocolError: a certificate that does not load, or with a field that does not
        parse.
    """
    from cryptography.hazmat.primitives.serialization import pkcs7

    try:
        certs = tuple(pkcs7.load_der_pkcs7_certificates(message))
    except ValueError:
        certs = _reencoded_certificates(signed, what=what)
    except Exception as exc:  # x509.InvalidVersion (not a ValueError), or what else it raises
        raise ProtocolError(
            f"{what}: the SignedData's certificates do not load: {type(exc).__name__}: {exc}"
        ) from None
    for number, cert in enumerate(certs, 1):
        check_certificate(cert, f"{what}: certificate {number} of {len(certs)} of the SignedData")
    return certs


def _reencoded_certificates(signed: Any, *, what: str) -> tuple[x509.Certificate, ...]:
    """The X.509 certificates of a parsed SignedData (other CertificateChoices skipped)."""
    from pyasn1.codec.der import encoder

    certs = []
    for choice in signed["certificates"]:
        if choice.getName() != "certificate":
            continue  # attribute certificates and others (RFC 5652 section 10.2.2)
        try:
            certs.append(x509.load_der_x509_certificate(encoder.encode(choice["certificate"])))
        except Exception as exc:  # ValueError, x509.InvalidVersion
            raise ProtocolError(
                f"{what}: a certificate of the SignedData does not load: {type(exc).__name__}"
            ) from None
    return tuple(certs)

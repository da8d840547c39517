"""Certification requests signed by a token key (RFC 2986, RFC 7030 section 4.2.1).

The CSR is built with cryptography's builder and signed by the backend's key object, so
the signature is made inside the token.  It is verified before it is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import AttributeOID, ObjectIdentifier

from est_hw.errors import TokenError
from est_hw.keys.base import PrivateKey

#: id-aa-asymmDecryptKeyID (RFC 7030 section 4.4.1.2), an OCTET STRING attribute.
ASYMM_DECRYPT_KEY_ID = ObjectIdentifier("1.2.840.113549.1.9.16.2.54")


@dataclass(frozen=True)
class CsrContent:
    """What goes into a CSR besides the public key.

    :param subject: the requested subject (may be empty when the SAN identifies).
    :param sans: subjectAltName entries (RFC 5280 section 4.2.1.6).
    :param challenge_password: RFC 2985 challengePassword, carrying the channel binding
        of RFC 7030 section 3.5 when set.
    :param extensions: further extension requests (e.g. from /csrattrs).
    :param signature_hash: "sha256", "sha384" or "sha512" when the server asked for one
        (RFC 7030 4.5.2); else the hash that matches the key.
    :param decrypt_key_id: an AsymmetricDecryptKeyIdentifier attribute (RFC 7030 section
        4.4.1.2): the id of the key a server-generated key is to be encrypted to.
    """

    subject: x509.Name
    sans: tuple[x509.GeneralName, ...] = ()
    challenge_password: str | None = None
    extensions: tuple[x509.Extension[x509.ExtensionType], ...] = field(default=())
    signature_hash: str | None = None
    decrypt_key_id: bytes | None = None


_HASHES: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


def signature_hash_for(
    key: PrivateKey, preferred: str | None = None
) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512:
    """``preferred`` if given, else SHA-384 for P-384 keys and SHA-256 otherwise (RFC 5480
    section 4 pairing)."""
    if preferred is not None:
        return _HASHES[preferred]()
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def build_csr(key: PrivateKey, content: CsrContent) -> x509.CertificateSigningRequest:
    """Build the CSR for ``content`` and sign it with ``key`` (inside the token).

    :raises TokenError: when the token's signature does not verify or the CSR does not
        carry the token key's public key.
    """
    builder = x509.CertificateSigningRequestBuilder().subject_name(content.subject)
    if content.sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(content.sans), False)
    for extension in content.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    if content.challenge_password is not None:
        builder = builder.add_attribute(
            AttributeOID.CHALLENGE_PASSWORD, content.challenge_password.encode()
        )
    if content.decrypt_key_id is not None:
        builder = builder.add_attribute(
            ASYMM_DECRYPT_KEY_ID, content.decrypt_key_id, _tag=_ASN1Type.OctetString
        )
    csr = builder.sign(key, signature_hash_for(key, content.signature_hash))
    check_csr(csr, key)
    return csr


def check_csr(csr: x509.CertificateSigningRequest, key: PrivateKey) -> None:
    """Verify the CSR's self-signature and that it carries ``key``'s public key."""
    if not csr.is_signature_valid:
        raise TokenError("the token produced a CSR signature that does not verify")
    if csr.public_key() != key.public_key():
        raise TokenError("the CSR does not carry the token key's public key")


def subject_alt_names(
    cert: x509.Certificate | x509.CertificateSigningRequest,
) -> Sequence[x509.GeneralName]:
    """The subjectAltName entries of a certificate or CSR (empty when absent)."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(ext.value)

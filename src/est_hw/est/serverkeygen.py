"""The /serverkeygen answer (RFC 7030 section 4.4.2, RFC 8951 section 5), decoded.

Two parts in either order: the private key and the certificate.  The key comes as PKCS#8
(``application/pkcs8``, RFC 5958); a PKCS#1 RSAPrivateKey labelled as pkcs8 (one real
server does that) is accepted too.  A CMS-encrypted key (``application/pkcs7-mime;
smime-type=server-generated-key``, section 4.4.2) is decrypted when the caller gives the
RSA decryption key it named in the CSR (:func:`decrypt_server_generated_key`), and
refused clearly otherwise.  The SignedData inside it is kept: its signature, and whether
its signer belongs to the PKI, are checked once the certificate's path is known.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_der_private_key

from est_hw.errors import ProtocolError
from est_hw.est import der
from est_hw.est.codec import decode_certs_only
from est_hw.est.multipart import Part, parse_multipart
from est_hw.est.signed_data import (
    HASHES,
    SHA1,
    SignedContent,
    mgf1_hash_oid,
    parse_signed_data,
)
from est_hw.keys.base import PrivateKey

_PKCS8 = "application/pkcs8"
_PKCS7 = "application/pkcs7-mime"

_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_RSA_ENCRYPTION = "1.2.840.113549.1.1.1"
_RSAES_OAEP = "1.2.840.113549.1.1.7"
_AES_CBC = {
    "2.16.840.1.101.3.4.1.2": 16,  # aes128-CBC (RFC 3565)
    "2.16.840.1.101.3.4.1.22": 24,  # aes192-CBC
    "2.16.840.1.101.3.4.1.42": 32,  # aes256-CBC
}
#: OAEP's digests (RFC 8017 appendix A.2.1): SHA-1 (the default, and all SoftHSM2 does)
#: or SHA-2
_OAEP_HASHES: dict[str, type[hashes.HashAlgorithm]] = {SHA1: hashes.SHA1, **HASHES}


@dataclass(frozen=True)
class ServerGeneratedKey:
    """The key the server made and the certificate(s) it issued for it.

    ``key_signature`` is the SignedData a CMS-encrypted key came in (section 4.4.2), its
    signature not yet checked (:meth:`SignedContent.verify`); None for a plain PKCS#8 key.
    """

    private_key: PrivateKey
    certificates: list[x509.Certificate]
    key_signature: SignedContent | None = None

    def __repr__(self) -> str:  # never print key material
        return f"ServerGeneratedKey(<{type(self.private_key).__name__}>, {self.certificates!r})"


def decode_serverkeygen(
    body: bytes,
    content_type: str | None,
    *,
    what: str,
    decrypt_key: rsa.RSAPrivateKey | None = None,
) -> ServerGeneratedKey:
    """Decode a /serverkeygen 200 answer.

    :param decrypt_key: the RSA key the CSR named in its AsymmetricDecryptKeyIdentifier;
        an encrypted key part is decrypted with it (and refused without it).
    :raises ProtocolError: not two parts of the right types, a key that does not parse, an
        encrypted key without ``decrypt_key``, or no certificate.
    """
    parts = parse_multipart(body, content_type, what=what)
    key_parts = [p for p in parts if _is_key(p)]
    cert_parts = [p for p in parts if p.media_type == _PKCS7 and not _is_key(p)]
    if len(key_parts) != 1 or len(cert_parts) != 1:
        kinds = ", ".join(p.media_type for p in parts)
        raise ProtocolError(f"{what}: expected a key part and a certificate part, got {kinds}")
    (key_part,) = key_parts
    signed: SignedContent | None = None
    if key_part.media_type == _PKCS7:
        if decrypt_key is None:
            raise ProtocolError(
                f"{what}: the key is CMS-encrypted (server-generated-key) but no decryption "
                "key was named; use --decrypt-key-uri, or accept the plain PKCS#8 form"
            )
        signed = decrypt_server_generated_key(key_part.content, decrypt_key, what=what)
    private_key = _load_key(signed.content if signed else key_part.content, what=what)
    return ServerGeneratedKey(
        private_key,
        decode_certs_only(cert_parts[0].content, what=f"{what} certificate part"),
        signed,
    )


def decrypt_server_generated_key(
    message: bytes, decrypt_key: rsa.RSAPrivateKey, *, what: str
) -> SignedContent:
    """The SignedData around the private key in an encrypted key part (RFC 7030 4.4.2).

    ContentInfo(EnvelopedData) (RFC 5652 section 6) with a KeyTransRecipientInfo for an
    RSA key (RSAES-PKCS1-v1_5 or RSAES-OAEP, RFC 8017) and AES-CBC content encryption
    (RFC 3565); the content is a SignedData (RFC 5652 section 5) whose eContent is the
    OneAsymmetricKey (RFC 5958), i.e. PKCS#8.  The content-encryption key is recovered by
    ``decrypt_key`` (inside the token for a token key).  Any eContentType is accepted
    (id-ct-KP-aKeyPackage per RFC 6031, or id-data as some CMS libraries write it).

    The SignedData is returned unchecked: "signed by the party that generated the private
    key" (section 4.4.2), whose certificate must be path-validated like the issued one;
    the caller verifies it (:meth:`SignedContent.verify`) once that path is known.

    :raises ProtocolError: the structure does not parse, no key-transport recipient, an
        unsupported algorithm, decryption fails, or the content is not a SignedData.
    """
    from pyasn1.error import PyAsn1Error
    from pyasn1.type import univ
    from pyasn1_modules import rfc5652

    cek = bytearray()
    plain = bytearray()
    try:
        try:
            info, rest = der.decode(message, rfc5652.ContentInfo())
            if rest or str(info["contentType"]) != _ENVELOPED_DATA:
                raise ProtocolError(f"{what}: the encrypted key part is not CMS EnvelopedData")
            enveloped, _ = der.decode(info["content"], rfc5652.EnvelopedData())
            ktris = [ri["ktri"] for ri in enveloped["recipientInfos"] if ri.getName() == "ktri"]
            if not ktris:
                raise ProtocolError(f"{what}: the encrypted key has no key-transport recipient")
            padding = _key_transport_padding(ktris[0]["keyEncryptionAlgorithm"], what=what)
            encrypted = enveloped["encryptedContentInfo"]
            cipher_oid = str(encrypted["contentEncryptionAlgorithm"]["algorithm"])
            iv_der = encrypted["contentEncryptionAlgorithm"]["parameters"]
            ciphertext = bytes(encrypted["encryptedContent"])
            iv = bytes(der.decode(bytes(iv_der), univ.OctetString())[0]) if iv_der.isValue else b""
        except PyAsn1Error as exc:
            raise ProtocolError(f"{what}: the encrypted key part does not parse: {exc}") from None
        if cipher_oid not in _AES_CBC or len(iv) != 16:
            raise ProtocolError(f"{what}: unsupported content encryption {cipher_oid}")
        for ktri in ktris:  # usually one; try each, the token says which one is ours
            try:
                cek[:] = decrypt_key.decrypt(bytes(ktri["encryptedKey"]), padding)
                break
            except ValueError:  # software keys; token keys raise an EstHwError
                continue
        else:
            raise ProtocolError(f"{what}: cannot decrypt the content-encryption key")
        if len(cek) != _AES_CBC[cipher_oid]:
            raise ProtocolError(f"{what}: the content-encryption key has the wrong size")
        decryptor = Cipher(algorithms.AES(bytes(cek)), modes.CBC(iv)).decryptor()
        unpadder = sym_padding.PKCS7(128).unpadder()
        try:
            plain[:] = decryptor.update(ciphertext) + decryptor.finalize()
            content = unpadder.update(bytes(plain)) + unpadder.finalize()
        except ValueError:
            raise ProtocolError(f"{what}: the encrypted key does not decrypt") from None
        return parse_signed_data(content, what=f"{what}: the decrypted key")
    finally:
        cek[:] = bytes(len(cek))
        plain[:] = bytes(len(plain))


def _key_transport_padding(
    algorithm: object, *, what: str
) -> asym_padding.PKCS1v15 | asym_padding.OAEP:
    """RSAES-PKCS1-v1_5 or RSAES-OAEP with MGF1 (RFC 8017 appendix A.2.1, RFC 3560)."""
    from pyasn1_modules import rfc4055

    oid = str(algorithm["algorithm"])  # type: ignore[index]
    if oid == _RSA_ENCRYPTION:
        return asym_padding.PKCS1v15()
    if oid != _RSAES_OAEP:
        raise ProtocolError(f"{what}: unsupported key transport {oid}")
    params_der = algorithm["parameters"]  # type: ignore[index]
    hash_oid = mgf_hash_oid = SHA1  # the defaults
    if params_der.isValue:
        params, _ = der.decode(bytes(params_der), rfc4055.RSAES_OAEP_params())
        if params["hashFunc"].isValue:
            hash_oid = str(params["hashFunc"]["algorithm"])
        mgf_hash_oid = mgf1_hash_oid(params["maskGenFunc"], what=f"{what}: OAEP")
    if hash_oid not in _OAEP_HASHES or mgf_hash_oid not in _OAEP_HASHES:
        raise ProtocolError(f"{what}: unsupported OAEP hash {hash_oid}")
    return asym_padding.OAEP(
        mgf=asym_padding.MGF1(_OAEP_HASHES[mgf_hash_oid]()),
        algorithm=_OAEP_HASHES[hash_oid](),
        label=None,
    )


def _is_key(part: Part) -> bool:
    if part.media_type == _PKCS8:
        return True
    return part.media_type == _PKCS7 and part.params.get("smime-type") == "server-generated-key"


def _load_key(der: bytes, *, what: str) -> PrivateKey:
    """PKCS#8 (RFC 5958), or a PKCS#1 RSAPrivateKey mislabelled as pkcs8."""
    try:
        key = load_der_private_key(der, password=None)
    except (ValueError, TypeError):
        raise ProtocolError(f"{what}: the key part is not a PKCS#8 or PKCS#1 key") from None
    except Exception as exc:  # UnsupportedAlgorithm and the like
        raise ProtocolError(f"{what}: unsupported key in the key part: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ProtocolError(f"{what}: the server generated a {type(key).__name__}, not EC/RSA")
    return key

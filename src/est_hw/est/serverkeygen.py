"""The /serverkeygen answer (RFC 7030 section 4.4.2, RFC 8951 section 5), decoded.

Two parts in either order: the private key and the certificate.  The key comes as PKCS#8
(``application/pkcs8``, RFC 5958); a PKCS#1 RSAPrivateKey labelled as pkcs8 (one real
server does that) is accepted too.  A CMS-encrypted key (``application/pkcs7-mime;
smime-type=server-generated-key``, section 4.4.2) is recognised and refused clearly: it
would need key transport to a decryption key, which est-hw does not request.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from est_hw.errors import ProtocolError
from est_hw.est.codec import decode_certs_only
from est_hw.est.multipart import Part, parse_multipart
from est_hw.keys.base import PrivateKey

_PKCS8 = "application/pkcs8"
_PKCS7 = "application/pkcs7-mime"


@dataclass(frozen=True)
class ServerGeneratedKey:
    """The key the server made and the certificate(s) it issued for it."""

    private_key: PrivateKey
    certificates: list[x509.Certificate]

    def __repr__(self) -> str:  # never print key material
        return f"ServerGeneratedKey(<{type(self.private_key).__name__}>, {self.certificates!r})"


def decode_serverkeygen(body: bytes, content_type: str | None, *, what: str) -> ServerGeneratedKey:
    """Decode a /serverkeygen 200 answer.

    :raises ProtocolError: not two parts of the right types, a key that does not parse, an
        encrypted key, or no certificate.
    """
    parts = parse_multipart(body, content_type, what=what)
    key_parts = [p for p in parts if _is_key(p)]
    cert_parts = [p for p in parts if p.media_type == _PKCS7 and not _is_key(p)]
    if len(key_parts) != 1 or len(cert_parts) != 1:
        kinds = ", ".join(p.media_type for p in parts)
        raise ProtocolError(f"{what}: expected a key part and a certificate part, got {kinds}")
    (key_part,) = key_parts
    if key_part.media_type == _PKCS7:
        raise ProtocolError(
            f"{what}: the key is CMS-encrypted (server-generated-key); est-hw asks for and "
            "accepts only the unencrypted PKCS#8 form over the TLS connection"
        )
    return ServerGeneratedKey(
        _load_key(key_part.content, what=what),
        decode_certs_only(cert_parts[0].content, what=f"{what} certificate part"),
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

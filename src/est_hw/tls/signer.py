"""A tlslite-ng private key whose signatures are made by a ``cryptography`` key object.

tlslite-ng signs CertificateVerify by calling ``key.sign(digest, padding, hashAlg,
saltLen)`` on its own key classes, with the message already hashed.  Token keys sign
the whole message (``cryptography``'s ``key.sign(data, algorithm)``, the one signing
path every backend implements), so this adapter asks the connection for the unhashed
to-be-signed message, checks that it hashes to what tlslite-ng passed, and signs that:

* TLS 1.2 (RFC 5246 section 7.4.8): the handshake messages so far; ECDSA, or RSA
  PKCS#1 v1.5 (tlslite-ng passes the DigestInfo) or RSA-PSS.
* TLS 1.3 (RFC 8446 section 4.4.3): 64 spaces, the context string, a zero byte and the
  transcript hash; ECDSA or RSA-PSS (PKCS#1 v1.5 is not allowed in 1.3).

The adapter never touches private numbers: it needs the public key and ``sign()``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding
from tlslite.utils.rsakey import RSAKey

from est_hw.keys.base import PrivateKey

#: A callable returning the candidate unhashed to-be-signed messages.
MessageSource = Callable[[], Sequence[bytes]]

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}


class SigningMismatchError(RuntimeError):
    """tlslite-ng asked for a signature over a digest of no known handshake message."""


@dataclass(frozen=True)
class _Curve:
    baselen: int


@dataclass(frozen=True)
class _CurveHolder:
    """What tlslite-ng reads as ``key.private_key.curve.baselen`` (TLS 1.2 ECDSA)."""

    curve: _Curve


class TlsliteSigningKey:
    """The subset of tlslite-ng's ``RSAKey`` / ``ECDSAKey`` interface a TLS client uses.

    :param key: the cryptography private key (software or token).
    :param messages: returns the unhashed messages tlslite-ng may be signing.
    """

    def __init__(self, key: PrivateKey, messages: MessageSource) -> None:
        self._key = key
        self._messages = messages
        if isinstance(key, ec.EllipticCurvePrivateKey):
            self.key_type = "ecdsa"
            self.private_key = _CurveHolder(_Curve((key.curve.key_size + 7) // 8))
            self._bits = key.curve.key_size
        else:
            numbers = key.public_key().public_numbers()
            self.key_type = "rsa"
            self.n = numbers.n
            self.e = numbers.e
            self._bits = key.key_size

    def __len__(self) -> int:
        return self._bits

    def hasPrivateKey(self) -> bool:
        return True

    # --- signing with the message already hashed by tlslite-ng ---------------------------

    def sign(
        self,
        data: bytes | bytearray,
        padding: str | None = None,
        hashAlg: str | None = None,
        saltLen: int | None = None,
    ) -> bytearray:
        """Sign the message whose digest tlslite-ng passed as ``data``."""
        message, scheme = self._find_message(bytes(data), padding, hashAlg, saltLen)
        return bytearray(self._sign_full(message, scheme))

    def verify(
        self,
        sigBytes: bytes | bytearray,
        data: bytes | bytearray,
        padding: str | None = None,
        hashAlg: str | None = None,
        saltLen: int | None = None,
    ) -> bool:
        """Check our own signature (tlslite-ng does so before sending it)."""
        try:
            message, scheme = self._find_message(bytes(data), padding, hashAlg, saltLen)
        except SigningMismatchError:
            return False
        return self._verify_full(bytes(sigBytes), message, scheme)

    # --- signing the whole message ------------------------------------------------------

    def hashAndSign(
        self,
        data: bytes | bytearray,
        rsaScheme: str | None = None,
        hAlg: str = "sha256",
        sLen: int | None = None,
    ) -> bytearray:
        return bytearray(self._sign_full(bytes(data), self._scheme(rsaScheme, hAlg)))

    def hashAndVerify(
        self,
        sigBytes: bytes | bytearray,
        data: bytes | bytearray,
        rsaScheme: str | None = None,
        hAlg: str = "sha256",
        sLen: int | None = None,
    ) -> bool:
        return self._verify_full(bytes(sigBytes), bytes(data), self._scheme(rsaScheme, hAlg))

    # --- internals ----------------------------------------------------------------------

    def _scheme(self, rsa_padding: str | None, hash_name: str) -> tuple[str, str]:
        if self.key_type == "ecdsa":
            return ("ecdsa", hash_name.lower())
        return ((rsa_padding or "pkcs1").lower(), hash_name.lower())

    def _find_message(
        self, data: bytes, rsa_padding: str | None, hash_name: str | None, salt_len: int | None
    ) -> tuple[bytes, tuple[str, str]]:
        """Find the unhashed message behind ``data``; return it and (padding, hash)."""
        kind = "ecdsa" if self.key_type == "ecdsa" else (rsa_padding or "pkcs1").lower()
        if kind == "pkcs1" and hash_name is not None:
            data = bytes(RSAKey.addPKCS1Prefix(bytearray(data), hash_name))
        names = [hash_name.lower()] if hash_name and kind != "pkcs1" else list(_HASHES)
        for message in self._messages():
            for name in names:
                digest = hashlib.new(name, message).digest()
                if kind == "pss" and salt_len not in (None, len(digest)):
                    continue
                if (
                    (kind == "pkcs1" and bytes(RSAKey.addPKCS1Prefix(digest, name)) == data)
                    or (kind == "pss" and digest == data)
                    # tlslite-ng truncates ECDSA digests to the curve size at TLS 1.2;
                    # ECDSA itself truncates the same way, so the signature is the same.
                    or (kind == "ecdsa" and data and digest[: len(data)] == data)
                ):
                    return message, (kind, name)
        raise SigningMismatchError(
            f"no handshake message matches the {kind} digest tlslite-ng asked to sign"
        )

    def _sign_full(self, message: bytes, scheme: tuple[str, str]) -> bytes:
        kind, name = scheme
        algorithm = _HASHES[name]()
        if isinstance(self._key, ec.EllipticCurvePrivateKey):
            return self._key.sign(message, ec.ECDSA(algorithm))
        return self._key.sign(message, _rsa_padding(kind, algorithm), algorithm)

    def _verify_full(self, signature: bytes, message: bytes, scheme: tuple[str, str]) -> bool:
        kind, name = scheme
        algorithm = _HASHES[name]()
        public = self._key.public_key()
        try:
            if isinstance(public, ec.EllipticCurvePublicKey):
                public.verify(signature, message, ec.ECDSA(algorithm))
            else:
                public.verify(signature, message, _rsa_padding(kind, algorithm), algorithm)
        except InvalidSignature:
            return False
        return True


def _rsa_padding(kind: str, algorithm: hashes.HashAlgorithm) -> padding.AsymmetricPadding:
    if kind == "pss":
        # RFC 8446 section 4.2.3: the salt is as long as the digest.
        return padding.PSS(padding.MGF1(algorithm), padding.PSS.DIGEST_LENGTH)
    if kind == "pkcs1":
        return padding.PKCS1v15()
    raise SigningMismatchError(f"unknown RSA padding {kind!r}")

"""Route tlslite-ng's record ciphers and X25519 to ``cryptography`` (OpenSSL).

tlslite-ng's pure-Python AES-GCM and ChaCha20-Poly1305 run at about 0.4 MB/s and are not
constant-time (FIELD-NOTES).  tlslite-ng picks its AEAD implementation through the
factory functions ``createAESGCM`` / ``createCHACHA20`` that its record layer imported,
and its X25519 through the ``x25519`` function its key exchange imported; :func:`install`
replaces those three names (once per process, idempotent) with ``cryptography``-backed
equivalents that keep tlslite-ng's interfaces:

* AEAD objects: ``seal(nonce, plaintext, aad) -> ciphertext||tag`` and
  ``open(nonce, ciphertext||tag, aad) -> plaintext`` or ``None`` when the tag is wrong
  (RFC 5116; RFC 5288 AES-GCM and RFC 7905 ChaCha20-Poly1305 suites; RFC 8446 5.2).
* ``x25519(k, u)`` of RFC 7748 section 5.

:func:`fast_ecdsa_public_key` wraps the server's ECDSA key so its signature checks
(ServerKeyExchange at TLS 1.2, CertificateVerify at TLS 1.3) run in OpenSSL too.

Only tlslite-ng 0.8.2 (pinned) is patched; the est-hw tests compare against real peers.
"""

from __future__ import annotations

import threading
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

Octets = bytes | bytearray
_lock = threading.Lock()
_state = {"installed": False}
_X25519_BASE = bytes([9]) + bytes(31)


class _Aead:
    """tlslite-ng's AEAD cipher interface over a ``cryptography`` AEAD."""

    isBlockCipher = False  # tlslite-ng's attribute names
    isAEAD = True
    nonceLength = 12
    tagLength = 16
    implementation = "cryptography"

    def __init__(self, name: str, aead: AESGCM | ChaCha20Poly1305) -> None:
        self.name = name
        self._aead = aead

    def seal(self, nonce: Octets, plaintext: Octets, data: Octets) -> bytearray:
        if len(nonce) != 12:
            raise ValueError("Bad nonce length")
        return bytearray(self._aead.encrypt(bytes(nonce), bytes(plaintext), bytes(data)))

    def open(self, nonce: Octets, ciphertext: Octets, data: Octets) -> bytearray | None:
        if len(nonce) != 12:
            raise ValueError("Bad nonce length")
        if len(ciphertext) < 16:
            return None
        try:
            return bytearray(self._aead.decrypt(bytes(nonce), bytes(ciphertext), bytes(data)))
        except InvalidTag:
            return None


def create_aesgcm(key: Octets, implList: Any = None) -> _Aead:
    """Replacement for ``tlslite.utils.cipherfactory.createAESGCM``."""
    name = "aes128gcm" if len(key) == 16 else "aes256gcm"
    return _Aead(name, AESGCM(bytes(key)))


def create_chacha20(key: Octets, implList: Any = None) -> _Aead:
    """Replacement for ``tlslite.utils.cipherfactory.createCHACHA20``."""
    return _Aead("chacha20-poly1305", ChaCha20Poly1305(bytes(key)))


def x25519(k: Octets, u: Octets) -> bytearray:
    """X25519(k, u) of RFC 7748 section 5 (an all-zero result is returned as zeros,
    which tlslite-ng then rejects as an invalid key share)."""
    private = X25519PrivateKey.from_private_bytes(bytes(k))
    if bytes(u) == _X25519_BASE:
        return bytearray(private.public_key().public_bytes_raw())
    try:
        return bytearray(private.exchange(X25519PublicKey.from_public_bytes(bytes(u))))
    except ValueError:
        return bytearray(32)


_PREHASH_BY_SIZE: dict[int, type[hashes.HashAlgorithm]] = {
    20: hashes.SHA1,
    28: hashes.SHA224,
    32: hashes.SHA256,
    48: hashes.SHA384,
    64: hashes.SHA512,
}


class _FastEcdsaPublicKey:
    """A tlslite-ng ECDSA public key whose ``verify`` runs in ``cryptography``.

    tlslite-ng passes the digest (at TLS 1.2 cut to the curve size, as ECDSA itself
    does); ECDSA uses the digest bytes as they are, so ``Prehashed`` with a hash of that
    length checks exactly the same equation.  Everything else is tlslite-ng's key.
    """

    def __init__(self, inner: Any, public: ec.EllipticCurvePublicKey) -> None:
        self._inner = inner
        self._public = public

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def verify(
        self,
        sigBytes: Octets,
        bytes_: Octets,
        padding: Any = None,
        hashAlg: Any = None,
        saltLen: Any = None,
    ) -> bool:
        algorithm = _PREHASH_BY_SIZE.get(len(bytes_))
        if algorithm is None:
            return bool(self._inner.verify(sigBytes, bytes_, padding, hashAlg, saltLen))
        try:
            self._public.verify(bytes(sigBytes), bytes(bytes_), ec.ECDSA(Prehashed(algorithm())))
        except (InvalidSignature, ValueError):
            return False
        return True


def fast_ecdsa_public_key(tlslite_key: Any, public: object) -> Any:
    """``tlslite_key`` with OpenSSL-speed ECDSA verification, when it is an EC key."""
    if getattr(tlslite_key, "key_type", None) == "ecdsa" and isinstance(
        public, ec.EllipticCurvePublicKey
    ):
        return _FastEcdsaPublicKey(tlslite_key, public)
    return tlslite_key


def install() -> None:
    """Patch tlslite-ng's record layer and key exchange (idempotent, thread-safe)."""
    if _state["installed"]:
        return
    with _lock:
        if _state["installed"]:
            return
        import tlslite.keyexchange
        import tlslite.recordlayer

        tlslite.recordlayer.createAESGCM = create_aesgcm
        tlslite.recordlayer.createCHACHA20 = create_chacha20
        tlslite.keyexchange.x25519 = x25519
        _state["installed"] = True

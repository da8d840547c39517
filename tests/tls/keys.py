"""Keys that behave like token keys: they sign, but never reveal their private numbers.

The TLS adapter must work with exactly what a PKCS#11 or TPM key object offers
(``public_key()`` and ``sign()`` over the whole unhashed message), so the client
authentication tests use these wrappers around software keys.
"""

from __future__ import annotations

from typing import Any, NoReturn, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from est_hw.keys.base import PrivateKey


def _secret() -> NoReturn:
    raise AssertionError("a token key never reveals its private part")


class _TokenLike:
    """What both key kinds share: no private part comes out, and a copy is the key itself."""

    def private_numbers(self) -> NoReturn:
        _secret()

    def private_bytes(self, *args: Any, **kwargs: Any) -> NoReturn:
        _secret()

    def __copy__(self) -> Self:
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


class TokenLikeEcKey(_TokenLike, ec.EllipticCurvePrivateKey):
    def __init__(self, inner: ec.EllipticCurvePrivateKey) -> None:
        self._inner = inner
        self.signed: list[tuple[int, str]] = []

    def sign(self, data: Any, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        assert isinstance(signature_algorithm, ec.ECDSA)
        assert not isinstance(signature_algorithm.algorithm, Prehashed)
        self.signed.append((len(data), signature_algorithm.algorithm.name))
        return self._inner.sign(data, signature_algorithm)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._inner.public_key()

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._inner.curve

    @property
    def key_size(self) -> int:
        return self._inner.key_size

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        _secret()


class TokenLikeRsaKey(_TokenLike, rsa.RSAPrivateKey):
    def __init__(self, inner: rsa.RSAPrivateKey) -> None:
        self._inner = inner
        self.signed: list[tuple[int, str, str]] = []

    def sign(self, data: Any, padding: AsymmetricPadding, algorithm: Any) -> bytes:
        assert isinstance(algorithm, hashes.HashAlgorithm)
        self.signed.append((len(data), padding.name, algorithm.name))
        return self._inner.sign(data, padding, algorithm)

    def public_key(self) -> rsa.RSAPublicKey:
        return self._inner.public_key()

    @property
    def key_size(self) -> int:
        return self._inner.key_size

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        _secret()


def token_like(key: PrivateKey) -> TokenLikeEcKey | TokenLikeRsaKey:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return TokenLikeEcKey(key)
    return TokenLikeRsaKey(key)

"""Private keys inside a PKCS#11 token, usable directly by ``cryptography``.

:class:`Pkcs11EcPrivateKey` and :class:`Pkcs11RsaPrivateKey` subclass cryptography's
private-key ABCs, so ``CertificateSigningRequestBuilder().sign(key, SHA256())`` and the TLS
adapter sign inside the token.  The private key never leaves it: every export method raises
:class:`~est_hw.errors.UnsupportedKeyError`.

Hashing is done in software and the token signs the digest (``CKM_ECDSA``, ``CKM_RSA_PKCS``
with a DigestInfo prefix, ``CKM_RSA_PKCS_PSS``; PKCS#11 v2.40 current mechanisms sections
2.3 and 2.1): SoftHSM, and many tokens, have no ``CKM_ECDSA_SHA256``, and one signing path
serves both whole messages and ``Prehashed`` digests.  RSA keys with ``CKA_DECRYPT`` also
decrypt (``CKM_RSA_PKCS``, ``CKM_RSA_PKCS_OAEP``), for CMS key transport (RFC 7030
section 4.4.2).

This module is also the one place where :class:`pkcs11.PKCS11Error` becomes an est-hw
error (:func:`pkcs11_errors`).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Generic

import pkcs11
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.utils import Buffer
from pkcs11 import MGF, Attribute, Mechanism
from pkcs11.util.ec import encode_ec_public_key, encode_ecdsa_signature

from est_hw import metrics
from est_hw.errors import (
    PinIncorrectError,
    TokenError,
    TokenNotFoundError,
    UnsupportedKeyError,
)
from est_hw.keys.base import EcPublicHalf, NonExportableKey, PublicT, RsaPublicHalf

_CANNOT_LEAVE = "the private key cannot leave the token"

# --- errors at the python-pkcs11 boundary -------------------------------------------------

_UNSUPPORTED = (
    pkcs11.MechanismInvalid,
    pkcs11.MechanismParamInvalid,
    pkcs11.FunctionNotSupported,
    pkcs11.KeySizeRange,
    pkcs11.DomainParamsInvalid,
    pkcs11.KeyTypeInconsistent,
    pkcs11.TemplateInconsistent,
    pkcs11.AttributeValueInvalid,
)


@contextmanager
def pkcs11_errors(action: str, token_label: str) -> Iterator[None]:
    """Turn any :class:`pkcs11.PKCS11Error` raised inside into an est-hw error.

    ``action`` says what was attempted ("logging in", "signing", ...).  python-pkcs11
    raises one class per ``CKR_*`` return value (PKCS#11 v2.40 base section 5.1) and its
    messages never contain the PIN; ours never do either.
    """
    where = f"token '{token_label}'"
    try:
        yield
    except (pkcs11.PinIncorrect, pkcs11.PinInvalid, pkcs11.PinLenRange) as exc:
        raise PinIncorrectError(f"{where} rejected the PIN") from exc
    except pkcs11.PinLocked as exc:
        raise TokenError(f"the user PIN of {where} is locked; unlock it with the SO PIN") from exc
    except pkcs11.PinExpired as exc:
        raise TokenError(f"the user PIN of {where} has expired; change it first") from exc
    except pkcs11.UserPinNotInitialized as exc:
        raise TokenError(f"{where} has no user PIN yet; initialise it first") from exc
    except pkcs11.UserAlreadyLoggedIn as exc:
        raise TokenError(
            f"{action}: {where} is already open and logged in in this process; "
            "close the other backend first"
        ) from exc
    except (pkcs11.SessionClosed, pkcs11.SessionHandleInvalid) as exc:
        raise TokenError(f"{action}: the session to {where} is closed") from exc
    except (pkcs11.TokenNotPresent, pkcs11.DeviceRemoved, pkcs11.TokenNotRecognised) as exc:
        raise TokenNotFoundError(f"{action}: {where} is no longer present") from exc
    except pkcs11.DeviceMemory as exc:
        raise TokenError(f"{action}: {where} is out of memory (CKR_DEVICE_MEMORY)") from exc
    except (pkcs11.TokenWriteProtected, pkcs11.SessionReadOnly) as exc:
        raise TokenError(f"{action}: {where} is write-protected") from exc
    except _UNSUPPORTED as exc:
        raise UnsupportedKeyError(
            f"{action}: {where} does not support it ({type(exc).__name__})"
        ) from exc
    except pkcs11.PKCS11Error as exc:
        detail = f": {exc}" if str(exc) else ""
        raise TokenError(f"{action} failed on {where} ({type(exc).__name__}{detail})") from exc


class SessionGuard:
    """The state shared by a backend and its key objects: one session, one lock.

    A PKCS#11 session runs one operation at a time (``C_SignInit``/``C_Sign`` pairs must not
    interleave), so CSR signing and TLS handshakes on several threads take the lock.  The
    backend passes the lock of its whole module (:func:`~est_hw.keys.pkcs11_tokens.
    module_lock`), so sessions on different tokens of one module do not overlap either.
    """

    def __init__(self, token_label: str, lock: threading.RLock | None = None) -> None:
        self.token_label = token_label
        self.lock = lock if lock is not None else threading.RLock()
        self.closed = False

    @contextmanager
    def call(self, action: str) -> Iterator[None]:
        """Hold the lock, refuse if closed, and map PKCS#11 errors."""
        with self.lock:
            if self.closed:
                raise TokenError(f"{action}: the session to token '{self.token_label}' is closed")
            with pkcs11_errors(action, self.token_label):
                yield


# --- public keys from PKCS#11 objects -----------------------------------------------------


def ec_public_key_of(public_object: pkcs11.PublicKey) -> ec.EllipticCurvePublicKey:
    """The public key of a ``CKK_EC`` public key object (``CKA_EC_PARAMS``, ``CKA_EC_POINT``)."""
    key = serialization.load_der_public_key(encode_ec_public_key(public_object))
    if not isinstance(key, ec.EllipticCurvePublicKey):  # pragma: no cover - defensive
        raise UnsupportedKeyError("CKA_EC_POINT does not hold an EC public key")
    return key


def rsa_public_key_of(key_object: pkcs11.Object) -> rsa.RSAPublicKey:
    """The public key of a ``CKK_RSA`` key object (``CKA_MODULUS``, ``CKA_PUBLIC_EXPONENT``).

    Built from the numbers rather than ``encode_rsa_public_key``, which gives PKCS#1.
    """
    attrs = key_object.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
    modulus = int.from_bytes(attrs[Attribute.MODULUS], "big")
    exponent = int.from_bytes(attrs[Attribute.PUBLIC_EXPONENT], "big")
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


# --- hashing -----------------------------------------------------------------------------

# PKCS#11 digest mechanism and MGF1 variant for each hash (PKCS#11 v2.40 current mechanisms
# section 2.1.7, CK_RSA_PKCS_PSS_PARAMS).
_HASH_MECHANISMS: dict[str, tuple[Mechanism, MGF]] = {
    "sha224": (Mechanism.SHA224, MGF.SHA224),
    "sha256": (Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512, MGF.SHA512),
}

# OAEP adds SHA-1 (its default, RFC 8017 appendix A.2.1) to the hashes above.
_OAEP_HASHES: dict[str, tuple[Mechanism, MGF]] = {
    "sha1": (Mechanism.SHA_1, MGF.SHA1),
    **_HASH_MECHANISMS,
}

# DER DigestInfo prefixes, RFC 8017 section 9.2 note 1.
_DIGEST_INFO: dict[str, bytes] = {
    "sha224": bytes.fromhex("302d300d06096086480165030402040500041c"),
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _hash_of(algorithm: utils.Prehashed | hashes.HashAlgorithm) -> hashes.HashAlgorithm:
    if isinstance(algorithm, utils.Prehashed):
        return algorithm._algorithm
    return algorithm


def _digest(data: bytes, algorithm: utils.Prehashed | hashes.HashAlgorithm) -> bytes:
    """Hash ``data``, or check that it is a digest already (``Prehashed``)."""
    name = _hash_of(algorithm).name
    if name not in _HASH_MECHANISMS:
        raise UnsupportedKeyError(f"hash algorithm {name} is not supported")
    if isinstance(algorithm, utils.Prehashed):
        if len(data) != algorithm.digest_size:
            raise ValueError(
                f"prehashed data is {len(data)} bytes, expected {algorithm.digest_size}"
            )
        return data
    digest = hashes.Hash(algorithm)
    digest.update(data)
    return digest.finalize()


# --- the key objects -----------------------------------------------------------------------


class _Pkcs11KeyMixin(NonExportableKey, Generic[PublicT]):
    """What both key classes share: the token object, its public key, id and label, and
    the session guard."""

    def __init__(
        self,
        p11_key: pkcs11.SignMixin,
        public_key: PublicT,
        *,
        key_id: bytes,
        label: str,
        guard: SessionGuard,
    ) -> None:
        self._p11 = p11_key
        self._public_key: PublicT = public_key
        self._guard = guard
        self.key_id = key_id
        self.label = label

    def _sign_raw(self, data: bytes, mechanism: Mechanism, param: Any = None) -> bytes:
        metrics.count("token_signatures")
        with self._guard.call(f"signing with key '{self.label}'"):
            return self._p11.sign(data, mechanism=mechanism, mechanism_param=param)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} label={self.label!r} id={self.key_id.hex()} "
            f"token={self._guard.token_label!r}>"
        )


class Pkcs11EcPrivateKey(
    _Pkcs11KeyMixin[ec.EllipticCurvePublicKey], EcPublicHalf, ec.EllipticCurvePrivateKey
):
    """An EC private key (``CKK_EC``) that signs inside the token with ``CKM_ECDSA``."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """Sign with ECDSA; returns the DER ``ECDSA-Sig-Value`` (RFC 3279 section 2.2.3).

        The digest is truncated to the bit length of the group order (FIPS 186-5
        section 6.4.1) before it goes to the token, so e.g. P-256 with SHA-384 works.
        """
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedKeyError(f"{type(signature_algorithm).__name__} is not ECDSA")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedKeyError("deterministic ECDSA (RFC 6979) is not done by tokens")
        digest = _digest(bytes(data), signature_algorithm.algorithm)
        order_bytes = (self.curve.group_order.bit_length() + 7) // 8
        raw = self._sign_raw(digest[:order_bytes], Mechanism.ECDSA)
        return encode_ecdsa_signature(raw)

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedKeyError(f"ECDH is not offered: {_CANNOT_LEAVE}")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        self._refuse_export()


class Pkcs11RsaPrivateKey(_Pkcs11KeyMixin[rsa.RSAPublicKey], RsaPublicHalf, rsa.RSAPrivateKey):
    """An RSA private key (``CKK_RSA``) that signs inside the token.

    PKCS#1 v1.5 goes through ``CKM_RSA_PKCS`` over DigestInfo (RFC 8017 section 9.2), PSS
    through ``CKM_RSA_PKCS_PSS`` over the digest with explicit ``CK_RSA_PKCS_PSS_PARAMS``.
    """

    def sign(
        self,
        data: bytes,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        """Sign with PKCS#1 v1.5 or PSS (RFC 8017 sections 8.1 and 8.2)."""
        data = bytes(data)
        if isinstance(algorithm, utils.NoDigestInfo):
            if not isinstance(padding, _padding.PKCS1v15):
                raise UnsupportedKeyError("NoDigestInfo needs PKCS1v15 padding")
            return self._sign_raw(data, Mechanism.RSA_PKCS)
        hash_algorithm = _hash_of(algorithm)
        digest = _digest(data, algorithm)
        if isinstance(padding, _padding.PKCS1v15):
            return self._sign_raw(_DIGEST_INFO[hash_algorithm.name] + digest, Mechanism.RSA_PKCS)
        if isinstance(padding, _padding.PSS):
            return self._sign_raw(
                digest, Mechanism.RSA_PKCS_PSS, self._pss_params(padding, hash_algorithm)
            )
        raise UnsupportedKeyError(f"RSA padding {padding.name} is not supported for signing")

    def _pss_params(
        self, pss: _padding.PSS, hash_algorithm: hashes.HashAlgorithm
    ) -> tuple[Mechanism, MGF, int]:
        """``CK_RSA_PKCS_PSS_PARAMS`` (hashAlg, mgf, sLen) for ``pss``."""
        mgf = pss.mgf
        if not isinstance(mgf, _padding.MGF1):
            raise UnsupportedKeyError("PSS needs MGF1")
        mgf_hash: hashes.HashAlgorithm = mgf._algorithm
        if mgf_hash.name not in _HASH_MECHANISMS:
            raise UnsupportedKeyError(f"MGF1 with {mgf_hash.name} is not supported")
        spec = pss._salt_length
        if isinstance(spec, _padding._Auto):
            raise UnsupportedKeyError("PSS.AUTO is for verification; choose a salt length")
        if isinstance(spec, _padding._DigestLength):
            salt = hash_algorithm.digest_size
        elif isinstance(spec, _padding._MaxLength):
            salt = _padding.calculate_max_pss_salt_length(self._public_key, hash_algorithm)
        else:
            salt = spec
        return (_HASH_MECHANISMS[hash_algorithm.name][0], _HASH_MECHANISMS[mgf_hash.name][1], salt)

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        """Decrypt inside the token: PKCS#1 v1.5 (``CKM_RSA_PKCS``) or OAEP
        (``CKM_RSA_PKCS_OAEP``, RFC 8017 sections 7.2 and 7.1) with MGF1, no label.

        Only keys with ``CKA_DECRYPT`` decrypt; keys est-hw generates are sign-only, so a
        decryption key is one made for it on the token beforehand.
        """
        p11 = self._p11
        if not isinstance(p11, pkcs11.DecryptMixin):
            raise UnsupportedKeyError(
                f"key '{self.label}' cannot decrypt (no CKA_DECRYPT), and {_CANNOT_LEAVE}"
            )
        mechanism: Mechanism
        param: Any = None
        if isinstance(padding, _padding.PKCS1v15):
            mechanism = Mechanism.RSA_PKCS
        elif isinstance(padding, _padding.OAEP):
            mgf = padding._mgf
            oaep_hash: hashes.HashAlgorithm = padding._algorithm
            if not isinstance(mgf, _padding.MGF1) or padding._label:
                raise UnsupportedKeyError("OAEP needs MGF1 and no label")
            mgf_hash: hashes.HashAlgorithm = mgf._algorithm
            if oaep_hash.name not in _OAEP_HASHES or mgf_hash.name not in _OAEP_HASHES:
                raise UnsupportedKeyError(f"OAEP with {oaep_hash.name} is not supported")
            mechanism = Mechanism.RSA_PKCS_OAEP
            param = (_OAEP_HASHES[oaep_hash.name][0], _OAEP_HASHES[mgf_hash.name][1], None)
        else:
            raise UnsupportedKeyError(f"RSA padding {padding.name} is not supported to decrypt")
        with self._guard.call(f"decrypting with key '{self.label}'"):
            plain = p11.decrypt(bytes(ciphertext), mechanism=mechanism, mechanism_param=param)
        if not isinstance(plain, bytes):  # pragma: no cover - only for iterables of chunks
            raise TokenError(f"decrypting with key '{self.label}' gave no bytes")
        return plain

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        self._refuse_export()

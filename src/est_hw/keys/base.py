"""The key-backend contract shared by the PKCS#11, TPM and file backends.

A backend opens one key store (a PKCS#11 token, a TPM, a directory of key files) and
yields :class:`TokenKey` objects.  ``TokenKey.private_key`` is usable directly by
``cryptography``: it subclasses ``ec.EllipticCurvePrivateKey`` or ``rsa.RSAPrivateKey``
and signs inside the store, so CSR building (``x509/``) and TLS client authentication
(``tls/``) share exactly one signing path per backend.

Backends never read environment variables or prompt: PINs and auth values arrive already
resolved as :class:`Secret`.  Library exceptions are turned into :mod:`est_hw.errors` at
the backend boundary.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn, Self, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from est_hw.closing import ClosedOnExit

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey


class Secret:
    """A PIN, password or auth value that must never be printed.

    ``repr`` and ``str`` hide the value; call :meth:`reveal` at the one place that
    hands it to the library that needs it.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


class KeyType(enum.Enum):
    """Key types a backend may generate."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"

    @property
    def is_ec(self) -> bool:
        return self.value.startswith("ec-")

    @property
    def rsa_bits(self) -> int:
        """Modulus size of an RSA key type (0 for EC)."""
        return int(self.value.split("-")[1]) if not self.is_ec else 0

    @property
    def curve(self) -> ec.EllipticCurve | None:
        """The curve of an EC key type (None for RSA)."""
        return {"ec-p256": ec.SECP256R1(), "ec-p384": ec.SECP384R1()}.get(self.value)

    @classmethod
    def of_public_key(cls, public_key: PublicKey) -> KeyType:
        """The key type that describes ``public_key``.

        :raises UnsupportedKeyError: for curves or sizes est-hw does not handle.
        """
        from est_hw.errors import UnsupportedKeyError

        if isinstance(public_key, ec.EllipticCurvePublicKey):
            curve = public_key.curve.name
            name = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}.get(curve, f"ec-{curve}")
        else:
            name = f"rsa-{public_key.key_size}"
        try:
            return cls(name)
        except ValueError:
            raise UnsupportedKeyError(f"unsupported key type: {name}") from None


class NonExportableKey:
    """Mixin for key objects whose private half stays in hardware.

    It precedes cryptography's private-key ABC in the class bases, so its methods count
    as the ABC's: export raises, and copies are the same handle.  Subclasses set
    :attr:`cannot_leave` (the one-line reason) and implement ``private_numbers`` with
    :meth:`_refuse_export`.
    """

    cannot_leave = "the private key cannot leave the token"

    def _refuse_export(self, *_args: object, **_kwargs: object) -> NoReturn:
        from est_hw.errors import UnsupportedKeyError

        raise UnsupportedKeyError(self.cannot_leave)

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        self._refuse_export()

    def __copy__(self) -> Self:
        """A hardware key is a handle: copies are the same key."""
        return self

    def __deepcopy__(self, memo: dict[int, object]) -> Self:
        return self


#: The public key of a key object: EC or RSA (what :class:`EcPublicHalf` and
#: :class:`RsaPublicHalf` expose).
PublicT = TypeVar("PublicT", ec.EllipticCurvePublicKey, rsa.RSAPublicKey)


class EcPublicHalf:
    """Mixin: the public-key side of an EC key object, from its ``_public_key``.

    Precedes the private-key ABC (and any library key class) in the bases.
    """

    _public_key: ec.EllipticCurvePublicKey

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public_key

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public_key.curve

    @property
    def key_size(self) -> int:
        return self._public_key.curve.key_size


class RsaPublicHalf:
    """Mixin: the public-key side of an RSA key object, from its ``_public_key``."""

    _public_key: rsa.RSAPublicKey

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public_key

    @property
    def key_size(self) -> int:
        return self._public_key.key_size


@dataclass(frozen=True)
class TokenKey:
    """A private key inside a key store, with what identifies it there.

    :param private_key: a cryptography-compatible key object that signs inside the store.
    :param key_id: the identifier shared by key and certificate (PKCS#11 ``CKA_ID``).
    :param label: the human label (PKCS#11 ``CKA_LABEL``).
    :param key_type: the key's algorithm and size.
    """

    private_key: PrivateKey
    key_id: bytes
    label: str
    key_type: KeyType

    def public_key(self) -> PublicKey:
        return self.private_key.public_key()


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate found in a key store.

    :param key_id: the id it is stored under (same as its key's, when it has one).
    :param label: its label in the store.
    :param is_ca: stored as a CA certificate (PKCS#11 ``CKA_CERTIFICATE_CATEGORY`` = 2).
    :param location: where it is kept when that is not obvious from the store, e.g.
        ``nv:0x01000100`` or ``file:/var/lib/est-hw/tpm-81000100.chain.pem`` (TPM);
        empty when it is simply an object in the store.
    """

    certificate: x509.Certificate
    key_id: bytes
    label: str
    is_ca: bool = False
    location: str = ""


@dataclass(frozen=True)
class Inventory:
    """What a key store holds: its keys and its certificates."""

    keys: Sequence[TokenKey]
    certificates: Sequence[StoredCertificate]


def describe_selection(key_id: bytes | None, label: str | None) -> str:
    """How a ``find_key(key_id=..., label=...)`` names what it looks for, e.g.
    ``id 0a1b and label 'dev-1'``.

    :raises UsageError: neither is given.
    """
    from est_hw.errors import UsageError

    if key_id is None and label is None:
        raise UsageError("give a key id or a key label to select a key")
    parts = [f"id {key_id.hex()}"] if key_id is not None else []
    parts += [f"label {label!r}"] if label is not None else []
    return " and ".join(parts)


def require_one_match(ids: Sequence[bytes], wanted: str, *, noun: str, where: str) -> None:
    """Refuse a key selection that matched no key, or several (listed by id).

    :param ids: the ids of the keys found; ``wanted`` as :func:`describe_selection` says it.
    :raises KeyNotFoundError: not exactly one.
    """
    from est_hw.errors import KeyNotFoundError

    if not ids:
        raise KeyNotFoundError(f"no {noun} with {wanted} {where}")
    if len(ids) > 1:
        listed = ", ".join(key_id.hex() for key_id in ids)
        raise KeyNotFoundError(
            f"{len(ids)} {noun}s with {wanted} {where} (ids {listed}); select one by id"
        )


class KeyBackend(ClosedOnExit, abc.ABC):
    """An open key store.  Use as a context manager; :meth:`close` releases it."""

    #: Human name of the store (the PKCS#11 token label, the TPM's TCTI, a directory).
    name: str

    @abc.abstractmethod
    def new_key_id(self) -> bytes:
        """A fresh id no key in the store uses, for :meth:`generate_key` to honour.

        Enrollment records the id in its journal before the key exists, so a key made by
        a run that was killed is found (and reused or removed) by the next run.
        """

    @abc.abstractmethod
    def generate_key(self, key_type: KeyType, label: str, key_id: bytes | None = None) -> TokenKey:
        """Generate a non-exportable key pair inside the store.

        :param key_id: the id to give it (from :meth:`new_key_id`); a fresh one if None.
        """

    @abc.abstractmethod
    def import_key(
        self, private_key: PrivateKey, label: str, key_id: bytes | None = None
    ) -> TokenKey:
        """Import a software key (e.g. from /serverkeygen) so that it cannot leave again.

        PKCS#11: sensitive and not extractable after import.  The caller drops its copy.
        """

    @abc.abstractmethod
    def find_key(self, *, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
        """Find exactly one private key by id and/or label.

        :raises KeyNotFoundError: when none matches (or several do).
        """

    @abc.abstractmethod
    def store_certificate(
        self, key: TokenKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        """Store ``certificate`` beside ``key`` (same id and label) and its CA ``chain``.

        Replaces an earlier certificate stored under the same id.  Implementations either
        store everything or leave the store as it was.
        """

    @abc.abstractmethod
    def inventory(self) -> Inventory:
        """List the keys and certificates in the store."""

    @abc.abstractmethod
    def delete_key(self, key: TokenKey) -> None:
        """Delete the key pair (private and public objects) of ``key``."""

    @abc.abstractmethod
    def delete_certificates(self, key_id: bytes) -> None:
        """Delete the end-entity certificates stored under ``key_id``."""

    # --- small records kept in the store (the enrollment journal) -----------------------------

    @abc.abstractmethod
    def put_record(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name`` in the store, replacing an earlier record."""

    @abc.abstractmethod
    def get_record(self, name: str) -> bytes | None:
        """The record stored under ``name``, or None."""

    @abc.abstractmethod
    def delete_record(self, name: str) -> None:
        """Remove the record ``name`` (no error when absent)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store (log out, close sessions, flush handles)."""

"""Private keys inside a TPM 2.0, usable directly by ``cryptography``.

:class:`TpmEcPrivateKey` and :class:`TpmRsaPrivateKey` reuse tpm2-pytss's
``tpm_ecc_private_key``/``tpm_rsa_private_key`` (which subclass cryptography's private-key
ABCs): their ``sign`` hashes, maps the cryptography padding or algorithm to a
``TPMT_SIG_SCHEME``, runs ``TPM2_Sign`` (TPM 2.0 Library Part 3 section 20.2) and returns
DER (ECDSA) or the raw signature (RSA).  What est-hw adds around it:

* the key is made usable only for the one operation (:class:`PersistentKeyRef`: an ESYS_TR
  for the persistent handle; :class:`KeyFileRef`: loaded under its parent and flushed
  afterwards), inside :meth:`TpmContext.call` (lock, closed check, TSS2 error map);
* checks before the TPM is asked: ECDSA only; PKCS#1 v1.5 or PSS with MGF1 over the same
  hash and a salt as long as the digest (the salt TPMs use; a ``PSS.MAX_LENGTH`` request
  would produce a signature whose salt differs from what the CSR header declares, so it
  is refused, FIELD-NOTES);
* the object at the handle must still be this key (its TPM name is compared), and an
  RSA-PSS signature is verified before it is returned (a TPM not bound to FIPS 186 may use
  a longer salt, Part 1 annex B.7);
* export, decryption and ECDH are refused with :class:`UnsupportedKeyError`; copies are
  the same key (a handle).

tpm2-pytss's classes are built here without their ``__init__`` (which needs a loaded
handle); the attributes their methods use (``_public``, ``_ectx``, ``_handle``,
``_session``, ``_curve``) are set here and ``_handle``/``_ectx`` refreshed per operation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa, utils
from cryptography.hazmat.primitives.asymmetric import padding as _padding
from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding
from cryptography.utils import Buffer
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.cryptography import tpm_ecc_private_key, tpm_rsa_private_key

from est_hw import metrics
from est_hw.errors import KeyNotFoundError, UnsupportedKeyError
from est_hw.keys.base import (
    EcPublicHalf,
    KeyType,
    NonExportableKey,
    PublicKey,
    PublicT,
    RsaPublicHalf,
)
from est_hw.keys.tpm_context import TpmContext
from est_hw.keys.tpm_tcti import format_handle

_CANNOT_LEAVE = "the private key cannot leave the TPM"
#: Hashes TPM2_Sign is asked for (the TPM refuses those it does not implement).
_HASHES = frozenset({"sha1", "sha256", "sha384", "sha512"})


def public_key_of(public_area: Any) -> PublicKey:
    """The cryptography public key of a ``TPMT_PUBLIC`` (RSA or ECC).

    :raises UnsupportedKeyError: another type, or a curve cryptography does not know.
    """
    try:
        key = serialization.load_der_public_key(public_area.to_der())
    except (ValueError, TypeError) as exc:
        raise UnsupportedKeyError(f"the TPM key's public area is not usable: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise UnsupportedKeyError(f"the TPM key is a {type(key).__name__}")
    return key


# --- where a key is and how it is made usable ---------------------------------------------


@dataclass(frozen=True)
class PersistentKeyRef:
    """A key persisted at ``handle`` (``TPM2_EvictControl``): nothing to load."""

    handle: int

    def describe(self) -> str:
        return f"key {format_handle(self.handle)}"

    @contextmanager
    def loaded(self, context: TpmContext, auth: bytes | None) -> Iterator[Any]:
        with context.persistent(self.handle) as tr:
            context.esapi.tr_set_auth(tr, auth)
            yield tr


@dataclass(frozen=True)
class KeyFileRef:
    """A key kept as a ``TSS2 PRIVATE KEY`` file: its sealed private part and public area,
    loaded under ``parent`` for each operation (``TPM2_Load``, Part 3 section 12.2)."""

    path: Path
    private: Any  # TPM2B_PRIVATE
    public: Any  # TPM2B_PUBLIC
    parent: int

    def describe(self) -> str:
        return f"key file {self.path}"

    @contextmanager
    def loaded(self, context: TpmContext, auth: bytes | None) -> Iterator[Any]:
        tr = None
        try:
            with context.key_file_parent(self.parent) as parent:
                tr = context.esapi.load(parent, self.private, self.public)
        except BaseException:
            if tr is not None:  # loaded, but flushing the parent failed
                context.esapi.flush_context(tr)
            raise
        with context.flushing(tr):
            context.esapi.tr_set_auth(tr, auth)
            yield tr


KeyRef = PersistentKeyRef | KeyFileRef


# --- hashing checks ----------------------------------------------------------------------


def _check_hash(algorithm: object) -> hashes.HashAlgorithm:
    if isinstance(algorithm, utils.Prehashed):
        raise UnsupportedKeyError("TPM keys sign whole messages; Prehashed is not supported")
    if not isinstance(algorithm, hashes.HashAlgorithm) or algorithm.name not in _HASHES:
        name = getattr(algorithm, "name", type(algorithm).__name__)
        raise UnsupportedKeyError(f"hash algorithm {name} is not supported for TPM signing")
    return algorithm


@contextmanager
def _scheme_errors() -> Iterator[None]:
    """tpm2-pytss raises ValueError when a key made elsewhere is bound to another scheme or
    hash than the one asked for (its ``_compare_schemes``)."""
    try:
        yield
    except ValueError as exc:
        raise UnsupportedKeyError(f"the TPM key cannot sign this way: {exc}") from exc


# --- the key objects -----------------------------------------------------------------------


class _TpmKeyMixin(NonExportableKey, Generic[PublicT]):
    """What both key classes share: the context, the key's place, its public area and
    public key, its id and label.

    ``_public``, ``_ectx``, ``_handle`` and ``_session`` are the attributes tpm2-pytss's
    key classes sign with.
    """

    cannot_leave = _CANNOT_LEAVE

    def __init__(
        self,
        context: TpmContext,
        ref: KeyRef,
        public_area: Any,
        public_key: PublicT,
        *,
        key_id: bytes,
        label: str,
        auth: bytes | None,
    ) -> None:
        self._context = context
        self._ref = ref
        self._auth = auth
        self._public: Any = public_area
        self._ectx: Any = context.esapi
        self._handle: Any = ESYS_TR.NONE
        self._session: Any = ESYS_TR.PASSWORD
        self._public_key: PublicT = public_key
        self.key_id = key_id
        self.label = label

    @property
    def ref(self) -> KeyRef:
        """Where the key is: a persistent handle or a key file."""
        return self._ref

    @contextmanager
    def _usable(self, action: str) -> Iterator[None]:
        """Lock the context and make the key usable for one TPM command."""
        what = self._ref.describe()
        with (
            self._context.call(f"{action} with {what} ('{self.label}')", auth=what) as esapi,
            self._ref.loaded(self._context, self._auth) as tr,
        ):
            # Esys_TR_FromTPMPublic read the object's name: another key may have been
            # persisted at the handle since this object was made.
            if bytes(esapi.tr_get_name(tr)) != bytes(self._public.get_name()):
                raise KeyNotFoundError(
                    f"{action}: {what} on the {self._context.where} is no longer key "
                    f"'{self.label}' (id {self.key_id.hex()}); it was replaced"
                )
            self._ectx, self._handle = esapi, tr
            try:
                yield
            finally:
                self._handle = ESYS_TR.NONE

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self._ref.describe()} label={self.label!r} "
            f"id={self.key_id.hex()} tpm={self._context.tcti!r}>"
        )


class TpmEcPrivateKey(
    _TpmKeyMixin[ec.EllipticCurvePublicKey],
    EcPublicHalf,
    tpm_ecc_private_key,  # type: ignore[misc]  # tpm2-pytss has no type information
    ec.EllipticCurvePrivateKey,
):
    """An ECC signing key inside the TPM (``TPM_ALG_ECDSA`` signatures)."""

    def sign(self, data: Buffer, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        """Sign with ECDSA; returns the DER ``ECDSA-Sig-Value`` (RFC 3279 section 2.2.3).

        A digest longer than the curve (P-256 with SHA-384) is truncated by the TPM as
        ECDSA prescribes (FIPS 186-5 section 6.4.1).
        """
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise UnsupportedKeyError(f"{type(signature_algorithm).__name__} is not ECDSA")
        if signature_algorithm.deterministic_signing:
            raise UnsupportedKeyError("deterministic ECDSA (RFC 6979) is not done by TPMs")
        _check_hash(signature_algorithm.algorithm)
        with self._usable("signing"), _scheme_errors():
            metrics.count("token_signatures")
            return bytes(tpm_ecc_private_key.sign(self, bytes(data), signature_algorithm))

    def exchange(self, algorithm: ec.ECDH, peer_public_key: ec.EllipticCurvePublicKey) -> bytes:
        raise UnsupportedKeyError(f"ECDH is not offered (signing keys only): {_CANNOT_LEAVE}")

    def private_numbers(self) -> ec.EllipticCurvePrivateNumbers:
        self._refuse_export()


class TpmRsaPrivateKey(
    _TpmKeyMixin[rsa.RSAPublicKey],
    RsaPublicHalf,
    tpm_rsa_private_key,  # type: ignore[misc]  # tpm2-pytss has no type information
    rsa.RSAPrivateKey,
):
    """An RSA signing key inside the TPM (``TPM_ALG_RSASSA`` and ``TPM_ALG_RSAPSS``)."""

    def sign(
        self,
        data: Buffer,
        padding: AsymmetricPadding,
        algorithm: utils.Prehashed | hashes.HashAlgorithm | utils.NoDigestInfo,
    ) -> bytes:
        """Sign with PKCS#1 v1.5 or PSS (RFC 8017 sections 8.2 and 8.1).

        PSS needs MGF1 with the signing hash and ``PSS.DIGEST_LENGTH`` (or the digest
        length as a number): the TPM always uses a salt as long as the digest.
        """
        if isinstance(algorithm, utils.NoDigestInfo):
            raise UnsupportedKeyError("TPM keys sign a DigestInfo; NoDigestInfo is not supported")
        hash_algorithm = _check_hash(algorithm)
        if isinstance(padding, _padding.PSS):
            self._check_pss(padding, hash_algorithm)
        elif not isinstance(padding, _padding.PKCS1v15):
            raise UnsupportedKeyError(f"RSA padding {padding.name} is not supported for signing")
        with self._usable("signing"), _scheme_errors():
            metrics.count("token_signatures")
            signature = bytes(tpm_rsa_private_key.sign(self, bytes(data), padding, hash_algorithm))
        if isinstance(padding, _padding.PSS):
            self._check_pss_salt(signature, bytes(data), hash_algorithm)
        return signature

    def _check_pss_salt(
        self, signature: bytes, data: bytes, hash_algorithm: hashes.HashAlgorithm
    ) -> None:
        """Refuse a PSS signature whose salt is not digest-long.

        TPM 2.0 Library Part 1 annex B.7 lets a TPM that is not bound to FIPS 186 use the
        largest salt the key allows; such a signature would not verify against the
        parameters the caller (and the CSR or TLS header) declared.
        """
        pss = _padding.PSS(_padding.MGF1(hash_algorithm), _padding.PSS.DIGEST_LENGTH)
        try:
            self._public_key.verify(signature, data, pss, hash_algorithm)
        except InvalidSignature:
            raise UnsupportedKeyError(
                f"the {self._context.where} signs RSA-PSS with a salt other than the digest "
                "length; use PKCS#1 v1.5 or an EC key with this TPM"
            ) from None

    @staticmethod
    def _check_pss(pss: _padding.PSS, hash_algorithm: hashes.HashAlgorithm) -> None:
        mgf = pss.mgf
        if not isinstance(mgf, _padding.MGF1) or mgf._algorithm.name != hash_algorithm.name:
            raise UnsupportedKeyError("a TPM signs PSS with MGF1 over the signing hash only")
        salt = pss._salt_length
        if isinstance(salt, _padding._DigestLength) or salt == hash_algorithm.digest_size:
            return
        wanted = {_padding._MaxLength: "PSS.MAX_LENGTH", _padding._Auto: "PSS.AUTO"}.get(
            type(salt), f"a salt of {salt} bytes"
        )
        raise UnsupportedKeyError(
            f"a TPM signs PSS with a salt as long as the digest ({hash_algorithm.digest_size} "
            f"bytes); use PSS.DIGEST_LENGTH, not {wanted}"
        )

    def decrypt(self, ciphertext: bytes, padding: AsymmetricPadding) -> bytes:
        raise UnsupportedKeyError(f"decryption is not offered (signing keys only): {_CANNOT_LEAVE}")

    def private_numbers(self) -> rsa.RSAPrivateNumbers:
        self._refuse_export()


TpmPrivateKey = TpmEcPrivateKey | TpmRsaPrivateKey


def make_key(
    context: TpmContext,
    ref: KeyRef,
    public_area: Any,
    *,
    key_id: bytes,
    label: str,
    auth: bytes | None,
) -> tuple[TpmPrivateKey, KeyType]:
    """The key object for ``public_area`` at ``ref`` and its :class:`KeyType`.

    :raises UnsupportedKeyError: not an RSA/ECC key of a type est-hw handles.
    """
    public = public_key_of(public_area)
    key_type = KeyType.of_public_key(public)
    key: TpmPrivateKey
    if isinstance(public, ec.EllipticCurvePublicKey):
        key = TpmEcPrivateKey(context, ref, public_area, public, key_id=key_id, label=label,
                              auth=auth)  # fmt: skip
    else:
        key = TpmRsaPrivateKey(context, ref, public_area, public, key_id=key_id, label=label,
                               auth=auth)  # fmt: skip
    return key, key_type

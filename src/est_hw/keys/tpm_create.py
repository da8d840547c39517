"""Creating keys: persisted at a handle, or written as a ``TSS2 PRIVATE KEY`` file.

A generated key starts with ``TPM2_TestParms`` (TPM 2.0 Library Part 3 section 30.3) so an
unsupported key type (most TPMs have no RSA 4096) is refused before anything is made, then
``TPM2_Create`` (Part 3 section 12.1) under the right parent.  An imported software key
(/serverkeygen) is wrapped for that parent as a duplication blob (Part 1 section 23.3,
tpm2-pytss's ``utils.wrap``) and brought in with ``TPM2_Import`` (Part 3 section 13.3);
it gets ``userWithAuth|sign`` only (``fixedTPM``/``fixedParent`` must be clear for an
import, ``sensitiveDataOrigin`` is not true), and with an empty ``authPolicy`` it can
never be duplicated out again.  Then:

* persisted keys under the owner's storage key (:meth:`TpmContext.storage_parent`), then
  ``TPM2_Load`` and ``TPM2_EvictControl`` (Part 3 section 28.5) at the chosen handle;
* key files under the owner primary tpm2-openssl recreates for parent ``0x40000001``.

Crash safety: the key's record is written before the key is persisted or its file
written, and removed again if that fails, so est-hw never leaves a key without a record.
A persisted key without a valid record and without a certificate, with est-hw's
attributes, can only come from a lost record or an older run; generating at exactly its
handle replaces it.  Anything else at the handle is refused.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_HC, TPMA_OBJECT
from tpm2_pytss.tsskey import TSSPrivKey
from tpm2_pytss.types import (
    TPM2B_AUTH,
    TPM2B_DATA,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE,
    TPM2B_SENSITIVE_CREATE,
    TPMS_SENSITIVE_CREATE,
    TPMT_SYM_DEF_OBJECT,
)
from tpm2_pytss.utils import wrap

from est_hw.errors import TokenError, UnsupportedKeyError, UsageError
from est_hw.keys.base import KeyType, PrivateKey, TokenKey
from est_hw.keys.tpm_context import TpmContext, tpm_code
from est_hw.keys.tpm_find import KeyFinder
from est_hw.keys.tpm_keys import public_key_of
from est_hw.keys.tpm_state import KeyRecord, StateDir, public_key_sha256
from est_hw.keys.tpm_tcti import (
    DEFAULT_KEY_HANDLES,
    OWNER_HIERARCHY,
    TpmSelector,
    check_persistent_handle,
    default_nv_index,
    format_handle,
    handle_of_key_id,
    key_id_of_handle,
)
from est_hw.keys.tpm_templates import has_est_hw_profile, key_parameters, key_template
from est_hw.keys.tpm_templates import openssl_parent_template as _openssl_parent

log = logging.getLogger(__name__)

#: Length of a key file's random id.
KEY_FILE_ID_BYTES = 8
#: ``TPMA_OBJECT`` of an imported key: signing only, and never ``fixedTPM``/``fixedParent``
#: (``TPM2_Import`` refuses them) or ``sensitiveDataOrigin`` (the TPM did not make it).
IMPORT_ATTRIBUTES: int = TPMA_OBJECT.USERWITHAUTH | TPMA_OBJECT.SIGN_ENCRYPT

#: Makes the key under the given parent: (TPM2B_PRIVATE, TPM2B_PUBLIC).
_Maker = Callable[[Any], tuple[Any, Any]]


class KeyMaker:
    """Creates keys for one backend (inside :meth:`TpmContext.call`)."""

    def __init__(
        self,
        context: TpmContext,
        selector: TpmSelector,
        state: StateDir,
        finder: KeyFinder,
        auth: bytes | None,
    ) -> None:
        self._context = context
        self._selector = selector
        self._state = state
        self._finder = finder
        self._auth = auth

    def new_key_id(self) -> bytes:
        """The id of the next key: its handle, or a random id for a key file."""
        if self._selector.key_file is not None:
            used = {record.key_id for record in self._state.records()}
            while (candidate := secrets.token_bytes(KEY_FILE_ID_BYTES)) in used:
                pass  # pragma: no cover - 64 random bits
            return candidate
        if self._selector.handle is not None:
            return key_id_of_handle(self._selector.handle)
        return key_id_of_handle(self._first_free_handle())

    def generate(self, key_type: KeyType, label: str, key_id: bytes | None) -> TokenKey:
        """See :meth:`TpmBackend.generate_key`."""
        self._check_supported(key_type)
        return self._make(lambda parent: self._create(parent, key_type), key_type, label, key_id)

    def import_key(self, private_key: PrivateKey, label: str, key_id: bytes | None) -> TokenKey:
        """See :meth:`TpmBackend.import_key`."""
        key_type = KeyType.of_public_key(private_key.public_key())
        self._check_supported(key_type)
        return self._make(lambda parent: self._import(parent, private_key), key_type, label, key_id)

    def _make(self, make: _Maker, key_type: KeyType, label: str, key_id: bytes | None) -> TokenKey:
        if self._selector.key_file is not None:
            return self._key_file(make, key_type, label, self._selector.key_file, key_id)
        return self._persistent(make, key_type, label, key_id)

    def _check_supported(self, key_type: KeyType) -> None:
        try:
            self._context.esapi.test_parms(key_parameters(key_type))
        except TSS2_Exception as exc:
            if tpm_code(exc) is None:
                raise
            raise UnsupportedKeyError(
                f"the {self._context.where} does not support {key_type.value} keys "
                f"(TPM2_TestParms: {exc})"
            ) from exc

    def _create(self, parent: Any, key_type: KeyType) -> tuple[Any, Any]:
        """``TPM2_Create`` of a signing key under ``parent``: (private, public)."""
        if self._auth is None:
            sensitive = TPM2B_SENSITIVE_CREATE()
        else:
            sensitive = TPM2B_SENSITIVE_CREATE(
                TPMS_SENSITIVE_CREATE(userAuth=TPM2B_AUTH(self._auth))
            )
        private, public, _, _, _ = self._context.esapi.create(
            parent, sensitive, key_template(key_type)
        )
        return private, public

    def _import(self, parent: Any, private_key: PrivateKey) -> tuple[Any, Any]:
        """``TPM2_Import`` of ``private_key`` under ``parent``: (private, public)."""
        esapi = self._context.esapi
        pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            public = TPM2B_PUBLIC.from_pem(pem, objectAttributes=IMPORT_ATTRIBUTES)
            sensitive = TPM2B_SENSITIVE.from_pem(pem)
        except ValueError as exc:
            raise UnsupportedKeyError(f"this key cannot be imported into a TPM: {exc}") from exc
        if self._auth is not None:
            sensitive.sensitiveArea.authValue = TPM2B_AUTH(self._auth)
        parent_public, _, _ = esapi.read_public(parent)
        _, duplicate, seed = wrap(parent_public.publicArea, public, sensitive)
        no_inner_wrap = TPMT_SYM_DEF_OBJECT(algorithm=TPM2_ALG.NULL)
        private = esapi.import_(parent, TPM2B_DATA(), public, duplicate, seed, no_inner_wrap)
        return private, public

    # --- persisted keys ---------------------------------------------------------------------

    def _persistent(
        self, make: _Maker, key_type: KeyType, label: str, key_id: bytes | None
    ) -> TokenKey:
        esapi = self._context.esapi
        handle = self._handle_for(key_id)
        with self._context.storage_parent() as parent:
            private, public = make(parent)
            record = KeyRecord(
                key_id=key_id_of_handle(handle),
                label=label,
                key_type=key_type,
                public_key_sha256=public_key_sha256(public_key_of(public.publicArea)),
                handle=handle,
                nv_index=self._selector.nv_index or default_nv_index(handle),
            )
            self._state.save(record)
            try:
                with self._context.flushing(esapi.load(parent, private, public)) as loaded:
                    esapi.tr_close(esapi.evict_control(ESYS_TR.OWNER, loaded, handle))
            except BaseException:
                self._state.remove(record.key_id)
                raise
        where = format_handle(handle)
        log.info(
            "%s: persisted %s key '%s' at %s", self._context.where, key_type.value, label, where
        )
        found = self._finder.persistent(handle, record)
        if found is None:  # pragma: no cover - we just made it a signing key
            raise TokenError(f"cannot read back the key at {where}")
        return found.key

    def _handle_for(self, key_id: bytes | None) -> int:
        """The handle a new key goes to, cleared of a half-made key if need be."""
        if key_id is not None:
            handle = handle_of_key_id(key_id)
            if handle is None:
                raise UsageError(
                    f"id {key_id.hex()} is not a persistent handle; a persisted TPM key's id "
                    "is its handle (4 bytes, 0x81000000-0x81FFFFFF)"
                )
            check_persistent_handle(handle)
        elif self._selector.handle is not None:
            handle = self._selector.handle
        else:
            return self._first_free_handle()
        if handle in self._context.handles(TPM2_HC.PERSISTENT_FIRST):
            self._clear_leftover(handle)
        return handle

    def _first_free_handle(self) -> int:
        taken = set(self._context.handles(TPM2_HC.PERSISTENT_FIRST))
        for candidate in DEFAULT_KEY_HANDLES:
            if candidate not in taken:
                return candidate
        raise TokenError(
            f"no free persistent handle in {format_handle(DEFAULT_KEY_HANDLES[0])}-"
            f"{format_handle(DEFAULT_KEY_HANDLES[-1])} on the {self._context.where}; "
            "delete keys or choose a handle"
        )

    def _clear_leftover(self, handle: int) -> None:
        """Evict the key at ``handle`` if it is a half-made est-hw key, else refuse."""
        where = f"persistent handle {format_handle(handle)}"
        found = self._finder.persistent(handle, self._state.record(key_id_of_handle(handle)))
        if found is None or not has_est_hw_profile(self._finder.public_area(handle)):
            raise TokenError(
                f"{where} holds an object est-hw did not make; choose another handle, or "
                "remove it with tpm2_evictcontrol"
            )
        if found.record is not None:
            raise UsageError(
                f"{where} holds key '{found.key.label}' (id {found.key.key_id.hex()}); "
                "delete it first or choose another handle"
            )
        if self._finder.has_certificate(found):
            raise TokenError(
                f"{where} holds a key with a certificate but no est-hw record; delete it "
                "first or choose another handle"
            )
        log.warning(
            "%s: replacing the half-made key (no record, no certificate) at %s",
            self._context.where,
            where,
        )
        self._context.evict(handle)

    # --- key files ---------------------------------------------------------------------------

    def _key_file(
        self, make: _Maker, key_type: KeyType, label: str, path: Path, key_id: bytes | None
    ) -> TokenKey:
        path = path.absolute()
        if path.exists():
            raise UsageError(f"key file {path} exists; est-hw never overwrites a key file")
        if key_id is None:
            key_id = secrets.token_bytes(KEY_FILE_ID_BYTES)
        elif handle_of_key_id(key_id) is not None:
            raise UsageError(f"id {key_id.hex()} names a persistent handle, not a key file")
        elif any(item.key.key_id == key_id for item in self._finder.list_keys()):
            raise UsageError(f"id {key_id.hex()} is already used by another TPM key")
        with self._context.primary(_openssl_parent(self._context.ecc)) as parent:
            private, public = make(parent)
        pem = TSSPrivKey(private, public, self._auth is None, OWNER_HIERARCHY).to_pem()
        record = KeyRecord(
            key_id=key_id,
            label=label,
            key_type=key_type,
            public_key_sha256=public_key_sha256(public_key_of(public.publicArea)),
            key_file=path,
            nv_index=self._selector.nv_index,
        )
        self._state.save(record)
        try:
            _create_exclusive(self._state, path, pem)
        except BaseException:
            self._state.remove(record.key_id)
            raise
        log.info("%s: wrote %s key '%s' to %s", self._context.where, key_type.value, label, path)
        found = self._finder.key_file(path, record, strict=True)
        if found is None:  # pragma: no cover - strict raises instead
            raise TokenError(f"cannot read back key file {path}")
        return found.key


def _create_exclusive(state: StateDir, path: Path, data: bytes) -> None:
    """Write ``data`` to a new file ``path`` (mode 0600), never replacing one."""
    temporary = state.write_temporary(path, data, mode=0o600)
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise UsageError(f"key file {path} exists; est-hw never overwrites a key file") from None
    except OSError as exc:
        raise TokenError(f"cannot write key file {path}: {exc.strerror}") from exc
    finally:
        temporary.unlink(missing_ok=True)

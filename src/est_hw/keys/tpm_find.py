"""Finding est-hw's keys: persistent handles, key files, and their records.

Which keys a backend sees (:meth:`KeyFinder.keys`):

* persistent signing keys at handles in :data:`DEFAULT_KEY_HANDLES`, at handles named in
  a record, or at ``selector.handle``;
* key files named in a record, and ``selector.key_file``.

A record counts only while it describes the very key found (same public key hash, same
handle or file); otherwise it is stale and the key gets an empty label.  Everything here
runs inside :meth:`TpmContext.call`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_HC
from tpm2_pytss.tsskey import TSSPrivKey

from est_hw.errors import KeyNotFoundError, TokenError, UnsupportedKeyError
from est_hw.keys import tpm_certs
from est_hw.keys.base import TokenKey
from est_hw.keys.tpm_context import TpmContext
from est_hw.keys.tpm_keys import KeyFileRef, KeyRef, PersistentKeyRef, make_key, public_key_of
from est_hw.keys.tpm_nv import read_nv
from est_hw.keys.tpm_state import KeyRecord, StateDir, public_key_sha256
from est_hw.keys.tpm_tcti import (
    DEFAULT_KEY_HANDLES,
    TpmSelector,
    default_nv_index,
    handle_of_key_id,
    key_file_key_id,
    key_id_of_handle,
)
from est_hw.keys.tpm_templates import is_signing_key

log = logging.getLogger(__name__)

SPKI = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo


@dataclass(frozen=True)
class FoundKey:
    """A key found on the TPM or in a key file, with its record when that is valid."""

    key: TokenKey
    ref: KeyRef
    record: KeyRecord | None

    def new_record(self) -> KeyRecord:
        """A record for this key as it is (for a key that has none)."""
        ref = self.ref
        return KeyRecord(
            key_id=self.key.key_id,
            label=self.key.label,
            key_type=self.key.key_type,
            public_key_sha256=public_key_sha256(self.key.public_key()),
            handle=ref.handle if isinstance(ref, PersistentKeyRef) else None,
            key_file=ref.path if isinstance(ref, KeyFileRef) else None,
        )


class KeyFinder:
    """Lists and looks up keys for one backend."""

    def __init__(
        self, context: TpmContext, selector: TpmSelector, state: StateDir, auth: bytes | None
    ) -> None:
        self._context = context
        self._selector = selector
        self._state = state
        self._auth = auth

    def list_keys(self) -> list[FoundKey]:
        """Every key this backend sees (see the module docstring)."""
        records = self._state.records()
        by_handle = {r.handle: r for r in records if r.handle is not None}
        wanted = set(DEFAULT_KEY_HANDLES) | set(by_handle)
        if self._selector.handle is not None:
            wanted.add(self._selector.handle)
        found: list[FoundKey] = []
        for handle in self._context.handles(TPM2_HC.PERSISTENT_FIRST):
            if handle in wanted:
                item = self.persistent(handle, by_handle.get(handle))
                if item is not None:
                    found.append(item)
        paths: dict[Path, KeyRecord | None] = {
            r.key_file: r for r in records if r.key_file is not None
        }
        if self._selector.key_file is not None:
            paths.setdefault(self._selector.key_file.absolute(), None)
        for path, record in paths.items():
            item = self.key_file(path, record)
            if item is not None and all(item.key.key_id != f.key.key_id for f in found):
                found.append(item)
        return found

    def candidates(self, key_id: bytes | None) -> list[FoundKey]:
        """The keys a lookup by ``key_id`` considers: the one persistent handle such an id
        names (even outside est-hw's range and without a record), else all."""
        handle = handle_of_key_id(key_id) if key_id is not None else None
        if handle is None:
            return self.list_keys()
        if handle not in self._context.handles(TPM2_HC.PERSISTENT_FIRST):
            return []
        item = self.persistent(handle, self._state.record(key_id_of_handle(handle)))
        return [item] if item is not None else []

    def resolve(self, key: TokenKey) -> FoundKey:
        """``key`` as it is now on the TPM.

        :raises KeyNotFoundError: it is gone.
        """
        for item in self.candidates(key.key_id):
            if item.key.key_id == key.key_id:
                return item
        raise KeyNotFoundError(
            f"key '{key.label}' (id {key.key_id.hex()}) is not on the {self._context.where}"
        )

    def public_area(self, handle: int) -> Any:
        """The ``TPMT_PUBLIC`` of the persistent object at ``handle`` (``TPM2_ReadPublic``)."""
        with self._context.persistent(handle) as tr:
            public, _, _ = self._context.esapi.read_public(tr)
        return public.publicArea

    def persistent(self, handle: int, record: KeyRecord | None) -> FoundKey | None:
        """The signing key at ``handle`` (``None``: not a signing key est-hw can use)."""
        area = self.public_area(handle)
        if not is_signing_key(area):
            return None
        return self._found(PersistentKeyRef(handle), area, key_id_of_handle(handle), record)

    def key_file(
        self, path: Path, record: KeyRecord | None, strict: bool = False
    ) -> FoundKey | None:
        """The key in the ``TSS2 PRIVATE KEY`` file at ``path`` (``None``: missing, or
        unreadable and logged; ``strict`` raises instead)."""
        try:
            tss = TSSPrivKey.from_pem(path.read_bytes())
            area = tss.public.publicArea
            if not is_signing_key(area):
                raise ValueError("not a signing key")
            key_id = key_file_key_id(public_key_of(area).public_bytes(*SPKI))
        except FileNotFoundError:
            if strict:
                raise KeyNotFoundError(f"no key file at {path}") from None
            return None
        except (OSError, ValueError, TypeError, UnsupportedKeyError, TSS2_Exception) as exc:
            if strict:
                raise TokenError(f"{path} is not a usable TSS2 PRIVATE KEY file: {exc}") from exc
            log.warning("skipping key file %s: %s", path, exc)
            return None
        ref = KeyFileRef(path, tss.private, tss.public, int(tss.parent))
        return self._found(ref, area, key_id, record)

    def selected_key_file(self, path: Path) -> FoundKey:
        """The key file at ``path`` with its record, if any.

        :raises KeyNotFoundError: no such file.
        :raises TokenError: not a usable key file.
        """
        path = path.absolute()
        records = [r for r in self._state.records() if r.key_file == path]
        found = self.key_file(path, records[0] if records else None, strict=True)
        if found is None:  # pragma: no cover - strict raises instead
            raise KeyNotFoundError(f"no key file at {path}")
        return found

    def _found(self, ref: KeyRef, area: Any, key_id: bytes, record: KeyRecord | None) -> FoundKey:
        """The :class:`FoundKey` for the key ``area`` describes at ``ref``; a key file's
        id is its record's id, else ``key_id`` (its SPKI digest)."""
        public_hash = public_key_sha256(public_key_of(area))
        if record is None and isinstance(ref, PersistentKeyRef):
            record = self._state.record(key_id)
        if record is not None and (
            record.public_key_sha256 != public_hash
            or (isinstance(ref, PersistentKeyRef) and record.handle != ref.handle)
            or (isinstance(ref, KeyFileRef) and record.key_file != ref.path)
        ):
            record = None  # stale: another key lives there now
        if record is not None:
            key_id = record.key_id
        label = record.label if record is not None else ""
        private, key_type = make_key(
            self._context, ref, area, key_id=key_id, label=label, auth=self._auth
        )
        return FoundKey(TokenKey(private, key_id, label, key_type), ref, record)

    # --- certificates of a key ------------------------------------------------------------

    def nv_index(self, item: FoundKey, *, storing: bool = False) -> int | None:
        """The key's certificate index: its record's, else ``selector.nv_index`` when the
        selector names this key (or, when storing, names no key at all), else the default
        index of its handle; ``None`` for a key file without one."""
        if item.record is not None and item.record.nv_index is not None:
            return item.record.nv_index
        selector = self._selector
        names_no_key = selector.handle is None and selector.key_file is None
        if selector.nv_index is not None and (
            self._is_selected(item.ref) or (storing and names_no_key)
        ):
            return selector.nv_index
        if isinstance(item.ref, PersistentKeyRef):
            return default_nv_index(item.ref.handle)
        return None

    def _is_selected(self, ref: KeyRef) -> bool:
        selector = self._selector
        if isinstance(ref, PersistentKeyRef):
            return ref.handle == selector.handle
        return selector.key_file is not None and ref.path == selector.key_file.absolute()

    def has_certificate(self, item: FoundKey) -> bool:
        """Whether a certificate for ``item``'s public key is stored (NV or file)."""
        wanted = public_key_sha256(item.key.public_key())
        index = self.nv_index(item)
        content = read_nv(self._context, index) if index is not None else None
        stored = tpm_certs.from_nv(content, b"", "") if content is not None and content.ours else []
        path = self._state.cert_path(item.key.key_id)
        if path.exists():
            stored += tpm_certs.from_file(path, b"", "", False)
        return any(tpm_certs.certificate_key_hash(s.certificate) == wanted for s in stored)

    def label_of(self, key_id: bytes) -> str:
        """The label a record gives ``key_id`` (``""`` without one)."""
        record = self._state.record(key_id)
        return record.label if record is not None else ""

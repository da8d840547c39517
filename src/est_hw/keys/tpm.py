"""The TPM 2.0 key backend, on tpm2-pytss (ESAPI).

:func:`open_tpm` connects through a TCTI and returns a :class:`TpmBackend` with the same
:class:`~est_hw.keys.base.KeyBackend` contract as the PKCS#11 backend:

* keys are signing keys created inside the TPM under the owner's storage key
  (``TPM2_Create``, TPM 2.0 Library Part 3 section 12.1) with ``fixedTPM``,
  ``fixedParent``, ``sensitiveDataOrigin``, ``userWithAuth``, ``sign`` (see
  :mod:`est_hw.keys.tpm_templates`), then either persisted at a handle
  (``TPM2_EvictControl``, Part 3 section 28.5) or kept as a ``TSS2 PRIVATE KEY`` PEM file
  that tpm2-openssl also reads;
* a key's certificate goes into its NV index, with a file fallback for what does not
  fit (:mod:`est_hw.keys.tpm_certs`);
* labels and the key-file list live in the state directory (:mod:`est_hw.keys.tpm_state`).

Handle ranges, NV defaults and key ids are described in :mod:`est_hw.keys.tpm_tcti`;
``docs/tpm.md`` is the user's guide.  Every :class:`tpm2_pytss.TSS2_Exception` becomes an
est-hw error in :func:`est_hw.keys.tpm_context.tpm_errors`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cryptography import x509

from est_hw.errors import CertificateMismatchError, UsageError
from est_hw.keys import tpm_certs
from est_hw.keys.base import (
    Inventory,
    KeyBackend,
    KeyType,
    PrivateKey,
    StoredCertificate,
    TokenKey,
    describe_selection,
    require_one_match,
)
from est_hw.keys.tpm_context import TpmContext
from est_hw.keys.tpm_create import KeyMaker
from est_hw.keys.tpm_find import SPKI, KeyFinder
from est_hw.keys.tpm_keys import PersistentKeyRef
from est_hw.keys.tpm_nv import nv_indices, read_nv
from est_hw.keys.tpm_state import StateDir
from est_hw.keys.tpm_tcti import (
    DEFAULT_KEY_HANDLES,
    TpmSelector,
    default_nv_index,
    handle_of_key_id,
    key_id_of_handle,
)

__all__ = ["TpmBackend", "TpmSelector", "open_tpm"]

log = logging.getLogger(__name__)

_OWNER = "the owner hierarchy"
#: NV indices :func:`default_nv_index` gives the keys of :data:`DEFAULT_KEY_HANDLES`.
_DEFAULT_NV = frozenset(filter(None, map(default_nv_index, DEFAULT_KEY_HANDLES)))


def open_tpm(selector: TpmSelector) -> TpmBackend:
    """Connect to the TPM ``selector.tcti`` names and use ``selector.state_dir``.

    Leftover transient objects are flushed (see :class:`TpmContext`).

    :raises TokenNotFoundError: the TCTI cannot be loaded or the TPM does not answer.
    :raises TokenError: the state directory cannot be used.
    """
    state = StateDir.open(selector.state_dir)
    return TpmBackend(TpmContext.open(selector.tcti, selector.owner_auth), selector, state)


class TpmBackend(KeyBackend):
    """An open TPM.  Use :func:`open_tpm`."""

    def __init__(self, context: TpmContext, selector: TpmSelector, state: StateDir) -> None:
        auth = selector.key_auth.reveal().encode("utf-8") if selector.key_auth else None
        self._context = context
        self._selector = selector
        self._state = state
        self._finder = KeyFinder(context, selector, state, auth)
        self._maker = KeyMaker(context, selector, state, self._finder, auth)
        self.name = selector.tcti

    @property
    def selector(self) -> TpmSelector:
        return self._selector

    @property
    def state_dir(self) -> Path:
        return self._state.path

    # --- keys ---------------------------------------------------------------------------------

    def new_key_id(self) -> bytes:
        """The id the next :meth:`generate_key` should get.

        Persistent keys: the handle's 4 bytes (``selector.handle``, else the first free
        handle of ``0x81000100``-``0x810001FF``).  Key files: 8 random bytes no record uses.
        """
        with self._context.call("choosing a key id"):
            return self._maker.new_key_id()

    def generate_key(self, key_type: KeyType, label: str, key_id: bytes | None = None) -> TokenKey:
        """Create a signing key in the TPM; persist it or write it to the key file.

        Persistent: at the handle ``key_id`` names (from :meth:`new_key_id`), else at
        ``selector.handle``, else at the first free handle of ``0x81000100``-``0x810001FF``.
        A key at that handle without a valid record and without a certificate, with
        est-hw's attributes (half-made by an interrupted run, or its record lost), is
        replaced; a complete key is refused, as is anything est-hw did not make.  The
        key's record (label, NV index) is written before the key is persisted and removed
        again if persisting fails (:mod:`est_hw.keys.tpm_create`).

        Key file: ``selector.key_file`` must not exist; it is created under the owner
        primary key tpm2-openssl recreates (parent ``0x40000001``), and its record is
        written first.  Its id is ``key_id`` (default: 8 random bytes).

        :raises UsageError: empty label, ``key_id`` not usable here, or the key file or a
            complete key with that id exists.
        :raises UnsupportedKeyError: the TPM does not do ``key_type`` (``TPM2_TestParms``;
            most TPMs have no RSA 4096).
        :raises TokenError: no free handle, the handle holds something else, or the TPM failed.
        """
        if not label:
            raise UsageError("a key needs a non-empty label")
        with self._context.call(f"generating a {key_type.value} key", auth=_OWNER):
            return self._maker.generate(key_type, label, key_id)

    def import_key(
        self, private_key: PrivateKey, label: str, key_id: bytes | None = None
    ) -> TokenKey:
        """Import a software key (from /serverkeygen) so that it cannot leave the TPM again.

        It is wrapped for the same parent a generated key would get and brought in with
        ``TPM2_Import``, then persisted or written to the key file exactly like
        :meth:`generate_key` (same handle choice, same record-first order).  Its
        attributes are ``userWithAuth|sign``: a TPM refuses ``fixedTPM``/``fixedParent``
        on imported objects, and its empty ``authPolicy`` makes ``TPM2_Duplicate``
        impossible.  The caller drops its copy.

        :raises UsageError: empty label, or ``key_id`` not usable (as for generate_key).
        :raises UnsupportedKeyError: the TPM does not do this key type.
        """
        if not label:
            raise UsageError("a key needs a non-empty label")
        with self._context.call("importing a key", auth=_OWNER):
            return self._maker.import_key(private_key, label, key_id)

    def find_key(self, *, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
        """Find the one key with ``key_id`` and/or ``label``.

        A persistent handle's id (4 bytes) finds the key at that handle even outside
        est-hw's range and without a record (its label is then empty).

        :raises UsageError: neither given.
        :raises KeyNotFoundError: none, or more than one, matches.
        """
        wanted = describe_selection(key_id, label)
        with self._context.call("looking up a key"):
            found = [
                item.key
                for item in self._finder.candidates(key_id)
                if (key_id is None or item.key.key_id == key_id)
                and (label is None or item.key.label == label)
            ]
        require_one_match([key.key_id for key in found], wanted, noun="TPM key",
                          where=f"on the {self._context.where}")  # fmt: skip
        return found[0]

    def selected_key(self) -> TokenKey:
        """The key ``selector.handle`` or ``selector.key_file`` names.

        :raises UsageError: the selector names neither.
        :raises KeyNotFoundError: nothing usable is there.
        :raises TokenError: the key file is not a usable ``TSS2 PRIVATE KEY``.
        """
        if self._selector.handle is not None:
            return self.find_key(key_id=key_id_of_handle(self._selector.handle))
        if self._selector.key_file is None:
            raise UsageError("select a TPM key by persistent handle or key file")
        with self._context.call("reading a key file"):
            return self._finder.selected_key_file(self._selector.key_file).key

    def delete_key(self, key: TokenKey) -> None:
        """Evict the persistent key, or delete the key file.

        Its certificates stay (use :meth:`delete_certificates`), and so does its record
        while they do.
        """
        with self._context.call(f"deleting key '{key.label}'", auth=_OWNER):
            found = self._finder.resolve(key)
            keep_record = self._finder.has_certificate(found)
            if isinstance(found.ref, PersistentKeyRef):
                self._context.evict(found.ref.handle)
            else:
                self._state.unlink(found.ref.path)
            if not keep_record:
                self._state.remove(key.key_id)

    # --- certificates -----------------------------------------------------------------------

    def store_certificate(
        self, key: TokenKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        """Store ``certificate`` (and its CA ``chain``) in the key's NV index, with a file
        fallback in the state directory (:mod:`est_hw.keys.tpm_certs`); all or nothing.

        The NV index is the one in the key's record, else ``selector.nv_index``, else
        :func:`default_nv_index` of its handle; a key file without one has its
        certificates in files.

        :raises CertificateMismatchError: ``certificate`` does not carry the key's public key.
        :raises KeyNotFoundError: ``key`` is not on this TPM.
        :raises TokenError: the NV index belongs to something else, or the TPM failed.
        """
        _check_matches(key, certificate)
        with self._context.call(f"storing the certificate of key '{key.label}'", auth=_OWNER):
            found = self._finder.resolve(key)
            nv_index = self._finder.nv_index(found, storing=True)
            layout = tpm_certs.plan(certificate, chain, nv_index, self._context.nv_index_max)
            others = {
                _spki_of(item.key)
                for item in self._finder.list_keys()
                if item.key.key_id != key.key_id
            }
            tpm_certs.store(
                self._context,
                self._state,
                key_id=key.key_id,
                nv_index=nv_index,
                layout=layout,
                claimed=lambda cert: _spki_of_certificate(cert) in others,
            )
            record = found.record or found.new_record()
            if found.record is None or record.nv_index != nv_index:
                self._state.save(replace(record, nv_index=nv_index))
        where = layout.describe(nv_index, self._state, key.key_id)
        log.info("%s: stored the certificate of key '%s' in %s", self.name, key.label, where)

    def delete_certificates(self, key_id: bytes) -> None:
        """Delete the certificate and chain stored for ``key_id`` (NV index and files), and
        the key's record if the key is gone too."""
        with self._context.call("deleting certificates", auth=_OWNER):
            record = self._state.record(key_id)
            handle = handle_of_key_id(key_id)
            nv_index = record.nv_index if record is not None else None
            if nv_index is None and handle is not None:
                nv_index = default_nv_index(handle)
            tpm_certs.delete(self._context, self._state, key_id=key_id, nv_index=nv_index)
            if record is not None and not any(
                item.key.key_id == key_id for item in self._finder.candidates(key_id)
            ):
                self._state.remove(key_id)

    def inventory(self) -> Inventory:
        """Persistent keys in est-hw's range or records, known key files, their
        certificates and chains (``StoredCertificate.location`` says NV index or file),
        and certificates whose key is gone.  Keys without a valid record have an empty
        label."""
        with self._context.call("listing keys and certificates"):
            keys = self._finder.list_keys()
            labels = {item.key.key_id: item.key.label for item in keys}
            certificates: list[StoredCertificate] = []
            seen: set[int] = set()
            for item in keys:
                index = self._finder.nv_index(item)
                content = read_nv(self._context, index) if index is not None else None
                if content is not None and content.ours:
                    seen.add(content.index)
                    certificates += tpm_certs.from_nv(content, item.key.key_id, item.key.label)
            certificates += self._orphan_nv(seen)
            for key_id, is_chain, path in self._state.certificate_files():
                label = labels.get(key_id) or self._finder.label_of(key_id)
                certificates += tpm_certs.from_file(path, key_id, label, is_chain)
        return Inventory(keys=[item.key for item in keys], certificates=certificates)

    def _orphan_nv(self, seen: set[int]) -> list[StoredCertificate]:
        """Certificates in est-hw's NV indices whose key is gone."""
        owners = {r.nv_index: r for r in self._state.records() if r.nv_index is not None}
        found: list[StoredCertificate] = []
        for index in nv_indices(self._context):
            if index in seen or not (index in _DEFAULT_NV or index in owners):
                continue
            content = read_nv(self._context, index)
            if content is None or not content.ours:
                continue
            record = owners.get(index)
            key_id = record.key_id if record else key_id_of_handle(index | 0x80000000)
            found += tpm_certs.from_nv(content, key_id, record.label if record else "")
        return found

    # --- records (the enrollment journal), kept in the state directory ---------------------

    def put_record(self, name: str, data: bytes) -> None:
        with self._context.call(f"writing record {name!r}"):
            self._state.put_record(name, data)

    def get_record(self, name: str) -> bytes | None:
        with self._context.call(f"reading record {name!r}"):
            return self._state.get_record(name)

    def delete_record(self, name: str) -> None:
        with self._context.call(f"deleting record {name!r}"):
            self._state.delete_record(name)

    def close(self) -> None:
        """Finalize the ESAPI context; idempotent.  Nothing stays loaded in the TPM."""
        self._context.close()

    def __repr__(self) -> str:
        state = "closed" if self._context.closed else "open"
        return f"<TpmBackend tcti={self.name!r} state_dir={str(self._state.path)!r} {state}>"


def _spki_of(key: TokenKey) -> bytes:
    return key.public_key().public_bytes(*SPKI)


def _spki_of_certificate(certificate: x509.Certificate) -> bytes | None:
    try:
        return certificate.public_key().public_bytes(*SPKI)
    except ValueError:
        return None


def _check_matches(key: TokenKey, certificate: x509.Certificate) -> None:
    """Refuse a certificate whose SubjectPublicKeyInfo is not the key's."""
    if _spki_of_certificate(certificate) != _spki_of(key):
        raise CertificateMismatchError(
            f"the certificate for {certificate.subject.rfc4514_string()!r} does not carry the "
            f"public key of key '{key.label}' (id {key.key_id.hex()})"
        )

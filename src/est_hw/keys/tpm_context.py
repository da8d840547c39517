"""One open ESAPI context, its lock, transient-object hygiene and the TSS2 error map.

This module is the one place where :class:`tpm2_pytss.TSS2_Exception` becomes an est-hw
error (:func:`tpm_errors`).  Everything else runs TPM commands inside
:meth:`TpmContext.call`, which holds the lock, refuses a closed context and maps errors.

Transient objects: a TPM without a resource manager (swtpm, ``device:/dev/tpm0``) has a
few object slots (3 on swtpm) and loaded objects outlive the client that loaded them.  So
:meth:`TpmContext.open` flushes leftover transient objects (``TPM2_GetCapability``
``TPM_CAP_HANDLES`` then ``TPM2_FlushContext``, TPM 2.0 Library Part 3 sections 30.2 and
28.4), and every object est-hw loads is flushed by :meth:`TpmContext.flushing`, on errors
too.  At most two transient objects exist at a time (a parent and its child, while the
child is being loaded).

ESYS logs handled errors loudly; ``TSS2_LOG=all+none`` (unless the environment already
sets ``TSS2_LOG``) silences it before the first ESAPI context is made.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_CAP, TPM2_HC, TPM2_PT_NV

from est_hw.errors import (
    KeyNotFoundError,
    PinIncorrectError,
    TokenError,
    TokenNotFoundError,
    UnsupportedKeyError,
)
from est_hw.keys.base import Secret
from est_hw.keys.tpm_tcti import (
    NV_CERT_INDEX_MAX,
    NV_CHUNK_MAX,
    OWNER_HIERARCHY,
    SRK_HANDLE,
)
from est_hw.keys.tpm_templates import is_storage_key, openssl_parent_template, srk_template

log = logging.getLogger(__name__)

# --- errors at the tpm2-pytss boundary ----------------------------------------------------

# TPM_RC values (TPM 2.0 Library Part 2, section 6.6), format-one codes without their
# handle/parameter/session number.
_RC_AUTH_FAIL, _RC_BAD_AUTH = 0x08E, 0x0A2
_RC_HANDLE = 0x08B
_RC_UNSUPPORTED = {0x083: "hash", 0x087: "key size", 0x092: "scheme", 0x0A6: "curve"}
_RC_HIERARCHY, _RC_INITIALIZE, _RC_DISABLED = 0x085, 0x100, 0x120
_RC_NV_SPACE = 0x14B
_RC_LOCKOUT = 0x921
_RC_BUSY = {0x908, 0x90A, 0x922}  # YIELDED, TESTING, RETRY
_RC_SLOTS = {0x902, 0x903, 0x904, 0x906, 0x907}  # OBJECT/SESSION_MEMORY, MEMORY, *_HANDLES
# TSS2_RC layers (tss2_common.h): TPM, tabrmd's TPM-forwarded codes, TCTI, tabrmd itself.
_LAYER_TPM, _LAYER_RESMGR_TPM = 0, 12
_LAYER_TCTI, _LAYER_RESMGR = 10, 11


def tpm_code(exc: TSS2_Exception) -> int | None:
    """The TPM_RC of ``exc`` without handle/parameter/session numbers, or ``None`` when
    the error comes from the TSS itself (ESYS, TCTI, marshalling)."""
    rc = int(exc.rc)
    if (rc >> 16) & 0xFF not in (_LAYER_TPM, _LAYER_RESMGR_TPM):
        return None
    rc &= 0xFFFF
    return 0x080 | (rc & 0x3F) if rc & 0x080 else rc


def _describe(exc: TSS2_Exception) -> str:
    return f"{exc} [0x{int(exc.rc):x}]"


@contextmanager
def tpm_errors(action: str, where: str, auth: str | None = None) -> Iterator[None]:
    """Turn a :class:`TSS2_Exception` raised inside into an est-hw error.

    :param action: what was attempted ("signing with key 'x'", ...).
    :param where: the TPM, e.g. ``TPM 'swtpm:port=2321'``.
    :param auth: whose auth value the command used ("the owner hierarchy", "key
        0x81000100"), named when the TPM rejects it.  TSS2 messages and ours never contain
        auth values.
    """
    try:
        yield
    except TSS2_Exception as exc:
        raise _map(exc, action, where, auth) from exc


def _map(exc: TSS2_Exception, action: str, where: str, auth: str | None) -> TokenError:
    layer = (int(exc.rc) >> 16) & 0xFF
    if layer in (_LAYER_TCTI, _LAYER_RESMGR):
        return TokenNotFoundError(f"{action}: cannot talk to the {where} ({_describe(exc)})")
    code = tpm_code(exc)
    if code in (_RC_AUTH_FAIL, _RC_BAD_AUTH):
        whose = auth or "the object"
        counted = (
            " (its dictionary-attack counter was incremented)" if code == _RC_AUTH_FAIL else ""
        )
        return PinIncorrectError(
            f"{action}: the {where} rejected the auth value of {whose}{counted}"
        )
    if code == _RC_LOCKOUT:
        return TokenError(
            f"{action}: the {where} is in dictionary-attack lockout; wait for it to recover "
            "or reset it with the lockout auth (tpm2_dictionarylockout -c)"
        )
    if code == _RC_HANDLE:
        return KeyNotFoundError(f"{action}: the {where} has no object at that handle")
    if code in _RC_UNSUPPORTED:
        return UnsupportedKeyError(
            f"{action}: the {where} does not support this {_RC_UNSUPPORTED[code]} "
            f"({_describe(exc)})"
        )
    if code in _RC_SLOTS:
        return TokenError(
            f"{action}: the {where} is out of object or session slots ({_describe(exc)}); "
            "another program keeps objects loaded: use a resource manager (/dev/tpmrm0)"
        )
    if code == _RC_NV_SPACE:
        return TokenError(f"{action}: the {where} is out of NV space ({_describe(exc)})")
    if code in _RC_BUSY:
        return TokenError(f"{action}: the {where} is busy, try again ({_describe(exc)})")
    if code in (_RC_INITIALIZE, _RC_DISABLED):
        return TokenError(f"{action}: the {where} is not started or disabled ({_describe(exc)})")
    if code == _RC_HIERARCHY:
        return TokenError(f"{action}: the owner hierarchy of the {where} is disabled")
    return TokenError(f"{action} failed on the {where} ({_describe(exc)})")


# --- the context ------------------------------------------------------------------------


def _auth_bytes(secret: Secret | None) -> bytes | None:
    return secret.reveal().encode("utf-8") if secret is not None else None


class TpmContext:
    """An ESAPI context on one TPM, shared by a backend and its key objects.

    ESAPI runs one command at a time, so every use holds :attr:`lock`; CSR signing and TLS
    handshakes on other threads wait for it.
    """

    def __init__(self, esapi: Any, tcti: str) -> None:
        self.esapi = esapi
        self.tcti = tcti
        self.where = f"TPM '{tcti}'"
        self.lock = threading.RLock()
        self.closed = False
        self.ecc = True
        self.nv_index_max = NV_CERT_INDEX_MAX
        self.nv_chunk = NV_CHUNK_MAX

    @classmethod
    def open(cls, tcti: str, owner_auth: Secret | None) -> TpmContext:
        """Connect through ``tcti``, read the TPM's limits and flush leftover objects.

        :raises TokenNotFoundError: the TCTI cannot be loaded or the TPM is unreachable.
        """
        os.environ.setdefault("TSS2_LOG", "all+none")
        where = f"TPM '{tcti}'"
        with tpm_errors("opening the TPM", where):
            esapi = ESAPI(tcti)
        context = cls(esapi, tcti)
        try:
            with context.call("opening the TPM"):
                if owner_auth is not None:
                    esapi.tr_set_auth(ESYS_TR.OWNER, _auth_bytes(owner_auth))
                context.ecc = context.implements(TPM2_ALG.ECC)
                index_max = context.tpm_property(TPM2_PT_NV.INDEX_MAX)
                buffer_max = context.tpm_property(TPM2_PT_NV.BUFFER_MAX)
                context.nv_index_max = min(NV_CERT_INDEX_MAX, index_max or NV_CERT_INDEX_MAX)
                context.nv_chunk = min(NV_CHUNK_MAX, buffer_max or NV_CHUNK_MAX)
                flushed = context.flush_transients()
                if flushed:
                    log.info("%s: flushed %d leftover transient object(s)", where, flushed)
        except BaseException:
            context.close()
            raise
        return context

    @contextmanager
    def call(self, action: str, auth: str | None = None) -> Iterator[Any]:
        """Hold the lock, refuse if closed, map TSS2 errors; yields the ESAPI context."""
        with self.lock:
            if self.closed:
                raise TokenError(f"{action}: the {self.where} is closed")
            with tpm_errors(action, self.where, auth):
                yield self.esapi

    def close(self) -> None:
        """Finalize the ESAPI context (``Esys_Finalize``); idempotent."""
        with self.lock:
            if self.closed:
                return
            self.closed = True
            self.esapi.close()

    # --- capabilities (call inside :meth:`call`) ------------------------------------------

    def handles(self, first: int) -> list[int]:
        """Handles of one type, from ``first`` on (``TPM_CAP_HANDLES``, Part 3 §30.2)."""
        found: list[int] = []
        more = True
        while more:
            more, data = self.esapi.get_capability(TPM2_CAP.HANDLES, first, 64)
            batch = [int(handle) for handle in data.data.handles]
            # only handles of the same type (the top byte) count
            found += [handle for handle in batch if handle >> 24 == first >> 24]
            if not batch or batch[-1] >> 24 != first >> 24:
                break
            first = batch[-1] + 1
        return found

    def tpm_property(self, prop: int) -> int | None:
        """A ``TPM_CAP_TPM_PROPERTIES`` value (Part 2 §6.13), ``None`` if not reported."""
        _, data = self.esapi.get_capability(TPM2_CAP.TPM_PROPERTIES, prop, 1)
        for item in data.data.tpmProperties:
            if int(item.property) == prop:
                return int(item.value)
        return None

    def implements(self, alg: int) -> bool:
        """Whether the TPM implements algorithm ``alg`` (``TPM_CAP_ALGS``)."""
        _, data = self.esapi.get_capability(TPM2_CAP.ALGS, alg, 1)
        return any(int(item.alg) == alg for item in data.data.algorithms)

    # --- transient objects ----------------------------------------------------------------

    def flush_transients(self) -> int:
        """Flush every transient object the TPM reports; returns how many.

        Behind a resource manager this only sees this connection's objects (none).
        """
        handles = self.handles(TPM2_HC.TRANSIENT_FIRST)
        for handle in handles:
            self.esapi.flush_context(self.esapi.tr_from_tpmpublic(handle))
        return len(handles)

    @contextmanager
    def flushing(self, tr: Any) -> Iterator[Any]:
        """Yield ``tr`` (a loaded transient object) and flush it afterwards, on errors too.

        A failing flush is raised when nothing else is, and logged otherwise, so that it
        never hides the original error.
        """
        try:
            yield tr
        except BaseException:
            try:
                self.esapi.flush_context(tr)
            except TSS2_Exception as exc:
                log.warning("%s: flushing a transient object failed: %s", self.where, exc)
            raise
        self.esapi.flush_context(tr)

    @contextmanager
    def persistent(self, handle: int) -> Iterator[Any]:
        """An ESYS_TR for the persistent object or NV index at ``handle``, closed afterwards
        (``Esys_TR_FromTPMPublic``/``Esys_TR_Close``: nothing is loaded in the TPM)."""
        tr = self.esapi.tr_from_tpmpublic(handle)
        try:
            yield tr
        finally:
            self.esapi.tr_close(tr)

    @contextmanager
    def storage_parent(self) -> Iterator[Any]:
        """The owner's storage key: the SRK at ``0x81000001`` when it is persisted (and
        is a storage key), else a transient primary from the TCG SRK template (flushed)."""
        if SRK_HANDLE in self.handles(TPM2_HC.PERSISTENT_FIRST):
            with self.persistent(SRK_HANDLE) as srk:
                public, _, _ = self.esapi.read_public(srk)
                if is_storage_key(public.publicArea):
                    yield srk
                    return
                log.warning(
                    "%s: 0x81000001 is not a storage key; using the SRK template", self.where
                )
        with self.primary(srk_template(self.ecc)) as primary:
            yield primary

    @contextmanager
    def key_file_parent(self, parent: int) -> Iterator[Any]:
        """The parent a ``TSS2 PRIVATE KEY`` file names: the owner primary tpm2-openssl
        recreates for ``0x40000001``, or the persistent key at ``parent``."""
        if parent == OWNER_HIERARCHY:
            with self.primary(openssl_parent_template(self.ecc)) as primary:
                yield primary
        else:
            with self.persistent(parent) as persistent:
                yield persistent

    @contextmanager
    def primary(self, template: Any) -> Iterator[Any]:
        """A transient primary key in the owner hierarchy (``TPM2_CreatePrimary``, Part 3
        §24.1; owner auth), flushed afterwards."""
        with tpm_errors("creating the owner's primary key", self.where, "the owner hierarchy"):
            tr, _, _, _, _ = self.esapi.create_primary(None, template, ESYS_TR.OWNER)
        with self.flushing(tr):
            yield tr

    def evict(self, handle: int) -> None:
        """Remove the persistent object at ``handle`` (``TPM2_EvictControl``, Part 3
        §28.5, owner auth).

        ESYS keeps the object's ESYS_TR after it is evicted, and a stale one makes the next
        ``Esys_TR_FromTPMPublic`` of that handle fail, so it is closed here.
        """
        with self.persistent(handle) as tr:
            self.esapi.evict_control(ESYS_TR.OWNER, tr, handle)

"""Selecting a TPM 2.0, its key handles and NV indices (no tpm2-pytss import here).

A TPM is reached through a TCTI (TSS 2.0 TPM Command Transmission Interface, TCG TSS 2.0
TCTI specification): ``device:/dev/tpmrm0`` (the kernel resource manager),
``swtpm:port=2321`` (a software TPM), ``tabrmd:`` and so on; the string is handed to
tpm2-tss's TCTI loader as tpm2-tools do with ``TPM2TOOLS_TCTI``.  The CLI resolves the
default (``TPM2TOOLS_TCTI``, else :data:`DEFAULT_TCTI`); this module never reads the
environment.

Handles follow the TCG "Registry of Reserved TPM 2.0 Handles and Localities" and the TCG
TPM v2.0 Provisioning Guidance 1.0 (handle allocation):

* persistent objects live in ``0x81000000``-``0x81FFFFFF`` (TPM 2.0 Library Part 2,
  section 7, ``TPM_HT_PERSISTENT``); ``0x81000001`` is the storage root key (SRK) and
  ``0x81010001`` the endorsement key, so est-hw's default range for keys it persists,
  :data:`DEFAULT_KEY_HANDLES` = ``0x81000100``-``0x810001FF``, keeps clear of both;
* NV indices live in ``0x01000000``-``0x01FFFFFF`` (``TPM_HT_NV_INDEX``); the owner's part
  is ``0x01000000``-``0x013FFFFF``, and the default certificate index of a persistent key
  is derived from its handle: :func:`default_nv_index` maps ``0x81000100`` to
  ``0x01000100`` (same low 24 bits), so each key has its own index.

Key ids (``TokenKey.key_id``): a persistent key's id is its 4-byte big-endian handle
(``81000100``).  A key file's id is the id of its est-hw record (8 random bytes chosen when
it was generated); a key file est-hw has no record of (made by tpm2-openssl, say) has the
first 8 bytes of SHA-256 over its SubjectPublicKeyInfo (:func:`key_file_key_id`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from est_hw.errors import UsageError
from est_hw.keys.base import Secret

__all__ = [
    "DEFAULT_KEY_HANDLES",
    "DEFAULT_TCTI",
    "MAX_KEY_AUTH_BYTES",
    "NV_CERT_INDEX_MAX",
    "NV_CHUNK_MAX",
    "OWNER_HIERARCHY",
    "SRK_HANDLE",
    "TpmSelector",
    "default_nv_index",
    "format_handle",
    "handle_of_key_id",
    "key_file_key_id",
    "key_id_of_handle",
    "parse_tpm_handle",
]

#: The TCTI the CLI falls back to when ``TPM2TOOLS_TCTI`` is not set.
DEFAULT_TCTI = "device:/dev/tpmrm0"

PERSISTENT_FIRST, PERSISTENT_LAST = 0x81000000, 0x81FFFFFF
NV_INDEX_FIRST, NV_INDEX_LAST = 0x01000000, 0x01FFFFFF
#: The owner's NV range (TCG handle registry); default indices stay inside it.
NV_OWNER_LAST = 0x013FFFFF
#: ``TPM_RH_OWNER``: the parent value of key files whose parent is the owner's primary key.
OWNER_HIERARCHY = 0x40000001
#: The storage root key's persistent handle (TCG Provisioning Guidance).
SRK_HANDLE = 0x81000001
#: Where est-hw looks for a free handle when none is given (256 keys).
DEFAULT_KEY_HANDLES = range(0x81000100, 0x81000200)
#: est-hw never defines a certificate index larger than this (the TPM may allow less,
#: ``TPM_PT_NV_INDEX_MAX``; 2048 on swtpm and most discrete TPMs).
NV_CERT_INDEX_MAX = 2048
#: Largest ``TPM2_NV_Write``/``TPM2_NV_Read`` chunk (``TPM_PT_NV_BUFFER_MAX`` may be less).
NV_CHUNK_MAX = 1024
#: A key's authValue is at most the digest size of its name algorithm, SHA-256 (TPM 2.0
#: Library Part 3, section 12.1 ``TPM2_Create``: otherwise ``TPM_RC_SIZE``).
MAX_KEY_AUTH_BYTES = 32
#: A hierarchy's authValue is at most the largest digest the TPM implements (Part 3,
#: ``TPM2_HierarchyChangeAuth``); 64 bytes is the ``TPM2B_AUTH`` buffer.
MAX_OWNER_AUTH_BYTES = 64

_HANDLE_RE = re.compile(r"0[xX][0-9a-fA-F]{1,8}\Z")
_TCTI_RE = re.compile(r"[A-Za-z0-9_.-]+(:\S*)?\Z")


def parse_tpm_handle(text: str, *, what: str = "handle") -> int:
    """Parse a handle or NV index written in hex with ``0x`` (``0x81000100``).

    Decimal is refused on purpose: ``81000100`` typed without ``0x`` would silently name
    another handle.

    :raises UsageError: anything else.
    """
    value = text.strip()
    if not _HANDLE_RE.match(value):
        raise UsageError(f"a TPM {what} is written in hex with 0x, like 0x81000100; got {text!r}")
    return int(value, 16)


def format_handle(handle: int) -> str:
    """``0x81000100``: the spelling tpm2-tools print and accept."""
    return f"0x{handle:08x}"


def check_persistent_handle(handle: int) -> int:
    """Refuse a handle outside the persistent range (TPM 2.0 Library Part 2 section 7)."""
    if not PERSISTENT_FIRST <= handle <= PERSISTENT_LAST:
        raise UsageError(
            f"{format_handle(handle)} is not a persistent handle "
            f"({format_handle(PERSISTENT_FIRST)}-{format_handle(PERSISTENT_LAST)})"
        )
    if handle == SRK_HANDLE:
        raise UsageError(f"{format_handle(handle)} is reserved for the storage root key (SRK)")
    return handle


def check_nv_index(index: int) -> int:
    """Refuse an NV index outside ``0x01000000``-``0x01FFFFFF`` (``TPM_HT_NV_INDEX``)."""
    if not NV_INDEX_FIRST <= index <= NV_INDEX_LAST:
        raise UsageError(
            f"{format_handle(index)} is not an NV index "
            f"({format_handle(NV_INDEX_FIRST)}-{format_handle(NV_INDEX_LAST)})"
        )
    return index


def default_nv_index(handle: int) -> int | None:
    """The certificate NV index of the key persisted at ``handle``: same low 24 bits.

    ``0x81000100`` -> ``0x01000100``.  Handles whose index would leave the owner's NV
    range (``0x81400000`` and up) have no default: give an NV index explicitly.
    """
    index = NV_INDEX_FIRST | (handle & 0x00FFFFFF)
    return index if index <= NV_OWNER_LAST else None


def key_id_of_handle(handle: int) -> bytes:
    """The key id of a persistent key: its handle, 4 bytes big-endian."""
    return handle.to_bytes(4, "big")


def handle_of_key_id(key_id: bytes) -> int | None:
    """The persistent handle a key id names, or ``None`` when it is a key file's id."""
    if len(key_id) != 4:
        return None
    handle = int.from_bytes(key_id, "big")
    return handle if PERSISTENT_FIRST <= handle <= PERSISTENT_LAST else None


def key_file_key_id(spki_der: bytes) -> bytes:
    """The key id of a key file: SHA-256 over its SubjectPublicKeyInfo, first 8 bytes."""
    return hashlib.sha256(spki_der).digest()[:8]


def _check_tcti(tcti: str) -> str:
    if not _TCTI_RE.match(tcti):
        raise UsageError(
            f"a TCTI is 'name' or 'name:config' without spaces, like {DEFAULT_TCTI!r} "
            f"or 'swtpm:port=2321'; got {tcti!r}"
        )
    return tcti


def _check_auth_size(secret: Secret | None, limit: int, what: str) -> None:
    if secret is not None and len(secret.reveal().encode("utf-8")) > limit:
        raise UsageError(f"the {what} auth value is longer than {limit} bytes")


@dataclass(frozen=True)
class TpmSelector:
    """Which TPM to open and where est-hw keeps keys and certificates on it.

    :param tcti: the TCTI string (``device:/dev/tpmrm0``, ``swtpm:port=2321``).
    :param state_dir: est-hw's directory for key metadata (labels), key-file records and
        certificates or chains too large for NV.  One directory per TPM.
    :param owner_auth: the owner hierarchy's authValue, when it has one (needed to
        persist keys, define NV indices and create the owner's primary key).
    :param key_auth: the authValue given to keys est-hw creates and used for the keys
        it signs with (UTF-8 bytes, at most 32).
    :param handle: the persistent handle for the next key (``0x81000000``-``0x81FFFFFF``);
        ``None`` picks the first free one in :data:`DEFAULT_KEY_HANDLES`.
    :param key_file: keep the next key as a ``TSS2 PRIVATE KEY`` PEM file at this path
        instead of persisting it (the format tpm2-openssl and tpm2-tss-engine read).
    :param nv_index: the NV index for the certificate of the selected or next key
        (``0x01000000``-``0x01FFFFFF``); ``None`` uses :func:`default_nv_index` for
        persistent keys and files in ``state_dir`` for key files.
    """

    tcti: str
    state_dir: Path
    owner_auth: Secret | None = None
    key_auth: Secret | None = None
    handle: int | None = None
    key_file: Path | None = None
    nv_index: int | None = None

    def __post_init__(self) -> None:
        _check_tcti(self.tcti)
        if self.handle is not None:
            check_persistent_handle(self.handle)
        if self.nv_index is not None:
            check_nv_index(self.nv_index)
        if self.handle is not None and self.key_file is not None:
            raise UsageError("choose a persistent handle or a key file, not both")
        _check_auth_size(self.key_auth, MAX_KEY_AUTH_BYTES, "key")
        _check_auth_size(self.owner_auth, MAX_OWNER_AUTH_BYTES, "owner")

    def __repr__(self) -> str:
        def hexed(value: int | None) -> str:
            return format_handle(value) if value is not None else "None"

        return (
            f"TpmSelector(tcti={self.tcti!r}, state_dir={str(self.state_dir)!r}, "
            f"owner_auth={self.owner_auth!r}, key_auth={self.key_auth!r}, "
            f"handle={hexed(self.handle)}, key_file={self.key_file!r}, "
            f"nv_index={hexed(self.nv_index)})"
        )


def state_dir_name(tcti: str) -> str:
    """The directory name of one TPM's state under a base dir (``swtpm:port=2321`` ->
    ``swtpm_port_2321``), the same for ``est-hw --tpm`` and ``est-hw provision``."""
    import re

    return re.sub(r"[^A-Za-z0-9._-]+", "_", tcti).strip("_") or "tpm"

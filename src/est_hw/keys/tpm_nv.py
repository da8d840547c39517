"""Certificates in TPM NV indices: define, write in chunks, read, undefine.

An est-hw certificate index is an ordinary index (``TPM_NT_ORDINARY``) with
:data:`NV_ATTRIBUTES`: only the owner writes it (``TPMA_NV_OWNERWRITE``), the owner or
anyone with the index's empty auth reads it (``TPMA_NV_OWNERREAD``, ``TPMA_NV_AUTHREAD``),
and failed reads do not count towards dictionary-attack lockout (``TPMA_NV_NO_DA``)
(TPM 2.0 Library Part 2 section 13.4 ``TPMA_NV``; Part 3 ``TPM2_NV_DefineSpace``,
``TPM2_NV_Write``, ``TPM2_NV_Read``).  Its size is exactly what it holds: the
DER end-entity certificate, followed by the DER CA certificates of its chain when they
fit, so ``tpm2_nvread -C o INDEX | openssl x509 -inform DER`` shows the certificate.

A TPM writes and reads at most ``TPM_PT_NV_BUFFER_MAX`` bytes per command (1024 on
swtpm) and an index holds at most ``TPM_PT_NV_INDEX_MAX`` bytes (2048 on swtpm and most
discrete TPMs); est-hw uses at most 1024 and 2048.

Indices with other attributes are never written or deleted by est-hw: they belong to
someone else (the platform's EK certificate indices, an index made with tpm2_nvdefine).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_HC, TPMA_NV
from tpm2_pytss.types import TPM2B_NV_PUBLIC, TPMS_NV_PUBLIC

from est_hw.keys.tpm_context import TpmContext

log = logging.getLogger(__name__)

#: ``TPMA_NV`` of est-hw's certificate indices (``TPM_NT_ORDINARY`` is 0).
NV_ATTRIBUTES: int = TPMA_NV.OWNERWRITE | TPMA_NV.OWNERREAD | TPMA_NV.AUTHREAD | TPMA_NV.NO_DA
# attributes the TPM sets at run time (Part 2 section 13.4): not part of the definition
_RUNTIME: int = TPMA_NV.WRITTEN | TPMA_NV.WRITELOCKED | TPMA_NV.READLOCKED


@dataclass(frozen=True)
class NvContent:
    """A defined NV index: its attributes, size and (for est-hw's indices) its data."""

    index: int
    attributes: int
    size: int
    data: bytes

    @property
    def ours(self) -> bool:
        """Defined by est-hw (exactly :data:`NV_ATTRIBUTES`)."""
        return bool(self.attributes & ~_RUNTIME == NV_ATTRIBUTES)


def nv_indices(context: TpmContext) -> list[int]:
    """Every defined NV index (``TPM_HT_NV_INDEX`` handles)."""
    return context.handles(TPM2_HC.NV_INDEX_FIRST)


def read_nv(context: TpmContext, index: int) -> NvContent | None:
    """The index at ``index``, or ``None`` when it is not defined.

    Data is read only from est-hw's own indices (with the index's empty auth), in chunks
    of at most ``context.nv_chunk`` bytes; an index never written holds ``b""``.
    """
    if index not in nv_indices(context):
        return None
    esapi = context.esapi
    with context.persistent(index) as tr:
        public, _ = esapi.nv_read_public(tr)
        attributes = int(public.nvPublic.attributes)
        size = int(public.nvPublic.dataSize)
        content = NvContent(index, attributes, size, b"")
        if not content.ours or not attributes & TPMA_NV.WRITTEN:
            return content
        chunks = []
        for offset in range(0, size, context.nv_chunk):
            length = min(context.nv_chunk, size - offset)
            chunks.append(bytes(esapi.nv_read(tr, length, offset)))
    return NvContent(index, attributes, size, b"".join(chunks))


def define_and_write(
    context: TpmContext, index: int, data: bytes, *, size: int | None = None
) -> None:
    """Define an index of ``size`` bytes (default ``len(data)``) and write ``data`` at its
    start (owner auth).

    If a write fails, the new index is undefined again before the error propagates.
    """
    esapi = context.esapi
    public = TPM2B_NV_PUBLIC(
        nvPublic=TPMS_NV_PUBLIC(
            nvIndex=index,
            nameAlg=TPM2_ALG.SHA256,
            attributes=NV_ATTRIBUTES,
            authPolicy=b"",
            dataSize=len(data) if size is None else size,
        )
    )
    tr = esapi.nv_define_space(None, public, ESYS_TR.OWNER)
    try:
        for offset in range(0, len(data), context.nv_chunk):
            chunk = data[offset : offset + context.nv_chunk]
            esapi.nv_write(tr, chunk, offset, auth_handle=ESYS_TR.OWNER)
    except BaseException:
        try:
            esapi.nv_undefine_space(tr, ESYS_TR.OWNER)
        except TSS2_Exception as exc:  # never hide the original error
            log.warning("%s: undefining NV index 0x%08x failed: %s", context.where, index, exc)
        raise
    esapi.tr_close(tr)


def undefine(context: TpmContext, index: int) -> None:
    """Delete the index at ``index`` (``TPM2_NV_UndefineSpace``, owner auth)."""
    tr = context.esapi.tr_from_tpmpublic(index)
    context.esapi.nv_undefine_space(tr, ESYS_TR.OWNER)


def split_der(blob: bytes) -> list[bytes]:
    """Split concatenated DER values (``SEQUENCE``s) into their encodings.

    Stops at the first byte that does not start a definite-length ``SEQUENCE`` (X.690
    section 8.1) that fits, e.g. at zero padding.
    """
    parts = []
    offset = 0
    while offset + 2 <= len(blob) and blob[offset] == 0x30:
        first = blob[offset + 1]
        if first < 0x80:
            header, length = 2, first
        else:
            count = first & 0x7F
            if not 1 <= count <= 4 or offset + 2 + count > len(blob):
                break
            header = 2 + count
            length = int.from_bytes(blob[offset + 2 : offset + header], "big")
        end = offset + header + length
        if end > len(blob):
            break
        parts.append(blob[offset:end])
        offset = end
    return parts

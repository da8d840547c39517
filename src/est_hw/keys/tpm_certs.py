"""Where a TPM key's certificate and chain go, and storing them all-or-nothing.

Layout (:func:`plan`), for a key whose certificate index is ``INDEX`` (``limit`` is the
smaller of 2048 bytes and the TPM's ``TPM_PT_NV_INDEX_MAX``):

1. certificate + chain (DER, concatenated) fit in ``limit``: all of it in ``INDEX``;
2. else the certificate fits: the certificate in ``INDEX``, the chain in
   ``tpm-<key id>.chain.pem`` in the state directory;
3. else (or when the key has no index, e.g. a key file): both as PEM files
   (``tpm-<key id>.cert.pem``, ``tpm-<key id>.chain.pem``); ``INDEX`` is deleted.

:func:`store` replaces what was there before with the new layout.  An NV index cannot be
created beside itself, so it runs as a list of steps each with an undo (old index content
kept in memory, old files moved aside); if any step fails, the undos run in reverse and
the TPM and the directory are as they were.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from est_hw.errors import TokenError
from est_hw.keys.base import StoredCertificate
from est_hw.keys.tpm_context import TpmContext
from est_hw.keys.tpm_nv import NvContent, define_and_write, read_nv, split_der, undefine
from est_hw.keys.tpm_state import StateDir, pem_of, public_key_sha256, read_pem_certificates
from est_hw.keys.tpm_tcti import format_handle

log = logging.getLogger(__name__)

_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class Layout:
    """What goes where: NV data (``None``: no index), and the PEM files (``None``: none)."""

    nv_data: bytes | None
    cert_pem: bytes | None
    chain_pem: bytes | None

    def describe(self, nv_index: int | None, state: StateDir, key_id: bytes) -> str:
        parts = []
        if self.nv_data is not None and nv_index is not None:
            parts.append(f"NV index {format_handle(nv_index)}")
        if self.cert_pem is not None:
            parts.append(str(state.cert_path(key_id)))
        if self.chain_pem is not None:
            parts.append(str(state.chain_path(key_id)))
        return ", ".join(parts)


def plan(
    certificate: x509.Certificate,
    chain: Sequence[x509.Certificate],
    nv_index: int | None,
    limit: int,
) -> Layout:
    """The layout for ``certificate`` and ``chain`` (see the module docstring)."""
    leaf = certificate.public_bytes(_DER)
    chain = [ca for ca in chain if ca.public_bytes(_DER) != leaf]
    chain_der = b"".join(ca.public_bytes(_DER) for ca in chain)
    chain_pem = pem_of(chain) if chain else None
    if nv_index is not None and len(leaf) + len(chain_der) <= limit:
        return Layout(leaf + chain_der, None, None)
    if nv_index is not None and len(leaf) <= limit:
        return Layout(leaf, None, chain_pem)
    return Layout(None, pem_of([certificate]), chain_pem)


class _Steps:
    """Done steps with their undos; :meth:`rollback` runs the undos in reverse."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.undos: list[Callable[[], None]] = []
        self.commits: list[Callable[[], None]] = []

    def done(self, undo: Callable[[], None]) -> None:
        self.undos.append(undo)

    def rollback(self) -> None:
        for undo in reversed(self.undos):
            try:
                undo()
            except Exception as exc:  # keep undoing; the original error propagates
                log.warning("%s: undoing a certificate store step failed: %s", self.where, exc)


@contextmanager
def _all_or_nothing(where: str) -> Iterator[_Steps]:
    steps = _Steps(where)
    try:
        yield steps
    except BaseException:
        steps.rollback()
        raise
    for commit in steps.commits:
        try:
            commit()
        except Exception as exc:  # leftovers of the old state, nothing more
            log.warning("%s: cleaning up after storing a certificate: %s", where, exc)


def store(
    context: TpmContext,
    state: StateDir,
    *,
    key_id: bytes,
    nv_index: int | None,
    layout: Layout,
    claimed: Callable[[x509.Certificate], bool],
) -> None:
    """Replace the key's certificates with ``layout``; all or nothing.

    :param claimed: whether an old certificate found in ``nv_index`` belongs to another
        key that still exists (then the index is not ours to overwrite).
    :raises TokenError: the index holds data est-hw did not write, or another key's
        certificate, or a TPM or file operation failed (everything is undone).
    """
    old = read_nv(context, nv_index) if nv_index is not None else None
    if old is not None:
        _check_replaceable(old, claimed)
    files = [
        (state.cert_path(key_id), layout.cert_pem),
        (state.chain_path(key_id), layout.chain_pem),
    ]
    with _all_or_nothing(context.where) as steps:
        temporaries: dict[Path, Path] = {}

        def remove_temporaries() -> None:
            for temporary in temporaries.values():
                temporary.unlink(missing_ok=True)

        steps.done(remove_temporaries)
        for path, data in files:
            if data is not None:
                temporaries[path] = state.write_temporary(path, data)
        if old is not None and nv_index is not None:
            undefine(context, nv_index)
            steps.done(lambda: define_and_write(context, old.index, old.data, size=old.size))
        if layout.nv_data is not None and nv_index is not None:
            define_and_write(context, nv_index, layout.nv_data)
            steps.done(lambda: undefine(context, nv_index))
        for path, _ in files:
            _replace_file(steps, path, temporaries.pop(path, None))


def _check_replaceable(old: NvContent, claimed: Callable[[x509.Certificate], bool]) -> None:
    where = f"NV index {format_handle(old.index)}"
    if not old.ours:
        raise TokenError(
            f"{where} was not defined by est-hw (attributes 0x{old.attributes:08x}); "
            "choose another NV index or delete it with tpm2_nvundefine"
        )
    certificates = _parse_der(old.data)
    if certificates and claimed(certificates[0]):
        subject = certificates[0].subject.rfc4514_string()
        raise TokenError(
            f"{where} holds the certificate of another key ({subject!r}); choose another NV index"
        )


def _replace_file(steps: _Steps, path: Path, new: Path | None) -> None:
    """Move ``new`` to ``path`` (or remove ``path`` when ``new`` is None), old version
    moved aside until the store commits."""
    if path.exists():
        aside = path.with_name(f".{path.name}.old")
        os.replace(path, aside)
        steps.done(lambda: os.replace(aside, path))
        steps.commits.append(lambda: aside.unlink(missing_ok=True))
    if new is not None:
        os.replace(new, path)
        steps.done(lambda: path.unlink(missing_ok=True))


def delete(context: TpmContext, state: StateDir, *, key_id: bytes, nv_index: int | None) -> int:
    """Delete the key's certificate index (if est-hw made it) and files; how many went."""
    deleted = 0
    if nv_index is not None:
        old = read_nv(context, nv_index)
        if old is not None and old.ours:
            undefine(context, nv_index)
            deleted += 1
    for path in (state.cert_path(key_id), state.chain_path(key_id)):
        if path.exists():
            state.unlink(path)
            deleted += 1
    return deleted


# --- reading -----------------------------------------------------------------------------------


def _parse_der(blob: bytes) -> list[x509.Certificate]:
    certificates = []
    for der in split_der(blob):
        try:
            certificates.append(x509.load_der_x509_certificate(der))
        except ValueError:
            log.info("skipping an unparsable certificate in NV")
    return certificates


def from_nv(content: NvContent, key_id: bytes, label: str) -> list[StoredCertificate]:
    """The certificate (first) and chain (then) held in one of est-hw's NV indices."""
    location = f"nv:{format_handle(content.index)}"
    return [
        StoredCertificate(cert, key_id, label if n == 0 else _name(cert), n > 0, location)
        for n, cert in enumerate(_parse_der(content.data))
    ]


def from_file(path: Path, key_id: bytes, label: str, is_chain: bool) -> list[StoredCertificate]:
    """The certificates in a ``tpm-<key id>.cert.pem`` or ``.chain.pem`` file."""
    location = f"file:{path}"
    return [
        StoredCertificate(cert, key_id, _name(cert) if is_chain else label, is_chain, location)
        for cert in read_pem_certificates(path)
    ]


def _name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else None
    return value if isinstance(value, str) and value else cert.subject.rfc4514_string()


def certificate_key_hash(cert: x509.Certificate) -> str | None:
    """The public key hash (as in key records) of ``cert``, ``None`` if unusable."""
    try:
        public = cert.public_key()
    except ValueError:
        return None
    if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        return None
    return public_key_sha256(public)

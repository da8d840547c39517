"""est-hw's files beside a TPM: key records and certificates that do not fit in NV.

TPM objects have no label, and key files can live anywhere, so the state directory keeps
one small JSON record per key (``tpm-<key id>.json``)::

    {"key_id": "81000100", "label": "device", "key_type": "ec-p256",
     "public_key_sha256": "<hex of SHA-256 over the SubjectPublicKeyInfo>",
     "handle": "0x81000100", "key_file": null, "nv_index": "0x01000100"}

and, when a certificate or chain does not fit in the key's NV index (or a key file has no
NV index), ``tpm-<key id>.cert.pem`` and ``tpm-<key id>.chain.pem``.  The enrollment
journal's records (``KeyBackend.put_record``) are ``record-<hex of the name>`` files, mode
0600.

A record is trusted only while its public key hash matches the key the TPM (or the key
file) really holds; otherwise it is stale (the TPM was cleared, the handle reused) and
ignored.  Every file is written to a temporary file in the same directory and moved into
place with ``os.replace``, so each is either the old or the new version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_hw.errors import TokenError
from est_hw.keys.base import KeyType, PublicKey
from est_hw.keys.tpm_tcti import format_handle

log = logging.getLogger(__name__)

_RECORD_RE = re.compile(r"tpm-([0-9a-f]+)\.json\Z")
_CERT_RE = re.compile(r"tpm-([0-9a-f]+)\.(cert|chain)\.pem\Z")


def public_key_sha256(public_key: PublicKey) -> str:
    """Hex SHA-256 over the DER SubjectPublicKeyInfo of ``public_key``."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class KeyRecord:
    """What est-hw remembers about one key (persisted at ``handle`` or in ``key_file``)."""

    key_id: bytes
    label: str
    key_type: KeyType
    public_key_sha256: str
    handle: int | None = None
    key_file: Path | None = None
    nv_index: int | None = None

    def to_json(self) -> bytes:
        data = {
            "key_id": self.key_id.hex(),
            "label": self.label,
            "key_type": self.key_type.value,
            "public_key_sha256": self.public_key_sha256,
            "handle": format_handle(self.handle) if self.handle is not None else None,
            "key_file": str(self.key_file) if self.key_file is not None else None,
            "nv_index": format_handle(self.nv_index) if self.nv_index is not None else None,
        }
        return json.dumps(data, indent=1).encode() + b"\n"

    @classmethod
    def from_json(cls, raw: bytes) -> KeyRecord:
        """:raises ValueError: not a record est-hw wrote."""
        data: dict[str, Any] = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")

        def handle(name: str) -> int | None:
            value = data.get(name)
            return int(value, 16) if isinstance(value, str) else None

        key_file = data.get("key_file")
        return cls(
            key_id=bytes.fromhex(data["key_id"]),
            label=str(data["label"]),
            key_type=KeyType(data["key_type"]),
            public_key_sha256=str(data["public_key_sha256"]),
            handle=handle("handle"),
            key_file=Path(key_file) if isinstance(key_file, str) else None,
            nv_index=handle("nv_index"),
        )


class StateDir:
    """The state directory: key records and certificate files, by key id."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def open(cls, path: Path) -> StateDir:
        """Use (and create, mode 0700, if missing) ``path``.

        :raises TokenError: it exists but is not a directory, or cannot be created.
        """
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise TokenError(f"cannot use the TPM state directory {path}: {exc.strerror}") from exc
        return cls(path)

    # --- key records -------------------------------------------------------------------------

    def records(self) -> list[KeyRecord]:
        """Every readable record; unreadable ones are logged and skipped."""
        found = []
        for entry in sorted(self.path.iterdir()):
            if _RECORD_RE.match(entry.name):
                record = self._read(entry)
                if record is not None:
                    found.append(record)
        return found

    def record(self, key_id: bytes) -> KeyRecord | None:
        path = self._record_path(key_id)
        return self._read(path) if path.exists() else None

    def save(self, record: KeyRecord) -> None:
        self.write(self._record_path(record.key_id), record.to_json())

    def remove(self, key_id: bytes) -> None:
        self.unlink(self._record_path(key_id))

    def _record_path(self, key_id: bytes) -> Path:
        return self.path / f"tpm-{key_id.hex()}.json"

    def _read(self, path: Path) -> KeyRecord | None:
        try:
            return KeyRecord.from_json(path.read_bytes())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("skipping unreadable TPM key record %s: %s", path, exc)
            return None

    # --- journal records ---------------------------------------------------------------------

    def put_record(self, name: str, data: bytes) -> None:
        self.write(self._journal_path(name), data, mode=0o600)

    def get_record(self, name: str) -> bytes | None:
        try:
            return self._journal_path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenError(f"cannot read record {name!r}: {exc.strerror}") from exc

    def delete_record(self, name: str) -> None:
        self.unlink(self._journal_path(name))

    def _journal_path(self, name: str) -> Path:
        return self.path / f"record-{name.encode().hex()}"

    # --- certificate files ------------------------------------------------------------------

    def cert_path(self, key_id: bytes) -> Path:
        return self.path / f"tpm-{key_id.hex()}.cert.pem"

    def chain_path(self, key_id: bytes) -> Path:
        return self.path / f"tpm-{key_id.hex()}.chain.pem"

    def certificate_files(self) -> list[tuple[bytes, bool, Path]]:
        """``(key id, is_chain, path)`` of every certificate file."""
        found = []
        for entry in sorted(self.path.iterdir()):
            match = _CERT_RE.match(entry.name)
            if match:
                found.append((bytes.fromhex(match[1]), match[2] == "chain", entry))
        return found

    # --- files ---------------------------------------------------------------------------------

    def write(self, path: Path, data: bytes, mode: int = 0o644) -> None:
        """Write ``data`` to ``path`` atomically (temporary file, then ``os.replace``)."""
        temporary = self.write_temporary(path, data, mode)
        try:
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            raise TokenError(f"cannot write {path}: {exc.strerror}") from exc

    def write_temporary(self, path: Path, data: bytes, mode: int = 0o644) -> Path:
        """Write ``data`` to a new temporary file beside ``path``; returns its path."""
        try:
            handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        except OSError as exc:
            raise TokenError(f"cannot write {path}: {exc.strerror}") from exc
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(name, mode)
        except OSError as exc:
            with suppress(OSError):
                os.unlink(name)
            raise TokenError(f"cannot write {path}: {exc.strerror}") from exc
        return Path(name)

    @staticmethod
    def unlink(path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise TokenError(f"cannot delete {path}: {exc.strerror}") from exc


def pem_of(certificates: Sequence[x509.Certificate]) -> bytes:
    """PEM blocks, one per certificate."""
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in certificates)


def read_pem_certificates(path: Path) -> list[x509.Certificate]:
    """The certificates in a PEM file; ``[]`` (logged) when it cannot be read."""
    try:
        return x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError) as exc:
        log.warning("skipping unreadable certificate file %s: %s", path, exc)
        return []

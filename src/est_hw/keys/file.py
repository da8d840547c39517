"""A software key store in a directory, for development and tests.

Same :class:`~est_hw.keys.base.KeyBackend` contract as the PKCS#11 backend, but the keys are
ordinary ``cryptography`` keys on disk, so they are *not* protected like token keys.  For
each key, named by its id in hex (8 random bytes, like a PKCS#11 ``CKA_ID``)::

    <id>.key.pem     the private key, PKCS#8 PEM (RFC 5958), unencrypted, mode 0600
    <id>.json        {"label": ..., "key_type": "ec-p256", "id": "<id>"}
    <id>.cert.pem    the end-entity certificate
    <id>.chain.pem   its CA chain, one PEM block per certificate

Every file is written to a temporary file in the same directory and moved into place with
``os.replace``, so each file is either the old or the new version.  A key becomes visible
when its ``.json`` is in place; a certificate is checked against the key before anything
is written (:class:`~est_hw.errors.CertificateMismatchError`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from est_hw.errors import (
    CertificateMismatchError,
    KeyNotFoundError,
    TokenError,
    UsageError,
)
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

__all__ = ["FileKeyBackend", "open_file_store"]

_ID_BYTES = 8
_META_RE = re.compile(r"([0-9a-f]+)\.json\Z")
_CERT_RE = re.compile(r"([0-9a-f]+)\.cert\.pem\Z")


def open_file_store(directory: Path) -> FileKeyBackend:
    """Open (and create, mode 0700, if missing) a key directory.

    :raises TokenError: ``directory`` exists but is not a directory, or cannot be created.
    """
    directory = Path(directory)
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise TokenError(f"cannot use key directory {directory}: {exc.strerror}") from exc
    return FileKeyBackend(directory)


class FileKeyBackend(KeyBackend):
    """Software keys in a directory.  Use :func:`open_file_store`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = str(directory)
        self._closed = False

    def new_key_id(self) -> bytes:
        """A random id that no file in the directory uses."""
        self._check_open()
        return self._fresh_id()

    def generate_key(self, key_type: KeyType, label: str, key_id: bytes | None = None) -> TokenKey:
        """Generate a software key pair (EC P-256/P-384, RSA with e = 65537).

        With ``key_id``, files a killed run left half-written under that id are replaced;
        a complete key with that id is refused.
        """
        key_id = self._new_id(label, key_id)
        private: PrivateKey
        if key_type.curve is not None:
            private = ec.generate_private_key(key_type.curve)
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=key_type.rsa_bits)
        return self._write_key(private, key_id, label, key_type)

    def import_key(
        self, private_key: PrivateKey, label: str, key_id: bytes | None = None
    ) -> TokenKey:
        """Write a software key into the directory (PKCS#8 PEM, mode 0600)."""
        key_id = self._new_id(label, key_id)
        key_type = KeyType.of_public_key(private_key.public_key())
        return self._write_key(private_key, key_id, label, key_type)

    def _new_id(self, label: str, key_id: bytes | None) -> bytes:
        """Check a new key's label and id (a fresh id when None)."""
        self._check_open()
        if not label:
            raise UsageError("a key needs a non-empty label")
        if key_id is None:
            return self._fresh_id()
        if self._path(key_id, "json").exists():
            raise UsageError(f"id {key_id.hex()} is already used in {self.directory}")
        return key_id

    def _write_key(
        self, private: PrivateKey, key_id: bytes, label: str, key_type: KeyType
    ) -> TokenKey:
        """Key PEM (0600) first, then the metadata that makes it visible."""
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        meta = {"id": key_id.hex(), "label": label, "key_type": key_type.value}
        key_path = self._path(key_id, "key.pem")
        with self._io(f"writing key {key_path.name}"):
            _write_atomic(key_path, pem, mode=0o600)
            try:
                _write_atomic(self._path(key_id, "json"), json.dumps(meta).encode() + b"\n")
            except BaseException:
                key_path.unlink(missing_ok=True)
                raise
        return TokenKey(private_key=private, key_id=key_id, label=label, key_type=key_type)

    def find_key(self, *, key_id: bytes | None = None, label: str | None = None) -> TokenKey:
        """Find the one key with ``key_id`` and/or ``label``.

        :raises UsageError: neither given.
        :raises KeyNotFoundError: none, or more than one, matches.
        """
        self._check_open()
        wanted = describe_selection(key_id, label)
        found = [
            key
            for key in self._keys()
            if (key_id is None or key.key_id == key_id) and (label is None or key.label == label)
        ]
        require_one_match([key.key_id for key in found], wanted, noun="key",
                          where=f"in {self.directory}")  # fmt: skip
        return found[0]

    def store_certificate(
        self, key: TokenKey, certificate: x509.Certificate, chain: Sequence[x509.Certificate]
    ) -> None:
        """Write ``<id>.chain.pem`` and then ``<id>.cert.pem``, each atomically.

        If writing the certificate fails, the earlier chain file is put back.

        :raises CertificateMismatchError: ``certificate`` does not carry the key's public key.
        :raises KeyNotFoundError: the key is not in this directory.
        """
        self._check_open()
        spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        if certificate.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
            raise CertificateMismatchError(
                f"the certificate for {certificate.subject.rfc4514_string()!r} does not carry "
                f"the public key of key '{key.label}' (id {key.key_id.hex()})"
            )
        if not self._path(key.key_id, "json").is_file():
            raise KeyNotFoundError(f"no key with id {key.key_id.hex()} in {self.directory}")
        leaf = certificate.public_bytes(serialization.Encoding.PEM)
        cas = b"".join(ca.public_bytes(serialization.Encoding.PEM) for ca in chain)
        chain_path = self._path(key.key_id, "chain.pem")
        with self._io(f"writing the certificate of key '{key.label}'"):
            old_chain = chain_path.read_bytes() if chain_path.exists() else None
            _write_atomic(chain_path, cas)
            try:
                _write_atomic(self._path(key.key_id, "cert.pem"), leaf)
            except BaseException:
                if old_chain is None:
                    chain_path.unlink(missing_ok=True)
                else:
                    _write_atomic(chain_path, old_chain)
                raise

    def inventory(self) -> Inventory:
        """The keys and certificates in the directory (chain certificates as CA ones)."""
        self._check_open()
        keys = list(self._keys())
        certs: list[StoredCertificate] = []
        seen: set[bytes] = set()
        labels = {key.key_id: key.label for key in keys}
        for path in sorted(self.directory.iterdir()):
            match = _CERT_RE.match(path.name)
            if not match:
                continue
            key_id = bytes.fromhex(match.group(1))
            label = labels.get(key_id, key_id.hex())
            leaf = _load_certs(path)
            chain_path = self._path(key_id, "chain.pem")
            chain = _load_certs(chain_path) if chain_path.is_file() else []
            for number, cert in enumerate(leaf + chain):
                der = cert.public_bytes(serialization.Encoding.DER)
                if der in seen:
                    continue
                seen.add(der)
                is_ca = number > 0
                name = f"{label} CA {number}" if is_ca else label
                certs.append(StoredCertificate(cert, key_id, name, is_ca))
        return Inventory(keys=keys, certificates=certs)

    def delete_key(self, key: TokenKey) -> None:
        """Delete the key file and its metadata (certificates stay, as on a token)."""
        self._check_open()
        meta = self._path(key.key_id, "json")
        if not meta.is_file():
            raise KeyNotFoundError(f"no key with id {key.key_id.hex()} in {self.directory}")
        with self._io(f"deleting key '{key.label}'"):
            meta.unlink()
            self._path(key.key_id, "key.pem").unlink(missing_ok=True)

    def delete_certificates(self, key_id: bytes) -> None:
        """Delete ``<id>.cert.pem`` and ``<id>.chain.pem``."""
        self._check_open()
        with self._io("deleting certificates"):
            self._path(key_id, "cert.pem").unlink(missing_ok=True)
            self._path(key_id, "chain.pem").unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release; later calls raise :class:`TokenError`.  Idempotent."""
        self._closed = True

    # --- records: <name>.record files -------------------------------------------------------

    def put_record(self, name: str, data: bytes) -> None:
        with self._io(f"writing record {name!r}"):
            _write_atomic(self._record_path(name), data, mode=0o600)

    def get_record(self, name: str) -> bytes | None:
        self._check_open()
        try:
            return self._record_path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenError(f"reading record {name!r} failed: {exc.strerror}") from exc

    def delete_record(self, name: str) -> None:
        with self._io(f"deleting record {name!r}"):
            self._record_path(name).unlink(missing_ok=True)

    def _record_path(self, name: str) -> Path:
        self._check_open()
        return self.directory / f"{name.encode().hex()}.record"

    def __repr__(self) -> str:
        return f"<FileKeyBackend {self.directory}{' closed' if self._closed else ''}>"

    # --- helpers ----------------------------------------------------------------------------

    def _path(self, key_id: bytes, suffix: str) -> Path:
        return self.directory / f"{key_id.hex()}.{suffix}"

    def _fresh_id(self) -> bytes:
        while True:
            key_id = secrets.token_bytes(_ID_BYTES)
            if not any(self.directory.glob(f"{key_id.hex()}.*")):
                return key_id

    def _keys(self) -> Iterator[TokenKey]:
        for path in sorted(self.directory.iterdir()):
            match = _META_RE.match(path.name)
            if match:
                yield self._load_key(bytes.fromhex(match.group(1)), path)

    def _load_key(self, key_id: bytes, meta_path: Path) -> TokenKey:
        key_path = self._path(key_id, "key.pem")
        try:
            meta = json.loads(meta_path.read_text())
            key_type = KeyType(meta["key_type"])
            label = str(meta["label"])
            private = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TokenError(f"unreadable key {key_path.name} in {self.directory}: {exc}") from exc
        if not isinstance(private, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise TokenError(f"{key_path.name} in {self.directory} is not an EC or RSA key")
        return TokenKey(private_key=private, key_id=key_id, label=label, key_type=key_type)

    def _check_open(self) -> None:
        if self._closed:
            raise TokenError(f"the key directory {self.directory} was closed")

    @contextmanager
    def _io(self, action: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise TokenError(f"{action} in {self.directory} failed: {exc.strerror}") from exc


def _write_atomic(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _load_certs(path: Path) -> list[x509.Certificate]:
    try:
        data = path.read_bytes()
        return x509.load_pem_x509_certificates(data) if data.strip() else []
    except (OSError, ValueError) as exc:
        raise TokenError(f"unreadable certificate file {path}: {exc}") from exc

"""Server-side key generation into the token (RFC 7030 section 4.4, RFC 8951 section 5).

The CSR only names the subject: it is signed by a throwaway in-memory key, as the server
makes the key pair.  The answer's key must match its certificate, the certificate must
chain to the anchors; a CMS-encrypted key's SignedData must be signed by a certificate
of the same PKI (section 4.4.2); then the key is imported into the token (non-extractable from
then on), the certificate stored beside it, and the software copy dropped.  A journal
record (the planned key id) makes a killed run recoverable: the next run deletes a key
that was imported without its certificate and asks again.

With a decryption key (an RSA key with ``CKA_DECRYPT`` already on the token), the CSR
carries its id as AsymmetricDecryptKeyIdentifier (section 4.4.1.2) and the answer's key
may come CMS-encrypted to it (section 4.4.2); the token decrypts the key-transport layer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from est_hw import faults
from est_hw.errors import UsageError
from est_hw.est.signed_data import SignedContent
from est_hw.keys.base import KeyBackend, KeyType, PrivateKey, TokenKey
from est_hw.provision.enroll import (
    EnrollRequest,
    EnrollResult,
    accept_issued,
    already_stored,
    discard_key,
    pending_for,
    planned_key,
)
from est_hw.provision.journal import Journal, PendingEnrollment
from est_hw.provision.trust import ServerSession
from est_hw.tls.settings import ClientIdentity
from est_hw.x509.csr import build_csr
from est_hw.x509.trust import verify_issued

log = logging.getLogger(__name__)


def serverkeygen(
    backend: KeyBackend,
    server: ServerSession,
    request: EnrollRequest,
    *,
    tls_identity: ClientIdentity | None = None,
    key_out: Path | None = None,
    decrypt_key: TokenKey | None = None,
) -> EnrollResult:
    """Have the server make the key, import it into ``backend``, store the certificate.

    :param key_out: also write the key (PKCS#8 PEM, mode 0600, never overwriting) —
        only when the user asks for a copy outside the token.
    :param decrypt_key: an RSA token key to have the generated key encrypted to.
    :raises UsageError: ``decrypt_key`` is not an RSA key.
    """
    decrypt_with: rsa.RSAPrivateKey | None = None
    content = request.content
    if decrypt_key is not None:
        if not isinstance(decrypt_key.private_key, rsa.RSAPrivateKey):
            raise UsageError(
                f"the decryption key '{decrypt_key.label}' is {decrypt_key.key_type.value}; "
                "CMS key transport needs an RSA key"
            )
        decrypt_with = decrypt_key.private_key
        content = dataclasses.replace(content, decrypt_key_id=decrypt_key.key_id)
    journal = Journal(backend)
    pending = pending_for(journal, request.key_label, "serverkeygen", server)
    if pending is not None:
        leftover = planned_key(backend, pending)
        finished = already_stored(backend, leftover, server) if leftover else None
        if finished is not None:
            journal.clear(request.key_label)
            return dataclasses.replace(finished, resumed=True)
        if leftover is not None:  # imported, but killed before its certificate was stored
            discard_key(backend, leftover)
    if key_out is not None and key_out.exists():
        raise UsageError(f"--key-out {key_out} exists; est-hw never overwrites a key file")
    pending = journal.save(
        PendingEnrollment(
            operation="serverkeygen",
            server=server.endpoint.url_for(""),
            key_id=pending.key_id if pending else backend.new_key_id(),
            key_label=request.key_label,
            key_type=request.key_type.value,
        )
    )
    throwaway = ec.generate_private_key(ec.SECP256R1())
    csr = build_csr(throwaway, content)
    with server.client(tls_identity) as client:
        faults.point("before-send")
        answer = client.serverkeygen(csr, decrypt_key=decrypt_with)
        faults.point("after-answer")
        software = answer.private_key
        try:
            key_type = KeyType.of_public_key(software.public_key())
            log.info("the server generated a %s key", key_type.value)
            key = backend.import_key(software, request.key_label, key_id=pending.key_id)
            faults.point("after-import")
            try:
                certificate, chain = accept_issued(answer.certificates, key, server, client)
                if answer.key_signature is not None:
                    _check_key_signer(answer.key_signature, [*answer.certificates, *chain], server)
                if key_out is not None:
                    _write_key_file(key_out, software)
                backend.store_certificate(key, certificate, chain)
            except BaseException:
                discard_key(backend, key)
                raise
        except BaseException:
            journal.clear(request.key_label)
            raise
        finally:
            del software, answer  # drop our references to the key material
    journal.clear(request.key_label)
    return EnrollResult(key, certificate, tuple(chain), backend.name)


def _check_key_signer(
    signed: SignedContent, path: list[x509.Certificate], server: ServerSession
) -> None:
    """The SignedData around an encrypted key is "signed by the party that generated the
    private key, which may or may not be the EST server or the EST CA" (RFC 7030 4.4.2):
    its signature must verify, and its signer must chain (RFC 5280) to the anchor the
    issued certificate chained to, or to an explicit anchor.

    :param path: the answer's certificates and the issued certificate's validated chain
        (anchor last).
    :raises TrustError: a bad signature, or a signer outside the PKI.
    """
    known = [*path, *server.cacerts, *(c for fetched in server.fetched_cacerts for c in fetched)]
    signer = signed.verify(known)
    anchors = [*server.trust.anchors, path[-1]]
    verify_issued(
        signer,
        [*signed.certificates, *known],
        anchors,
        what=f"the signer of the server-generated key ({signer.subject.rfc4514_string()})",
    )


def _write_key_file(path: Path, key: PrivateKey) -> None:
    """PKCS#8 PEM, created with mode 0600 and never over an existing file."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot create --key-out {path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as out:
        out.write(pem)

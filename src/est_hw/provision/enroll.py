"""The enrollment flows as plain functions over keys/, x509/, est/ and tls/.

enroll:   trusted server -> (channel binding) -> key generated on the token -> CSR signed
          there -> /simpleenroll -> answer verified -> certificate + chain stored.
reenroll: TLS authenticated by the key and certificate on the token -> CSR with the same
          subject and SAN -> /simplereenroll -> verified -> stored; the old certificate
          (and with rekey the old key) removed only after the new one is stored.

Every run keeps a journal record in the key store (:mod:`.journal`), so a run that was
killed, or that got HTTP 202, is resumed by the next run with the same key label: the same
key and the same CSR, never a second key.  A failure leaves the token as it was: a key made
for the enrollment is deleted again (unless the server has already accepted the request,
which keeps it pending), and nothing is stored unless it carries the token key and chains
to the anchors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.hashes import SHA256

from est_hw import faults, metrics
from est_hw.errors import (
    ConnectionFailedError,
    EnrollmentPendingError,
    EstHwError,
    HttpStatusError,
    KeyNotFoundError,
    TrustError,
    UsageError,
)
from est_hw.est.client import EstClient
from est_hw.est.csrattrs import CsrAttributes
from est_hw.keys.base import KeyBackend, KeyType, TokenKey
from est_hw.provision.binding import ChannelBinding, bind
from est_hw.provision.identity import client_identity, stored_certificate
from est_hw.provision.journal import Journal, PendingEnrollment
from est_hw.provision.trust import ServerSession
from est_hw.provision.waiting import WaitPolicy, until_issued
from est_hw.tls.settings import ClientIdentity
from est_hw.x509.csr import CsrContent, build_csr, check_csr, subject_alt_names
from est_hw.x509.template import apply_csrattrs
from est_hw.x509.trust import split_issued, verify_issued

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnrollRequest:
    """What to enroll: the key to make and the CSR content.

    :param key_type_explicit: the user chose ``key_type``; a server asking for another
        type (/csrattrs) is then noted, not followed.
    :param use_csrattrs: ask /csrattrs and apply what the server wants (RFC 7030 4.5).
    """

    key_type: KeyType
    key_label: str
    content: CsrContent
    key_type_explicit: bool = True
    use_csrattrs: bool = True


@dataclass(frozen=True)
class EnrollResult:
    """An issued certificate stored on the token beside its key.

    :param previous: the certificate it replaces (re-enrollment), else None.
    :param resumed: an earlier, interrupted or pending run was completed.
    """

    key: TokenKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    token: str
    previous: x509.Certificate | None = None
    resumed: bool = False


@dataclass(frozen=True)
class _Job:
    """One enrollment as the flow runs it.

    :param attributes: /csrattrs fetched on the connection the first attempt uses.
    """

    operation: str
    content: CsrContent
    binding: ChannelBinding
    wait: WaitPolicy | None
    attributes: CsrAttributes | None = None


def enroll(
    backend: KeyBackend,
    server: ServerSession,
    request: EnrollRequest,
    *,
    tls_identity: ClientIdentity | None = None,
    binding: ChannelBinding = ChannelBinding.AUTO,
    wait: WaitPolicy | None = None,
) -> EnrollResult:
    """RFC 7030 section 4.2.1: enroll a new key made inside ``backend``.

    :param tls_identity: an existing key + certificate (e.g. an IDevID) that
        authenticates the TLS connection (section 3.3.2).
    :param binding: channel binding of the CSR (section 3.5).
    :param wait: poll after HTTP 202 (section 4.2.3); without it a 202 raises
        :class:`EnrollmentPendingError` and the next run resumes.
    """
    journal = Journal(backend)
    pending = pending_for(journal, request.key_label, "simpleenroll", server)
    with server.client(tls_identity) as client:
        key = planned_key(backend, pending)
        if key is not None and pending is not None:
            finished = already_stored(backend, key, server)
            if finished is not None:
                journal.clear(request.key_label)
                return dataclasses.replace(finished, resumed=True)
        attributes = None
        if request.use_csrattrs:
            attributes = client.csrattrs()
        elif binding is ChannelBinding.AUTO:
            binding = ChannelBinding.NONE  # auto decides from /csrattrs, which is not asked
        request = _planned_request(request, attributes)
        job = _Job("simpleenroll", request.content, binding, wait, attributes)
        if pending is None:
            pending = journal.save(
                PendingEnrollment(
                    operation="simpleenroll",
                    server=server.endpoint.url_for(""),
                    key_id=backend.new_key_id(),
                    key_label=request.key_label,
                    key_type=request.key_type.value,
                )
            )
        resumed = key is not None
        if key is None:
            key = _generate_planned_key(backend, pending)
        run = _Run(backend, server, client, journal)
        certificate, chain = _issue_and_store(run, key, job, pending, discard=True)
    journal.clear(request.key_label)
    return EnrollResult(key, certificate, tuple(chain), backend.name, resumed=resumed)


def reenroll(
    backend: KeyBackend,
    server: ServerSession,
    key: TokenKey,
    *,
    rekey: bool = False,
    new_key_type: KeyType | None = None,
    binding: ChannelBinding = ChannelBinding.AUTO,
    wait: WaitPolicy | None = None,
) -> EnrollResult:
    """RFC 7030 section 4.2.2: renew the certificate of ``key``.

    TLS is authenticated with ``key`` and its certificate from the token; the CSR carries
    the same subject and subjectAltName.  With ``rekey`` a new key is generated (of
    ``new_key_type``, default the old type) and the old key and certificate are deleted
    only after the new certificate is stored.  On failure the old key and certificate
    stay as they were.
    """
    journal = Journal(backend)
    pending = pending_for(journal, key.label, "simplereenroll", server)
    if pending is not None and pending.old_key_id is not None:
        finished = _finish_stored_rekey(backend, server, journal, pending)
        if finished is not None:
            return finished
    identity = client_identity(backend, key)
    current = identity.chain[0]
    content = CsrContent(subject=current.subject, sans=tuple(subject_alt_names(current)))
    job = _Job("simplereenroll", content, binding, wait)
    resumed = pending is not None
    with server.client(identity) as client:
        if pending is None:
            new_type = (new_key_type or key.key_type) if rekey else key.key_type
            pending = journal.save(
                PendingEnrollment(
                    operation="simplereenroll",
                    server=server.endpoint.url_for(""),
                    key_id=backend.new_key_id() if rekey else key.key_id,
                    key_label=key.label,
                    key_type=new_type.value,
                    old_key_id=key.key_id if rekey else None,
                )
            )
        rekeying = pending.old_key_id is not None
        new_key = planned_key(backend, pending) if rekeying else key
        if new_key is None:
            new_key = _generate_planned_key(backend, pending)
        run = _Run(backend, server, client, journal)
        certificate, chain = _issue_and_store(run, new_key, job, pending, discard=rekeying)
    if rekeying:
        faults.point("before-retire")
        _retire(backend, key)
    journal.clear(key.label)
    return EnrollResult(
        new_key, certificate, tuple(chain), backend.name, previous=current, resumed=resumed
    )


def _finish_stored_rekey(
    backend: KeyBackend, server: ServerSession, journal: Journal, pending: PendingEnrollment
) -> EnrollResult | None:
    """A rekey killed after its new certificate was stored: retire the old key, done."""
    new_key = planned_key(backend, pending)
    finished = already_stored(backend, new_key, server) if new_key else None
    if finished is None:
        return None
    if pending.old_key_id is not None:
        with contextlib.suppress(KeyNotFoundError):  # else retired before the kill
            _retire(backend, backend.find_key(key_id=pending.old_key_id))
    journal.clear(pending.key_label)
    return dataclasses.replace(finished, resumed=True)


def _planned_request(request: EnrollRequest, attributes: CsrAttributes | None) -> EnrollRequest:
    """``request`` with the server's CSR attributes applied (RFC 7030 4.5.2)."""
    if attributes is None or not request.use_csrattrs:
        return request
    plan = apply_csrattrs(
        attributes,
        key_type=request.key_type,
        key_type_explicit=request.key_type_explicit,
        content=request.content,
    )
    for note in plan.notes:
        log.warning("csrattrs: %s", note)
    return dataclasses.replace(request, key_type=plan.key_type, content=plan.content)


def pending_for(
    journal: Journal, key_label: str, operation: str, server: ServerSession
) -> PendingEnrollment | None:
    """The journal record of this key label, checked against what is asked now."""
    pending = journal.load(key_label)
    if pending is None:
        return None
    here = server.endpoint.url_for("")
    if pending.operation != operation or pending.server != here:
        raise UsageError(
            f"key {key_label!r} has an unfinished /{pending.operation} at {pending.server}: "
            "run that again to finish it, or choose another --key-label"
        )
    log.info("resuming the unfinished /%s of key %r", operation, key_label)
    return pending


def _generate_planned_key(backend: KeyBackend, pending: PendingEnrollment) -> TokenKey:
    """Generate the key the journal record plans (its type, label and id), between the
    ``before-keygen`` and ``after-keygen`` crash points."""
    faults.point("before-keygen")
    with metrics.phase("keygen"):
        key = backend.generate_key(
            KeyType(pending.key_type), pending.key_label, key_id=pending.key_id
        )
    faults.point("after-keygen")
    return key


def planned_key(backend: KeyBackend, pending: PendingEnrollment | None) -> TokenKey | None:
    """The key a journal record planned, if the run that wrote it got to make it.

    A planned key that has not signed a CSR yet (the record holds none) must work: a
    process killed inside the token's key generation can leave the key pair's objects,
    id and label included, without a usable private value (SoftHSM writes its objects
    attribute by attribute).  Such a key, never used, is deleted, to be made again.
    """
    if pending is None:
        return None
    try:
        key = backend.find_key(key_id=pending.key_id)
    except KeyNotFoundError:
        return None
    if pending.csr is None and not _signs(key):
        log.info("key %s (id %s) cannot sign: its generation was cut short; making it again",
                 key.label, pending.key_id.hex())  # fmt: skip
        discard_key(backend, key)
        return None
    return key


def _signs(key: TokenKey) -> bool:
    """Does ``key`` sign, with a signature that its public key verifies?"""
    data = b"est-hw: a key generation was interrupted; does this key sign?"
    private, public = key.private_key, key.public_key()
    try:
        if isinstance(private, ec.EllipticCurvePrivateKey):
            assert isinstance(public, ec.EllipticCurvePublicKey)
            public.verify(private.sign(data, ec.ECDSA(SHA256())), data, ec.ECDSA(SHA256()))
        else:
            assert isinstance(public, rsa.RSAPublicKey)
            pkcs1 = padding.PKCS1v15()
            public.verify(private.sign(data, pkcs1, SHA256()), data, pkcs1, SHA256())
    except (EstHwError, InvalidSignature):
        return False
    return True


def already_stored(
    backend: KeyBackend, key: TokenKey, server: ServerSession
) -> EnrollResult | None:
    """The result of a run that stored its certificate but was killed before cleaning up."""
    try:
        certificate = stored_certificate(backend.inventory(), key)
    except KeyNotFoundError:
        return None
    try:
        chain = verify_issued(certificate, list(server.cacerts), server.trust.anchors)
    except TrustError:
        chain = []
    return EnrollResult(key, certificate, tuple(chain), backend.name)


@dataclass(frozen=True)
class _Run:
    """The parts one run works with."""

    backend: KeyBackend
    server: ServerSession
    client: EstClient
    journal: Journal


def _issue_and_store(
    run: _Run, key: TokenKey, job: _Job, pending: PendingEnrollment, *, discard: bool
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Sign the CSR with ``key``, send it (polling 202s), verify, store beside the key.

    The journal record stays on success (the caller clears it when its run is complete);
    on a failure that ends the enrollment the key (if ``discard``) and the record go.
    """
    backend, server, client, journal = run.backend, run.server, run.client, run.journal
    state = {"pending": pending}

    prefetched = [job.attributes] if job.attributes is not None else []

    def attempt() -> list[x509.Certificate]:
        # The first attempt binds to the connection /csrattrs was fetched on; a retry
        # (after a 202) fetches it again to open, and bind to, the connection it will use.
        challenge = bind(client, job.binding, prefetched.pop() if prefetched else None)
        password = challenge.password if challenge else None
        with metrics.phase("csr_sign"):
            csr = _csr_for(key, job.content, password, state["pending"])
        der = csr.public_bytes(serialization.Encoding.DER)
        if state["pending"].csr != der:
            state["pending"] = journal.save(state["pending"].with_csr(der))
        faults.point("before-send")
        send = client.simpleenroll if job.operation == "simpleenroll" else client.simplereenroll
        return send(csr, bound_to=challenge and challenge.connection)

    def on_pending(retry_after: int) -> None:
        state["pending"] = journal.save(state["pending"].with_retry_after(retry_after))

    try:
        issued = until_issued(attempt, job.wait, on_pending)
        faults.point("after-answer")
        with metrics.phase("verify"):
            certificate, chain = accept_issued(issued, key, server, client)
        with metrics.phase("store"):
            backend.store_certificate(key, certificate, chain)
        faults.point("after-store")
    except EnrollmentPendingError:
        raise
    except BaseException as exc:
        if _keeps_pending(state["pending"], exc):
            log.warning("the server has this request pending; the next run resumes it")
        else:
            if discard:
                discard_key(backend, key)
            journal.clear(key.label)
        raise
    return certificate, chain


def _csr_for(
    key: TokenKey, content: CsrContent, password: str | None, pending: PendingEnrollment
) -> x509.CertificateSigningRequest:
    """The journal's CSR when resuming without a binding (RFC 7030 4.2.3: the same
    request), else a new one signed by the same key."""
    if pending.csr is not None and password is None:
        csr = x509.load_der_x509_csr(pending.csr)
        check_csr(csr, key.private_key)
        return csr
    return build_csr(key.private_key, dataclasses.replace(content, challenge_password=password))


def _keeps_pending(pending: PendingEnrollment, exc: BaseException) -> bool:
    """After a 202 the server holds the request: only a definitive refusal ends it."""
    if pending.retry_at is None:
        return False
    transient = isinstance(exc, ConnectionFailedError) or (
        isinstance(exc, HttpStatusError) and exc.status >= 500
    )
    return transient or not isinstance(exc, EstHwError)


def accept_issued(
    issued: Sequence[x509.Certificate],
    key: TokenKey,
    server: ServerSession,
    client: EstClient,
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Check an enrollment answer before anything is stored (RFC 7030 section 4.2.3).

    The issued certificate must carry the token key, must not be a CA certificate, and
    must chain to the anchors; CA certificates the answer lacks are fetched from /cacerts
    only when needed.  Returns the certificate and its validated chain (anchor last).
    """
    certificate, others = split_issued(issued, key.public_key())
    if _is_ca(certificate):
        raise TrustError("the server issued a CA certificate for the token key, not a leaf")
    known = [*others, *server.cacerts]
    try:
        return certificate, verify_issued(certificate, known, server.trust.anchors)
    except TrustError:
        if server.cacerts:
            raise
    for earlier in server.fetched_cacerts:  # an earlier enrollment's /cacerts (a batch)
        try:
            return certificate, _verify_with_cacerts(certificate, others, earlier, server)
        except TrustError:
            pass  # the CA may have changed since: ask again
    # Not enough to build the path: ask /cacerts over this authenticated connection
    # (section 4.1.3).
    cacerts = tuple(client.cacerts())
    server.fetched_cacerts[:] = [cacerts]
    return certificate, _verify_with_cacerts(certificate, others, cacerts, server)


def _verify_with_cacerts(
    certificate: x509.Certificate,
    others: Sequence[x509.Certificate],
    cacerts: Sequence[x509.Certificate],
    server: ServerSession,
) -> list[x509.Certificate]:
    """The path of ``certificate`` with a /cacerts answer: its self-signed certificates
    are the explicit anchors of the issuing PKI (RFC 7030 4.1.3), which need not be the
    PKI of the server's TLS certificate."""
    roots = [cert for cert in cacerts if cert.issuer == cert.subject]
    anchors = [*server.trust.anchors, *roots]
    return verify_issued(certificate, [*others, *cacerts], anchors)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _retire(backend: KeyBackend, key: TokenKey) -> None:
    """After a rekey: delete the old certificate and key (the new ones are stored)."""
    try:
        backend.delete_certificates(key.key_id)
        backend.delete_key(key)
    except EstHwError as exc:
        log.warning("the new certificate is stored, but the old key %s stays: %s", key.label, exc)


def discard_key(backend: KeyBackend, key: TokenKey) -> None:
    """Delete a key made for an enrollment that failed; never mask the first error."""
    try:
        backend.delete_key(key)
    except EstHwError as exc:
        log.warning("could not delete key %s after a failed enrollment: %s", key.label, exc)

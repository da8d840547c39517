"""The certificate already on the token: which key is enrolled, and the chain to present.

Re-enrollment (RFC 7030 section 4.2.2) and certificate-authenticated enrollment
(section 3.3.2) authenticate TLS with a key and certificate stored on the token; the
chain sent is built from the CA certificates stored beside it.
"""

from __future__ import annotations

import datetime

from cryptography import x509

from est_hw.errors import EstHwError, KeyNotFoundError, TokenError
from est_hw.keys.base import Inventory, KeyBackend, TokenKey
from est_hw.provision.journal import Journal
from est_hw.tls.settings import ClientIdentity


def stored_certificate(inventory: Inventory, key: TokenKey) -> x509.Certificate:
    """The newest end-entity certificate stored under ``key``'s id that carries its key.

    :raises KeyNotFoundError: when the key has no such certificate.
    """
    candidates = [
        stored.certificate
        for stored in inventory.certificates
        if not stored.is_ca
        and stored.key_id == key.key_id
        and stored.certificate.public_key() == key.public_key()
    ]
    if not candidates:
        raise KeyNotFoundError(f"key {key.label!r} has no certificate on the token: enroll first")
    return max(candidates, key=lambda cert: cert.not_valid_after_utc)


def select_enrolled_key(
    backend: KeyBackend, *, key_id: bytes | None = None, label: str | None = None
) -> TokenKey:
    """The key to re-enroll: the one named, or the only key on the token with a certificate.

    :raises KeyNotFoundError: when none (or, unnamed, more than one) qualifies.
    """
    if key_id is None:
        unfinished = _unfinished_rekey_key(backend, label)
        if unfinished is not None:
            return unfinished
    if key_id is not None or label is not None:
        return backend.find_key(key_id=key_id, label=label)
    inventory = backend.inventory()
    enrolled = [key for key in inventory.keys if _has_certificate(inventory, key)]
    if len(enrolled) != 1:
        found = ", ".join(repr(key.label) for key in enrolled) or "none"
        raise KeyNotFoundError(
            f"{len(enrolled)} keys with a certificate on token {backend.name!r} ({found}): "
            "name one with --key-label or --key-uri"
        )
    return enrolled[0]


def _unfinished_rekey_key(backend: KeyBackend, label: str | None) -> TokenKey | None:
    """During an unfinished rekey two keys share a label: the journal says which one is
    being renewed (the old key while it exists, else the new one)."""
    journal = Journal(backend)
    labels = [label] if label is not None else sorted({k.label for k in backend.inventory().keys})
    for name in labels:
        pending = journal.load(name)
        if pending is None or pending.old_key_id is None:
            continue
        for key_id in (pending.old_key_id, pending.key_id):
            try:
                return backend.find_key(key_id=key_id)
            except KeyNotFoundError:
                continue
    return None


def _has_certificate(inventory: Inventory, key: TokenKey) -> bool:
    try:
        stored_certificate(inventory, key)
    except KeyNotFoundError:
        return False
    return True


def client_identity(backend: KeyBackend, key: TokenKey) -> ClientIdentity:
    """Key + certificate + CA chain from the token, for TLS client authentication.

    The chain follows issuer names through the CA certificates stored on the token, up
    to (not including) a self-signed root, which a TLS peer has or does not need
    (RFC 8446 section 4.4.2).
    """
    inventory = backend.inventory()
    leaf = stored_certificate(inventory, key)
    authorities = [stored.certificate for stored in inventory.certificates if stored.is_ca]
    chain = [leaf]
    while chain[-1].issuer != chain[-1].subject:
        issuer = next(
            (ca for ca in authorities if ca.subject == chain[-1].issuer and ca not in chain),
            None,
        )
        if issuer is None or issuer.issuer == issuer.subject:
            break
        chain.append(issuer)
    return ClientIdentity(private_key=key.private_key, chain=tuple(chain))


def existing_enrollment(backend: KeyBackend, key_label: str) -> x509.Certificate | None:
    """The valid certificate of key ``key_label`` when the token already holds both.

    None when there is nothing yet, or an unfinished enrollment to resume (the journal).

    :raises TokenError: the key is there without a valid certificate, or twice.
    """
    if Journal(backend).load(key_label) is not None:
        return None
    inventory = backend.inventory()
    keys = [key for key in inventory.keys if key.label == key_label]
    if not keys:
        return None
    if len(keys) > 1:
        raise TokenError(f"{len(keys)} keys labelled {key_label!r} on {backend.name}: "
                         "remove the extra ones first")  # fmt: skip
    try:
        certificate = stored_certificate(inventory, keys[0])
    except EstHwError:
        message = (
            f"key {key_label!r} on {backend.name} has no certificate and no unfinished "
            "enrollment: delete the key or choose another label"
        )
        raise TokenError(message) from None
    now = datetime.datetime.now(datetime.UTC)
    if certificate.not_valid_after_utc <= now:
        raise TokenError(f"the certificate of key {key_label!r} on {backend.name} expired on "
                         f"{certificate.not_valid_after_utc.isoformat()}: renew it with "
                         "est-hw reenroll")  # fmt: skip
    return certificate

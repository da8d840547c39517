"""Trust anchors and the checks on what the server hands back (RFC 7030 sections 3.6, 4.1).

- Explicit anchors come from a PEM file (``--ca-file``, RFC 7030 section 3.6.1).
- Bootstrap (section 4.1.1): /cacerts fetched over a provisional connection is accepted only
  when one of its certificates has the fingerprint the user was given out of band.
- An issued certificate is accepted only when it carries the token key's public key and
  chains to the anchors (RFC 5280 path validation via ``cryptography.x509.verification``).
"""

from __future__ import annotations

import datetime
import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509.verification import (
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from est_hw.errors import (
    CertificateMismatchError,
    FingerprintMismatchError,
    ProtocolError,
    TrustError,
    UsageError,
)
from est_hw.keys.base import PublicKey

_FINGERPRINT = re.compile(r"^(?:sha256:)?((?:[0-9a-f]{2}:?){32})$")


def load_anchor_file(path: Path) -> tuple[x509.Certificate, ...]:
    """Read the explicit trust anchors (one or more PEM certificates) from ``path``.

    :raises UsageError: when the file is unreadable or holds no certificate.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read CA file {path}: {exc.strerror}") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise UsageError(f"CA file {path} holds no PEM certificate") from None
    return tuple(certs)


def parse_fingerprint(text: str) -> bytes:
    """Parse ``sha256:HEX`` (colons allowed) into the 32-byte digest.

    :raises UsageError: when it is not a SHA-256 fingerprint.
    """
    match = _FINGERPRINT.match(text.strip().lower())
    if not match:
        raise UsageError(f"invalid --ca-fingerprint {text!r}: expected sha256:<64 hex digits>")
    return bytes.fromhex(match.group(1).replace(":", ""))


def fingerprint(cert: x509.Certificate) -> str:
    """``sha256:HEX`` of the certificate's DER encoding."""
    der = cert.public_bytes(serialization.Encoding.DER)
    return "sha256:" + hashlib.sha256(der).hexdigest()


def select_by_fingerprint(certs: Sequence[x509.Certificate], digest: bytes) -> x509.Certificate:
    """Return the certificate of ``certs`` whose SHA-256 fingerprint is ``digest``.

    RFC 7030 section 4.1.1: the provisional /cacerts answer is accepted only when a
    certificate in it is the one the user verified out of band.

    :raises FingerprintMismatchError: when none matches.
    """
    for cert in certs:
        if hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest() == digest:
            return cert
    raise FingerprintMismatchError(
        f"no certificate from /cacerts has fingerprint sha256:{digest.hex()} "
        f"(the server sent {len(certs)})"
    )


def split_issued(
    certs: Sequence[x509.Certificate], public_key: PublicKey
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """Pick the issued certificate (the one with the token key) out of a response.

    RFC 7030 section 4.2.3: the response holds the issued certificate, possibly with
    other certificates.  Exactly one may carry ``public_key``.

    :raises CertificateMismatchError: when no certificate carries the token's key.
    :raises ProtocolError: when several do.
    """
    leaves = [cert for cert in certs if _public_key_or_none(cert) == public_key]
    if not leaves:
        raise CertificateMismatchError(
            "the server returned no certificate for the token key "
            f"({len(certs)} certificate(s), none with the key's public key)"
        )
    if len(leaves) > 1:
        raise ProtocolError(f"the server returned {len(leaves)} certificates for the token key")
    return leaves[0], [cert for cert in certs if cert is not leaves[0]]


def _public_key_or_none(cert: x509.Certificate) -> object:
    """The certificate's key, or None for an algorithm cryptography does not support (an
    extra certificate in an answer may have one; it is then simply not the token's)."""
    try:
        return cert.public_key()
    except UnsupportedAlgorithm:
        return None


def verify_issued(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    *,
    now: datetime.datetime | None = None,
    what: str = "the issued certificate",
) -> list[x509.Certificate]:
    """Validate ``leaf`` up to one of ``anchors`` (RFC 5280 section 6).

    The CA certificates follow the web-PKI CA profile; the leaf may lack a SAN (real
    servers issue such certificates, FIELD-NOTES).  Returns the validated path without
    the leaf (issuer first, anchor last): the chain to store beside the key.

    :param what: names ``leaf`` in the error.
    :raises TrustError: when no valid path to an anchor exists.
    """
    if not anchors:
        raise TrustError(f"no trust anchor to validate {what} against")
    try:
        return _path_to_anchor(leaf, intermediates, anchors, now)
    except VerificationError as exc:
        raise TrustError(f"{what} does not chain to the trust anchors: {exc}") from None


def validate_cacerts(
    certs: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate] = (),
    *,
    now: datetime.datetime | None = None,
) -> None:
    """Validate a /cacerts answer before anyone uses it to build paths (RFC 7030 4.1.3).

    The answer came over an authenticated connection and must hold the current root CA
    certificate; every certificate that is not self-signed (intermediates, and the
    NewWithOld / OldWithNew rollover certificates) must chain, by RFC 5280 path
    validation, to the most recent self-signed certificate of the answer, or to one of
    ``anchors`` (the explicit anchors the connection was authenticated with).

    :raises TrustError: when a certificate does not chain.
    """
    roots = [cert for cert in certs if _self_signed(cert)]
    newest = max(roots, key=lambda cert: cert.not_valid_before_utc, default=None)
    trusted = [*([newest] if newest is not None else []), *anchors]
    others = [cert for cert in certs if cert not in roots]
    if others and not trusted:
        raise TrustError("the /cacerts answer holds no root CA certificate (RFC 7030 4.1.3)")
    for cert in others:
        try:
            _path_to_anchor(cert, others, trusted, now)
        except VerificationError as exc:
            raise TrustError(
                f"/cacerts certificate {cert.subject.rfc4514_string()} does not chain to the "
                f"root CA of the answer or to the trust anchors: {exc}"
            ) from None


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _path_to_anchor(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate],
    now: datetime.datetime | None,
) -> list[x509.Certificate]:
    """RFC 5280 path validation of ``leaf`` to ``anchors``; the path without the leaf.

    CA certificates follow the web-PKI CA profile; the leaf's extensions are not
    constrained (an EST leaf may lack a SAN, and a /cacerts leaf is itself a CA).

    :raises VerificationError: when no valid path exists.
    """
    builder = (
        PolicyBuilder()
        .store(Store(list(anchors)))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            ee_policy=ExtensionPolicy.permit_all(),
        )
    )
    if now is not None:
        builder = builder.time(now)
    path = builder.build_client_verifier().verify(leaf, list(intermediates)).chain
    return list(path[1:])

"""Server authentication: the server's chain and name, checked with ``cryptography``.

tlslite-ng verifies no certificates, so the TLS adapter checks the chain the server sent
here, after the handshake and before any application byte is sent (RFC 7030 section 3.3.1:
the client authenticates the server as RFC 6125 and RFC 5280 say; section 3.6: against the
explicit trust anchors, or the implicit ones when configured).

The policy is the one real private EST PKIs need (FIELD-NOTES): a non-critical
basicConstraints on a CA and a server certificate without extendedKeyUsage are accepted,
while the path (RFC 5280 section 6), the validity period and the name (RFC 6125, RFC 5280
section 4.2.1.6) are still checked.  The RFC 5280 rules the permissive policy would drop
are put back as validator callbacks: a CA certificate must say ``cA=TRUE`` and, when it
has keyUsage, ``keyCertSign``; an extendedKeyUsage on the server certificate, when
present, must allow serverAuth.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    Policy,
    PolicyBuilder,
    Store,
    Subject,
    VerificationError,
)

from est_hw.errors import TrustError, UsageError

_SYSTEM_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


@dataclass(frozen=True)
class ServerTrust:
    """What the server's certificate must chain to (RFC 7030 section 3.6).

    :param anchors: the explicit trust anchors (section 3.6.1), usually the EST CA.
    :param use_system_store: also trust the operating system's CA bundle (the implicit
        anchors of section 3.6.2).
    :param verify: ``False`` ONLY for the provisional connection of section 4.1.1
        (bootstrap), where the caller checks the /cacerts answer out of band (a
        fingerprint) before trusting anything it got on that connection.
    """

    anchors: tuple[x509.Certificate, ...]
    use_system_store: bool = False
    verify: bool = True

    def __post_init__(self) -> None:
        anchors = tuple(self.anchors)
        if not all(isinstance(cert, x509.Certificate) for cert in anchors):
            raise UsageError("ServerTrust.anchors must hold x509.Certificate objects")
        object.__setattr__(self, "anchors", anchors)


def verify_server_chain(
    chain: Sequence[x509.Certificate],
    host: str,
    trust: ServerTrust,
    now: datetime | None = None,
) -> None:
    """Check that ``chain`` (leaf first, as sent) is valid for ``host`` under ``trust``.

    :param host: the DNS name or IP address the client connected to.
    :param now: the validation time (default: now).
    :raises TrustError: with a one-line reason (expired, untrusted chain, name mismatch).
    """
    if not chain:
        raise TrustError("the server sent no certificate")
    anchors = list(trust.anchors)
    if trust.use_system_store:
        anchors.extend(system_anchors())
    if not anchors:
        raise TrustError("no trust anchors configured (and the system store is not used)")
    when = (now or datetime.now(UTC)).astimezone(UTC)
    leaf, intermediates = chain[0], list(chain[1:])
    _check_validity_period(leaf, when)
    builder = (
        PolicyBuilder()
        .store(Store(anchors))
        .time(when)
        .extension_policies(ca_policy=_ca_policy(), ee_policy=_ee_policy())
    )
    try:
        builder.build_server_verifier(_subject(host)).verify(leaf, intermediates)
    except VerificationError as exc:
        if not _verifies_without_name(builder, leaf, intermediates):
            raise TrustError(f"untrusted server certificate chain: {_reason(exc, chain)}") from None
        names = ", ".join(_leaf_names(leaf)) or "none"
        raise TrustError(
            f"server certificate does not match {host!r} (its names: {names})"
        ) from None


@functools.cache
def system_anchors() -> tuple[x509.Certificate, ...]:
    """The operating system's CA bundle (read once; unparsable entries are skipped)."""
    path = _SYSTEM_BUNDLE
    if not path.is_file():
        cafile = ssl.get_default_verify_paths().cafile
        path = Path(cafile) if cafile else path
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustError(f"cannot read the system CA bundle {path}: {exc.strerror}") from None
    with warnings.catch_warnings():
        # Some public roots have non-positive serial numbers (a deprecation warning).
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        try:
            return tuple(x509.load_pem_x509_certificates(data))
        except ValueError:
            pass
        found: list[x509.Certificate] = []
        end = b"-----END CERTIFICATE-----"
        for block in data.split(end)[:-1]:
            try:
                found.append(x509.load_pem_x509_certificate(block + end))
            except ValueError:
                continue
        return tuple(found)


def _subject(host: str) -> Subject:
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return x509.DNSName(host)


def _check_validity_period(cert: x509.Certificate, when: datetime) -> None:
    if when > cert.not_valid_after_utc:
        raise TrustError(
            f"server certificate expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )
    if when < cert.not_valid_before_utc:
        raise TrustError(
            f"server certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )


def _verifies_without_name(
    builder: PolicyBuilder, leaf: x509.Certificate, intermediates: list[x509.Certificate]
) -> bool:
    """Whether the chain would verify when the name is not checked.

    Used only to explain a failure: if the name-agnostic verifier accepts the chain,
    the name is what failed.  (The extension policies do not check extendedKeyUsage
    against the verifier's purpose, so the client verifier is a name-free twin.)
    """
    try:
        builder.build_client_verifier().verify(leaf, intermediates)
    except VerificationError:
        return False
    return True


def _leaf_names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = san.get_values_for_type(x509.DNSName)
    names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    return names


def _reason(exc: Exception, chain: Sequence[x509.Certificate]) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    if "candidates exhausted" in text:
        top = chain[-1].issuer.rfc4514_string() or "an empty name"
        return f"no path to a trust anchor (the chain ends at an issuer {top!r})"
    return text.removeprefix("validation failed: ")


def _ca_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, _require_ca)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, _require_key_cert_sign)
    )


def _ee_policy() -> ExtensionPolicy:
    return (
        ExtensionPolicy.permit_all()
        .require_present(x509.SubjectAlternativeName, Criticality.AGNOSTIC, None)
        .may_be_present(x509.ExtendedKeyUsage, Criticality.AGNOSTIC, _require_server_auth)
    )


def _require_ca(policy: Policy, cert: x509.Certificate, value: x509.BasicConstraints) -> None:
    """RFC 5280 section 4.2.1.9: a certificate that signs certificates says cA=TRUE."""
    if not value.ca:
        raise ValueError("issuer certificate is not a CA (basicConstraints cA=FALSE)")


def _require_key_cert_sign(
    policy: Policy, cert: x509.Certificate, value: x509.KeyUsage | None
) -> None:
    """RFC 5280 section 4.2.1.3: a CA's keyUsage, when present, includes keyCertSign."""
    if value is not None and not value.key_cert_sign:
        raise ValueError("issuer certificate's keyUsage lacks keyCertSign")


def _require_server_auth(
    policy: Policy, cert: x509.Certificate, value: x509.ExtendedKeyUsage | None
) -> None:
    """RFC 5280 section 4.2.1.12: an extendedKeyUsage, when present, must allow the use."""
    if value is None:
        return
    allowed = {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
    if not allowed.intersection(value):
        raise ValueError("server certificate's extendedKeyUsage lacks serverAuth")

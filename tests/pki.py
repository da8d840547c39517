"""A tiny in-test PKI made with cryptography (for pure tests that need certificates).

CA keys are EC P-256; a leaf is made for any public key (EC or RSA).  The options make
the certificates the trust checks must accept or refuse (a non-critical basicConstraints,
cA=FALSE, no keyCertSign; subjectAltName and extendedKeyUsage on leaves).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


@dataclass(frozen=True)
class Issuer:
    """A CA: its certificate and key."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def make_ca(
    cn: str = "Test Root",
    parent: Issuer | None = None,
    *,
    critical_bc: bool = True,
    is_ca: bool = True,
    key_cert_sign: bool = True,
    days: int = 3650,
    key: ec.EllipticCurvePrivateKey | None = None,
    age_days: int = 1,
) -> Issuer:
    """A CA certificate (self-signed without ``parent``) for ``key`` (default a new one),
    valid from ``age_days`` ago for ``days``."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    issuer_name = parent.cert.subject if parent else _name(cn)
    signer = parent.key if parent else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=age_days))
        .not_valid_after(NOW + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=critical_bc)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
    )
    if parent:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.key.public_key()), False
        )
    return Issuer(builder.sign(signer, hashes.SHA256()), key)


def make_leaf(
    issuer: Issuer,
    public_key: CertificatePublicKeyTypes,
    cn: str = "dev-1",
    *,
    days: int = 365,
    start: datetime.datetime | None = None,
    ca: bool = False,
    names: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    """An end-entity certificate for ``public_key`` signed by ``issuer``.

    ``names`` become its subjectAltName, ``eku`` its extendedKeyUsage (each left out when
    not given).
    """
    start = start or NOW - datetime.timedelta(minutes=5)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer.cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=days))
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), False
        )
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer.key, hashes.SHA256())


@dataclass(frozen=True)
class TwoTierCa:
    """A root CA and the issuing CA below it, which signs the end-entity certificates."""

    root: Issuer
    issuing: Issuer

    @property
    def chain(self) -> list[x509.Certificate]:
        """The CA certificates, issuing CA first (the order a server or a token keeps them)."""
        return [self.issuing.cert, self.root.cert]

    def issue(
        self, public_key: CertificatePublicKeyTypes, cn: str = "device-1"
    ) -> x509.Certificate:
        """An end-entity certificate for ``public_key``, signed by the issuing CA."""
        return make_leaf(self.issuing, public_key, cn)


def make_two_tier_ca(
    root_cn: str = "est-hw test root",
    issuing_cn: str = "est-hw test issuing CA",
    *,
    days: int = 3650,
) -> TwoTierCa:
    """A root and an issuing CA, both valid from yesterday for ``days``."""
    root = make_ca(root_cn, days=days)
    return TwoTierCa(root, make_ca(issuing_cn, root, days=days))

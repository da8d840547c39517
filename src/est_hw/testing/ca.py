"""A throwaway two-level CA (root -> issuing CA) for the RFC 7030 test server.

The root is the explicit trust anchor a client bootstraps (RFC 7030 section 4.1.1); the
issuing CA signs the server's TLS certificate and every certificate enrolled through
/simpleenroll and /simplereenroll (sections 4.2.1, 4.2.2).  Keys are EC P-256 and live in
memory, or unencrypted in PEM files under a state directory: they are test keys, never
real secrets.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["TestCa"]

_ROOT_CERT = "root.pem"
_ROOT_KEY = "root.key"
_ISSUING_CERT = "issuing.pem"
_ISSUING_KEY = "issuing.key"
_BACKDATE = datetime.timedelta(minutes=5)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    days: int,
    path_length: int,
) -> x509.Certificate:
    now = _now()
    public = key.public_key()
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer is not None else subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _key_usage(public: CertificatePublicKeyTypes) -> x509.KeyUsage:
    """digitalSignature for every key; keyEncipherment too for RSA (RFC 5280 4.2.1.3)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=isinstance(public, rsa.RSAPublicKey),
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _load_ec_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path}: not an EC private key")
    return key


@dataclass(frozen=True)
class TestCa:
    """A root CA and an issuing (intermediate) CA, both EC P-256.

    ``anchor`` is what a client pins as its explicit trust anchor; ``chain`` is what
    /cacerts serves (RFC 7030 section 4.1.3).
    """

    __test__ = False  # not a pytest test class, despite the name

    root_cert: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    issuing_cert: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "est-hw test") -> TestCa:
        """Make a fresh root (10 years) and issuing CA (5 years) named after ``name``."""
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _ca_certificate(
            _name(f"{name} Root CA", name), root_key, None, root_key, days=3650, path_length=1
        )
        issuing_key = ec.generate_private_key(ec.SECP256R1())
        issuing = _ca_certificate(
            _name(f"{name} Issuing CA", name), issuing_key, root, root_key, days=1825, path_length=0
        )
        return cls(root, root_key, issuing, issuing_key)

    @classmethod
    def load(cls, directory: Path | str) -> TestCa:
        """Read a CA written by :meth:`save`."""
        base = Path(directory)
        return cls(
            x509.load_pem_x509_certificate((base / _ROOT_CERT).read_bytes()),
            _load_ec_key(base / _ROOT_KEY),
            x509.load_pem_x509_certificate((base / _ISSUING_CERT).read_bytes()),
            _load_ec_key(base / _ISSUING_KEY),
        )

    @classmethod
    def exists(cls, directory: Path | str) -> bool:
        """True if :meth:`load` would find a saved CA in ``directory``."""
        base = Path(directory)
        names = (_ROOT_CERT, _ROOT_KEY, _ISSUING_CERT, _ISSUING_KEY)
        return all((base / n).is_file() for n in names)

    def save(self, directory: Path | str) -> None:
        """Write the certificates and (unencrypted, mode 0600) keys as PEM files."""
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        pem = serialization.Encoding.PEM
        (base / _ROOT_CERT).write_bytes(self.root_cert.public_bytes(pem))
        (base / _ISSUING_CERT).write_bytes(self.issuing_cert.public_bytes(pem))
        for filename, key in ((_ROOT_KEY, self.root_key), (_ISSUING_KEY, self.issuing_key)):
            data = key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            _write_private(base / filename, data)

    @property
    def anchor(self) -> x509.Certificate:
        """The root certificate: the explicit trust anchor (RFC 7030 section 4.1.1)."""
        return self.root_cert

    @property
    def chain(self) -> list[x509.Certificate]:
        """The CA certificates /cacerts returns: issuing CA first, then the root."""
        return [self.issuing_cert, self.root_cert]

    def anchor_pem(self) -> bytes:
        """The root certificate as PEM."""
        return self.root_cert.public_bytes(serialization.Encoding.PEM)

    def _leaf_builder(
        self, subject: x509.Name, public: CertificatePublicKeyTypes, days: int
    ) -> x509.CertificateBuilder:
        now = _now()
        not_after = min(now + datetime.timedelta(days=days), self.issuing_cert.not_valid_after_utc)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.issuing_cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(public), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issuing_key.public_key()),
                critical=False,
            )
        )

    def issue_server_certificate(
        self, names: list[str], *, days: int = 365
    ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        """A TLS server certificate and its new P-256 key.

        Each name becomes a dNSName or (if it parses as one) an iPAddress SAN entry; the
        first name is also the subject CN.  EKU is serverAuth (RFC 7030 section 3.3.1).
        """
        if not names:
            raise ValueError("a server certificate needs at least one name")
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
        cert = (
            self._leaf_builder(subject, key.public_key(), days)
            .add_extension(
                x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
            .sign(self.issuing_key, hashes.SHA256())
        )
        return cert, key

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        days: int = 365,
        subject: x509.Name | None = None,
    ) -> x509.Certificate:
        """Issue a clientAuth certificate for ``csr`` (RFC 7030 sections 4.2.1, 4.2.2).

        The subject (unless ``subject`` overrides it) and the subjectAltName extension
        (with its criticality) are copied from the CSR; nothing else of the CSR is.  The
        caller checks the CSR signature first.
        """
        builder = self._leaf_builder(
            subject if subject is not None else csr.subject, csr.public_key(), days
        )
        try:
            san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        except x509.ExtensionNotFound:
            pass
        else:
            builder = builder.add_extension(san.value, critical=san.critical)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        return builder.sign(self.issuing_key, hashes.SHA256())

    def issued_here(self, cert: x509.Certificate) -> bool:
        """True if ``cert`` was signed by this issuing CA."""
        if cert.issuer != self.issuing_cert.subject:
            return False
        try:
            cert.verify_directly_issued_by(self.issuing_cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

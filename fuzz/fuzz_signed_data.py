"""Fuzz target: est_hw.est.signed_data: a CMS SignedData (DER, as is) parsed by
parse_signed_data, then its signature checked by SignedContent.verify against a fixed
list of CA certificates (RFC 7030 section 4.4.2: a server-generated key comes signed).

The candidate CA is built from fixed keys (:func:`fixed_ca`), so the seeds of
make_corpus.py that leave out the signer's certificate still verify, in any process."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import rsa

    from est_hw.testing.ca import TestCa

NAME = "signed_data"

#: the private scalars of the fixed CA's P-256 keys (test keys, never secrets)
ROOT_SCALAR = 0x5EED_0001_F022_5164_4E65_D000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0001
ISSUING_SCALAR = 0x5EED_0002_F022_5164_4E65_D000_0000_0000_0000_0000_0000_0000_0000_0000_0000_0002


def fixed_ca() -> TestCa:
    """A root and an issuing CA with fixed keys, names and serials: the same signer
    (issuer and serial, subject key identifier, key) in every process."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from est_hw.testing.ca import TestCa

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    root_key = ec.derive_private_key(ROOT_SCALAR, ec.SECP256R1())
    issuing_key = ec.derive_private_key(ISSUING_SCALAR, ec.SECP256R1())
    root_name = "fuzz signed_data Root CA"

    def certificate(subject: str, key: ec.EllipticCurvePrivateKey, serial: int) -> x509.Certificate:
        """Signed by the root key (ECDSA: the signature differs each time, nothing else)."""
        return (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(name(root_name))
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC))
            .not_valid_after(datetime.datetime(2055, 1, 1, tzinfo=datetime.UTC))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(root_key, hashes.SHA256())
        )

    root = certificate(root_name, root_key, 0x5EED01)
    issuing = certificate("fuzz signed_data Issuing CA", issuing_key, 0x5EED02)
    return TestCa(root, root_key, issuing, issuing_key)


def rsa_signer(ca: TestCa) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A fresh RSA-2048 key and its certificate from ``ca``'s issuing CA (with a subject
    key identifier, so a SignerInfo may name it either way)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=fuzz signed_data RSA signer"))
        .issuer_name(ca.issuing_cert.subject)
        .public_key(key.public_key())
        .serial_number(0x5EED03)
        .not_valid_before(ca.issuing_cert.not_valid_before_utc)
        .not_valid_after(ca.issuing_cert.not_valid_after_utc)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(ca.issuing_key, hashes.SHA256())
    )
    return cert, key


def load() -> Callable[[bytes], None]:
    """Import the code under test; return the one-input function (only EstHwError escapes)."""
    import warnings

    from cryptography import x509

    from est_hw.errors import EstHwError
    from est_hw.est.signed_data import SignedContent, parse_signed_data

    candidates = tuple(fixed_ca().chain)

    def one_input(data: bytes) -> None:
        # cryptography warns (BER fallback, a non-positive serial): not findings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                signed = parse_signed_data(data, what="the fuzzed server-generated key")
            except EstHwError:
                return
            if not isinstance(signed, SignedContent) or not isinstance(signed.content, bytes):
                raise AssertionError("parse_signed_data returned no content, no error")
            if not all(isinstance(c, x509.Certificate) for c in signed.certificates):
                raise AssertionError("SignedContent.certificates holds a non-certificate")
            try:
                signer = signed.verify(candidates)
            except EstHwError:
                return
            if not isinstance(signer, x509.Certificate):
                raise AssertionError(f"verify returned {type(signer).__name__}")
            if signer not in (*signed.certificates, *candidates):
                raise AssertionError("verify returned a certificate it was not given")

    return one_input


if __name__ == "__main__":
    from harness import run

    run(NAME, load, sys.argv)

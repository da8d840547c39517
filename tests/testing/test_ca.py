"""TestCa: a root and an issuing CA whose certificates pass RFC 5280 path validation."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from est_hw.testing import TestCa

from .helpers import make_csr, verify_issued


@pytest.fixture(scope="module")
def ca() -> TestCa:
    return TestCa.create("unit")


def test_chain_is_root_signed_intermediate(ca: TestCa) -> None:
    assert ca.anchor is ca.root_cert
    assert ca.chain == [ca.issuing_cert, ca.root_cert]
    ca.root_cert.verify_directly_issued_by(ca.root_cert)
    ca.issuing_cert.verify_directly_issued_by(ca.root_cert)
    bc = ca.issuing_cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    assert "unit" in ca.root_cert.subject.rfc4514_string()


def test_server_certificate_passes_the_webpki_server_verifier(ca: TestCa) -> None:
    cert, key = ca.issue_server_certificate(["localhost", "127.0.0.1"])
    assert cert.public_key() == key.public_key()
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    verifier = (
        PolicyBuilder().store(Store([ca.anchor])).build_server_verifier(x509.DNSName("localhost"))
    )
    verifier.verify(cert, [ca.issuing_cert])
    by_ip = (
        PolicyBuilder()
        .store(Store([ca.anchor]))
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )
    by_ip.verify(cert, [ca.issuing_cert])
    wrong = (
        PolicyBuilder().store(Store([ca.anchor])).build_server_verifier(x509.DNSName("example.com"))
    )
    with pytest.raises(x509.verification.VerificationError):
        wrong.verify(cert, [ca.issuing_cert])


def test_issue_copies_subject_and_san_and_sets_client_auth(ca: TestCa) -> None:
    csr, key = make_csr("device-7", san=["device-7.example"])
    cert = ca.issue(csr, days=30)
    assert cert.subject == csr.subject
    assert cert.public_key() == key.public_key()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["device-7.example"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = ca.issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.key_identifier == issuer_ski.value.digest
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 30 <= lifetime.days <= 31
    assert ca.issued_here(cert)
    verify_issued(ca, cert)


def test_issue_with_subject_override_and_random_serials(ca: TestCa) -> None:
    csr, _ = make_csr("asked")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "given")])
    first = ca.issue(csr, subject=subject)
    second = ca.issue(csr, subject=subject)
    assert first.subject == subject
    assert first.serial_number != second.serial_number


def test_issued_here_refuses_foreign_certificates(ca: TestCa) -> None:
    other = TestCa.create("other")
    csr, _ = make_csr()
    assert not ca.issued_here(other.issue(csr))


def test_save_and_load_round_trip(ca: TestCa, tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert not TestCa.exists(state)
    ca.save(state)
    assert TestCa.exists(state)
    for key_file in ("root.key", "issuing.key"):
        assert stat.S_IMODE((state / key_file).stat().st_mode) == 0o600
    loaded = TestCa.load(state)
    assert loaded.anchor == ca.anchor
    assert loaded.issuing_cert == ca.issuing_cert
    assert loaded.issuing_key.private_numbers() == ca.issuing_key.private_numbers()
    csr, _ = make_csr()
    assert ca.issued_here(loaded.issue(csr))

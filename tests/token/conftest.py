"""Fixtures for the key-backend tests: an open PKCS#11 backend, a throwaway CA, pkcs11-tool."""

from __future__ import annotations

import datetime
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from est_hw.keys.base import PublicKey, Secret
from est_hw.keys.pkcs11 import Pkcs11Backend, TokenSelector, open_pkcs11
from tests.conftest import SoftHsmToken


@pytest.fixture
def backend(softhsm_token: SoftHsmToken) -> Iterator[Pkcs11Backend]:
    """A logged-in backend on a fresh SoftHSM2 token; closed after the test."""
    opened = open_pkcs11(
        TokenSelector(module=softhsm_token.module, token_label=softhsm_token.label),
        Secret(softhsm_token.pin),
    )
    with opened:
        yield opened


def pkcs11_tool(
    token: SoftHsmToken, *args: str, login: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run opensc's pkcs11-tool against ``token`` (an independent view of the token)."""
    command = ["pkcs11-tool", "--module", token.module, "--token-label", token.label]
    if login:
        command += ["--login", "--pin", token.pin]
    env = {**os.environ, "SOFTHSM2_CONF": str(token.conf)}
    return subprocess.run([*command, *args], check=True, capture_output=True, env=env)


def list_objects(token: SoftHsmToken) -> str:
    """``pkcs11-tool -O``: every object on the token, as text."""
    return pkcs11_tool(token, "-O").stdout.decode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@dataclass
class ThrowawayCa:
    """A root and an intermediate CA made on the spot with cryptography."""

    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuer_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate

    @property
    def chain(self) -> list[x509.Certificate]:
        return [self.intermediate, self.root]

    def issue(self, public_key: PublicKey, common_name: str = "device-1") -> x509.Certificate:
        """An end-entity certificate for ``public_key``, signed by the intermediate."""
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(self.issuer_key, hashes.SHA256())
        )


def _ca_cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )


@pytest.fixture(scope="session")
def throwaway_ca() -> ThrowawayCa:
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _ca_cert("est-hw test root", root_key, _name("est-hw test root"), root_key)
    issuer_key = ec.generate_private_key(ec.SECP256R1())
    intermediate = _ca_cert("est-hw test issuing CA", issuer_key, root.subject, root_key)
    return ThrowawayCa(root_key, root, issuer_key, intermediate)

"""Throwaway certificates for the TLS tests, made with cryptography.

A root CA, an intermediate CA that issues the server certificates (the servers send
leaf + intermediate), client certificates (EC P-256 and RSA-2048), and the odd ones the
trust checks need against servers (expired, wrong name, another CA).  They are built with
tests/pki.py, which the chain checks without a server use directly.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from est_hw.keys.base import PrivateKey
from tests.pki import NOW, Issuer, make_ca, make_leaf, make_two_tier_ca

DAY = dt.timedelta(days=1)
LOCAL_NAMES: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
]
SERVER_AUTH = [ExtendedKeyUsageOID.SERVER_AUTH]
CLIENT_AUTH = [ExtendedKeyUsageOID.CLIENT_AUTH]


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass(frozen=True)
class Issued:
    """A certificate, its key, and the files a server process reads."""

    cert: x509.Certificate
    key: PrivateKey
    chain: tuple[x509.Certificate, ...]  # leaf first, without the root
    chain_path: Path  # leaf + intermediates (PEM)
    key_path: Path
    cas_path: Path  # intermediates only (for ``s_server -cert_chain``), may be empty


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def write_issued(
    directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey, *chain: x509.Certificate
) -> Issued:
    chain_path = directory / f"{stem}.chain.pem"
    key_path = directory / f"{stem}.key"
    cas_path = directory / f"{stem}.cas.pem"
    chain_path.write_bytes(_pem(cert, *chain))
    cas_path.write_bytes(_pem(*chain))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert, key, (cert, *chain), chain_path, key_path, cas_path)


@dataclass(frozen=True)
class Pki:
    """Everything the TLS tests need, written under ``directory``."""

    directory: Path
    root: x509.Certificate
    root_path: Path
    intermediate: x509.Certificate
    server_ec: Issued
    server_rsa: Issued
    server_expired: Issued
    server_other_name: Issued
    server_untrusted: Issued
    client_ec: Issued
    client_rsa: Issued


def build_pki(directory: Path) -> Pki:
    ca = make_two_tier_ca(issuing_cn="est-hw test intermediate", days=30)
    root_path = directory / "root.pem"
    root_path.write_bytes(_pem(ca.root.cert))

    def issue(
        stem: str,
        key: PrivateKey,
        cn: str = "localhost",
        *,
        names: list[x509.GeneralName] | None = LOCAL_NAMES,
        eku: list[x509.ObjectIdentifier] = SERVER_AUTH,
        issuer: Issuer = ca.issuing,
        chain: tuple[x509.Certificate, ...] = (ca.issuing.cert,),
        start: dt.datetime = NOW - DAY,
        days: int = 11,
    ) -> Issued:
        """A certificate for ``key`` and the files for it (a server's unless told).

        Signed by the intermediate and valid from yesterday for ten days from now, unless
        told otherwise; ``chain`` is what is sent after it.
        """
        cert = make_leaf(issuer, key.public_key(), cn, names=names, eku=eku, start=start, days=days)
        return write_issued(directory, stem, cert, key, *chain)

    return Pki(
        directory=directory,
        root=ca.root.cert,
        root_path=root_path,
        intermediate=ca.issuing.cert,
        server_ec=issue("server-ec", ec_key()),
        server_rsa=issue("server-rsa", rsa_key()),
        server_expired=issue("server-expired", ec_key(), start=NOW - 30 * DAY, days=29),
        server_other_name=issue("server-other", ec_key(), names=[x509.DNSName("other.example")]),
        server_untrusted=issue(
            "server-untrusted", ec_key(), issuer=make_ca("some other CA", days=30), chain=()
        ),
        client_ec=issue("client-ec", ec_key(), "client-ec", names=None, eku=CLIENT_AUTH),
        client_rsa=issue("client-rsa", rsa_key(), "client-rsa", names=None, eku=CLIENT_AUTH),
    )

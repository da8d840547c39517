"""Throwaway certificates for the TLS tests, made with cryptography.

A root CA, an intermediate CA that issues the server certificates (the servers send
leaf + intermediate), client certificates (EC P-256 and RSA-2048), and the odd ones the
trust checks need (expired, wrong name, another CA, permissive-but-valid, invalid CA).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from est_hw.keys.base import PrivateKey

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
LOCAL_NAMES: list[x509.GeneralName] = [
    x509.DNSName("localhost"),
    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


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


def make_ca(
    cn: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey] | None = None,
    *,
    bc_critical: bool = True,
    is_ca: bool = True,
    key_cert_sign: bool = True,
) -> x509.Certificate:
    issuer_name, signer = (issuer[0].subject, issuer[1]) if issuer else (_name(cn), key)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - DAY)
        .not_valid_after(NOW + 30 * DAY)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), bc_critical)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=key_cert_sign,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(signer, hashes.SHA256())
    )


def make_leaf(
    cn: str,
    key: PrivateKey,
    issuer: tuple[x509.Certificate, PrivateKey],
    *,
    names: list[x509.GeneralName] | None = None,
    eku: list[x509.ObjectIdentifier] | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer[0].subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - DAY)
        .not_valid_after(not_after or NOW + 10 * DAY)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


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
    root_key, inter_key = ec_key(), ec_key()
    root = make_ca("est-hw test root", root_key)
    inter = make_ca("est-hw test intermediate", inter_key, (root, root_key))
    root_path = directory / "root.pem"
    root_path.write_bytes(_pem(root))
    srv = (inter, inter_key)
    server_auth = [ExtendedKeyUsageOID.SERVER_AUTH]
    client_auth = [ExtendedKeyUsageOID.CLIENT_AUTH]

    def server(
        stem: str,
        key: PrivateKey,
        names: list[x509.GeneralName] = LOCAL_NAMES,
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
    ) -> Issued:
        cert = make_leaf(
            "localhost",
            key,
            srv,
            names=names,
            eku=server_auth,
            not_before=not_before,
            not_after=not_after,
        )
        return write_issued(directory, stem, cert, key, inter)

    other_key = ec_key()
    other_root = make_ca("some other CA", other_key)
    untrusted_key = ec_key()
    untrusted = make_leaf(
        "localhost", untrusted_key, (other_root, other_key), names=LOCAL_NAMES, eku=server_auth
    )
    client_ec_key, client_rsa_key = ec_key(), rsa_key()
    return Pki(
        directory=directory,
        root=root,
        root_path=root_path,
        intermediate=inter,
        server_ec=server("server-ec", ec_key()),
        server_rsa=server("server-rsa", rsa_key()),
        server_expired=server(
            "server-expired", ec_key(), not_before=NOW - 30 * DAY, not_after=NOW - DAY
        ),
        server_other_name=server("server-other", ec_key(), names=[x509.DNSName("other.example")]),
        server_untrusted=write_issued(directory, "server-untrusted", untrusted, untrusted_key),
        client_ec=write_issued(
            directory,
            "client-ec",
            make_leaf("client-ec", client_ec_key, srv, eku=client_auth),
            client_ec_key,
            inter,
        ),
        client_rsa=write_issued(
            directory,
            "client-rsa",
            make_leaf("client-rsa", client_rsa_key, srv, eku=client_auth),
            client_rsa_key,
            inter,
        ),
    )

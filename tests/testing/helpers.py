"""Stdlib-only EST client bits for testing the test server (never est_hw.est/tls)."""

from __future__ import annotations

import base64
import hashlib
import http.client
import secrets
import ssl
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import AttributeOID, NameOID
from cryptography.x509.verification import ExtensionPolicy, PolicyBuilder, Store

from est_hw.testing import EstTestServer, TestCa

PKCS10 = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"}


@dataclass
class Answer:
    status: int
    headers: Message
    body: bytes


def client_context(
    server: EstTestServer,
    *,
    cert_files: tuple[Path, Path] | None = None,
    minimum: ssl.TLSVersion | None = None,
    maximum: ssl.TLSVersion | None = None,
) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cadata=server.ca.anchor_pem().decode())
    if cert_files is not None:
        ctx.load_cert_chain(*cert_files)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


def connect(server: EstTestServer, **kwargs: object) -> http.client.HTTPSConnection:
    ctx = client_context(server, **kwargs)  # type: ignore[arg-type]
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=10)


def call(
    conn: http.client.HTTPSConnection,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    return Answer(resp.status, resp.msg, resp.read())


def request(server: EstTestServer, method: str, operation: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, **kwargs: object) -> Answer:  # fmt: skip
    conn = connect(server, **kwargs)
    try:
        return call(conn, method, server.est_path + operation, body, headers)
    finally:
        conn.close()


def make_csr(
    cn: str = "device-1",
    *,
    san: list[str] | None = None,
    key: ec.EllipticCurvePrivateKey | None = None,
    challenge: bytes | None = None,
) -> tuple[x509.CertificateSigningRequest, ec.EllipticCurvePrivateKey]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in san]), critical=False
        )
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge)
    return builder.sign(key, hashes.SHA256()), key


def b64(der: bytes, width: int = 64, eol: bytes = b"\n") -> bytes:
    text = base64.b64encode(der)
    if width == 0:
        return text
    return b"".join(text[i : i + width] + eol for i in range(0, len(text), width))


def csr_body(csr: x509.CertificateSigningRequest) -> bytes:
    return b64(csr.public_bytes(serialization.Encoding.DER))


def client_cert_files(
    ca: TestCa, directory: Path, cn: str = "device-1", san: list[str] | None = None
) -> tuple[tuple[Path, Path], x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A clientAuth certificate issued by ``ca`` and its key, written as PEM files."""
    csr, key = make_csr(cn, san=san)
    cert = ca.issue(csr)
    cert_file, key_file = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return (cert_file, key_file), cert, key


def verify_issued(ca: TestCa, cert: x509.Certificate) -> None:
    """``cert`` (an enrolled, clientAuth one) chains to ``ca``'s anchor: webpki CA rules."""
    verifier = (
        PolicyBuilder()
        .store(Store([ca.anchor]))
        .extension_policies(
            ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=ExtensionPolicy.permit_all()
        )
        .build_client_verifier()
    )
    verifier.verify(cert, [ca.issuing_cert])


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def digest_challenges(headers: Message) -> dict[str, dict[str, str]]:
    """algorithm -> challenge parameters, from every WWW-Authenticate: Digest header."""
    out = {}
    for value in headers.get_all("WWW-Authenticate") or []:
        scheme, _, params = value.partition(" ")
        if scheme.lower() == "digest":
            fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(params))
            out[fields["algorithm"]] = fields
    return out


def digest(
    challenge: dict[str, str], user: str, password: str, method: str, uri: str, nc: int = 1
) -> str:
    """An RFC 7616 Authorization value (qop=auth), computed independently here."""
    algorithm = challenge["algorithm"]
    fn = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}[algorithm]

    def h(s: str) -> str:
        return fn(s.encode()).hexdigest()

    cnonce = secrets.token_hex(8)
    ncs = f"{nc:08x}"
    ha1 = h(f"{user}:{challenge['realm']}:{password}")
    ha2 = h(f"{method}:{uri}")
    response = h(f"{ha1}:{challenge['nonce']}:{ncs}:{cnonce}:auth:{ha2}")
    return (
        f'Digest username="{user}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", '
        f'uri="{uri}", algorithm={algorithm}, qop=auth, nc={ncs}, cnonce="{cnonce}", '
        f'response="{response}", opaque="{challenge["opaque"]}"'
    )


def wait_for(condition: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it is truthy (for server-side effects that race the client)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())

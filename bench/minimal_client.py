"""The "server alone" baseline: a minimal EST client on the stdlib (ssl + http.client).

It does what est-hw does on the wire (one TLS connection, the same requests, the same
CSR size) with as little client-side work as possible: the TLS handshake is OpenSSL's,
the CSR is made once up front, and answers are read but not parsed.  Its round-trip time
is therefore (almost all) the server's time, and its request rate is what the server can
issue when the client costs nothing.
"""

from __future__ import annotations

import base64
import http.client
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

EST_PATH = "/.well-known/est/"

#: One request of an enrollment as the server saw it: (method, operation).
Step = tuple[str, str]
#: What the server alone does for one certificate: handshake + POST /simpleenroll.
ISSUE_ONLY: tuple[Step, ...] = (("POST", "simpleenroll"),)


def premade_csr(common_name: str = "bench-baseline") -> bytes:
    """A CSR for a software EC P-256 key, base64 at 64 columns as est-hw sends it."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(f"{common_name}.example")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    text = base64.b64encode(csr.public_bytes(serialization.Encoding.DER))
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return b"\n".join(lines) + b"\n"


@dataclass(frozen=True)
class MinimalClient:
    """Talks to ``https://127.0.0.1:port`` trusting ``ca_file``."""

    host: str
    port: int
    ca_file: Path
    csr_body: bytes

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.set_alpn_protocols(["http/1.1"])
        return context

    def _request(self, conn: http.client.HTTPSConnection, step: Step) -> None:
        method, operation = step
        headers = {"Host": f"{self.host}:{self.port}", "Accept": "*/*"}
        body = None
        if method == "POST":
            body = self.csr_body
            headers["Content-Type"] = "application/pkcs10"
            headers["Content-Transfer-Encoding"] = "base64"
        conn.request(method, EST_PATH + operation, body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status not in (200, 204):
            raise RuntimeError(f"{method} {operation}: HTTP {response.status}")

    def enrollment(self, steps: Sequence[Step], context: ssl.SSLContext | None = None) -> float:
        """Seconds for one fresh connection (TCP + TLS handshake) carrying ``steps``."""
        context = context or self.context()
        start = time.perf_counter()
        conn = http.client.HTTPSConnection(self.host, self.port, context=context, timeout=30)
        try:
            conn.connect()
            for step in steps:
                self._request(conn, step)
        finally:
            conn.close()
        return time.perf_counter() - start

    def rate(self, steps: Sequence[Step], total: int, threads: int = 1) -> float:
        """Enrollments per second: ``total`` enrollments split over ``threads``."""
        context = self.context()
        per_thread = [total // threads + (1 if i < total % threads else 0) for i in range(threads)]
        errors: list[BaseException] = []

        def work(count: int) -> None:
            try:
                for _ in range(count):
                    self.enrollment(steps, context)
            except BaseException as exc:
                errors.append(exc)

        workers = [threading.Thread(target=work, args=(n,)) for n in per_thread]
        start = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        elapsed = time.perf_counter() - start
        if errors:
            raise RuntimeError(f"minimal client failed: {errors[0]!r}")
        return total / elapsed

    def cacerts(self) -> list[x509.Certificate]:
        """GET /cacerts: the CA chain the server issues from."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context())
        try:
            conn.request("GET", EST_PATH + "cacerts", headers={"Accept": "*/*"})
            response = conn.getresponse()
            body = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise RuntimeError(f"GET cacerts: HTTP {response.status}")
        der = base64.b64decode(b"".join(body.split()))
        return list(pkcs7.load_der_pkcs7_certificates(der))


def write_chain_file(client: MinimalClient, path: Path) -> Path:
    """The anchor plus the issuing CA in one PEM file: with it est-hw needs no /cacerts."""
    pem = serialization.Encoding.PEM
    anchors = client.ca_file.read_bytes()
    known = x509.load_pem_x509_certificates(anchors)
    extra = [cert for cert in client.cacerts() if cert not in known]
    path.write_bytes(anchors + b"".join(cert.public_bytes(pem) for cert in extra))
    return path

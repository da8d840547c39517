"""The misbehaviour catalogue itself: complete, documented, reachable from the command
line, and doing on the wire what it says -- checked with the stdlib only, so the client
tests above are measured against behaviour that is really there."""

from __future__ import annotations

import base64
import datetime
import re
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

from est_hw.testing import EstTestServer, ServerConfig, TestCa
from est_hw.testing.cli import _config, build_parser
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from tests.hostile.expectations import EXPECTED, XFAIL

M = Misbehaviour
DOC = Path(__file__).resolve().parents[2] / "docs" / "hostile-servers.md"
PKCS10 = {"Content-Type": "application/pkcs10", "Content-Transfer-Encoding": "base64"}


# --- the catalogue ------------------------------------------------------------------------


def test_every_misbehaviour_has_an_expectation() -> None:
    assert set(EXPECTED) == set(Misbehaviour)
    assert set(XFAIL) <= set(Misbehaviour)


def test_names_layers_and_descriptions() -> None:
    for mode in Misbehaviour:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", mode.value)
        assert isinstance(mode.layer, Layer)
        assert mode.description and "\n" not in mode.description
        assert Misbehaviour.named(mode.value) is mode
    with pytest.raises(ValueError, match="no misbehaviour"):
        Misbehaviour.named("polite")


def test_the_doc_table_says_what_the_tests_check() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (\w+) \| (\d) \|", DOC.read_text(), re.M)
    documented = {name: (layer, int(code)) for name, layer, code in rows}
    assert documented == {m.value: (m.layer.value, EXPECTED[m].code) for m in Misbehaviour}
    marked = re.findall(r"^\| `([a-z0-9-]+)` \|[^\n]*\*\*xfail\*\*", DOC.read_text(), re.M)
    assert set(marked) == {m.value for m in XFAIL}  # a fixed bug leaves the table too


def test_config_checks_the_misbehaviour_fields() -> None:
    with pytest.raises(ValueError, match="misbehave_on"):
        ServerConfig(misbehaviour=M.BODY_EMPTY, misbehave_on=frozenset({"nonsense"}))
    with pytest.raises(ValueError, match="redirect_to"):
        ServerConfig(misbehaviour=M.REDIRECT_ELSEWHERE)
    with pytest.raises(ValueError, match="Misbehaviour"):
        ServerConfig(misbehaviour="body-empty")  # type: ignore[arg-type]
    config = ServerConfig(misbehaviour=M.BODY_EMPTY, misbehave_on={"csrattrs"})  # type: ignore[arg-type]
    assert config.misbehave_on == frozenset({"csrattrs"})


def test_command_line_flags() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--misbehave", "http-slow-drip", "--misbehave-on", "cacerts", "--misbehave-on",
         "csrattrs", "--redirect-to", "https://elsewhere.example/"]
    )  # fmt: skip
    config = _config(args)
    assert config.misbehaviour is M.HTTP_SLOW_DRIP
    assert config.misbehave_on == {"cacerts", "csrattrs"}
    assert config.redirect_to == "https://elsewhere.example/"
    assert _config(parser.parse_args([])).misbehaviour is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--misbehave", "polite"])


# --- on the wire (stdlib client) -------------------------------------------------------------

_CA = TestCa.create("est-hw hostile catalogue")


@pytest.fixture
def serve() -> Iterator[type[EstTestServer]]:
    started: list[EstTestServer] = []

    class Started(EstTestServer):
        def __init__(self, config: ServerConfig) -> None:
            super().__init__(config, _CA)
            self.start()
            started.append(self)

    yield Started
    for server in started:
        server.stop()


def _tls(server: EstTestServer, cadata: str | None = None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cadata=cadata or _CA.anchor_pem().decode())
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _csr_request(server: EstTestServer) -> tuple[bytes, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name.from_rfc4514_string("CN=catalogue"))
        .sign(key, hashes.SHA256())
    )
    body = base64.encodebytes(csr.public_bytes(Encoding.DER))
    head = (
        f"POST {server.est_path}simpleenroll HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: application/pkcs10\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body, key


def _exchange(
    server: EstTestServer, *, wait: float = 5.0
) -> tuple[bytes, bytes, ec.EllipticCurvePrivateKey]:
    """POST a CSR; return (header block, body as received until close) and the key."""
    request, key = _csr_request(server)
    with _tls(server) as conn:
        conn.sendall(request)
        conn.settimeout(wait)
        data = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except (TimeoutError, ssl.SSLError, OSError):
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body, key


def _certs(body: bytes) -> list[x509.Certificate]:
    return pkcs7.load_der_pkcs7_certificates(base64.b64decode(body))


def test_chunked_is_well_formed(serve: type[EstTestServer]) -> None:
    head, body, key = _exchange(serve(ServerConfig(misbehaviour=M.HTTP_CHUNKED)))
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"content-length" not in head.lower()
    decoded, rest = b"", body
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            assert rest == b"\r\n"
            break
        decoded, rest = decoded + rest[:size], rest[size + 2 :]
    (cert,) = _certs(decoded)
    assert cert.public_key() == key.public_key()


def test_close_delimited_and_interim_answers(serve: type[EstTestServer]) -> None:
    head, body, _ = _exchange(serve(ServerConfig(misbehaviour=M.HTTP_CLOSE_DELIMITED)))
    assert b"content-length" not in head.lower() and b"connection: close" in head.lower()
    assert len(_certs(body)) == 1
    head, body, _ = _exchange(serve(ServerConfig(misbehaviour=M.HTTP_INTERIM_103)))
    assert head.startswith(b"HTTP/1.1 103 ")
    assert body.startswith(b"HTTP/1.1 200 OK\r\n")


def test_wrong_lengths(serve: type[EstTestServer]) -> None:
    head, body, _ = _exchange(serve(ServerConfig(misbehaviour=M.HTTP_LENGTH_TOO_SHORT)))
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert length == len(body) - 10
    head, body, _ = _exchange(serve(ServerConfig(misbehaviour=M.HTTP_CLOSE_MID_BODY)))
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    assert 0 < len(body) < length


def test_slow_drip_drips(serve: type[EstTestServer]) -> None:
    server = serve(ServerConfig(misbehaviour=M.HTTP_SLOW_DRIP))
    request, _ = _csr_request(server)
    with _tls(server) as conn:
        conn.sendall(request)
        conn.settimeout(5)
        first = conn.recv(100)
        started = time.monotonic()
        conn.settimeout(0.5)
        with pytest.raises(TimeoutError):
            conn.recv(100)
    assert first == b"H" and time.monotonic() - started >= 0.4


def test_tcp_misbehaviours(serve: type[EstTestServer]) -> None:
    silent = serve(ServerConfig(misbehaviour=M.TCP_SILENT))
    with socket.create_connection(("127.0.0.1", silent.port), timeout=0.3) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x00")
        with pytest.raises(TimeoutError):
            sock.recv(10)
    plain = serve(ServerConfig(misbehaviour=M.TCP_PLAINTEXT_HTTP))
    with socket.create_connection(("127.0.0.1", plain.port), timeout=5) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x00")
        assert sock.recv(100).startswith(b"HTTP/1.1 400 ")


def test_tls_certificate_misbehaviours(serve: type[EstTestServer]) -> None:
    alone = serve(ServerConfig(misbehaviour=M.TLS_NO_INTERMEDIATE))
    with pytest.raises(ssl.SSLCertVerificationError):
        _tls(alone)  # the root alone cannot verify a leaf sent without its issuer
    expired = serve(ServerConfig(misbehaviour=M.TLS_EXPIRED))
    with pytest.raises(ssl.SSLCertVerificationError, match="expired"):
        _tls(expired)
    wrong = serve(ServerConfig(misbehaviour=M.TLS_WRONG_NAME))
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch"):
        _tls(wrong)


def test_certificate_bodies(serve: type[EstTestServer]) -> None:
    def answer(mode: Misbehaviour) -> tuple[list[x509.Certificate], ec.EllipticCurvePrivateKey]:
        _, body, key = _exchange(serve(ServerConfig(misbehaviour=mode)))
        return _certs(body), key

    now = datetime.datetime.now(datetime.UTC)
    certs, key = answer(M.BODY_SEVERAL_LEAVES)
    assert len({c.serial_number for c in certs if c.public_key() == key.public_key()}) == 2
    (cert,), key = answer(M.BODY_EXPIRED)
    assert cert.public_key() == key.public_key() and cert.not_valid_after_utc < now
    (cert,), key = answer(M.BODY_CA_FOR_KEY)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    certs, key = answer(M.BODY_UNSUPPORTED_EXTRA)
    with pytest.raises(UnsupportedAlgorithm):
        [c.public_key() for c in certs]


def _ends(conn: socket.socket) -> bool:
    """Whether the peer closes (or resets) ``conn`` within 3 seconds."""
    conn.settimeout(3)
    try:
        while conn.recv(4096):
            pass
    except TimeoutError:
        return False
    except OSError:  # a reset, or a TLS connection cut without close_notify
        pass
    return True


@pytest.mark.parametrize("mode", [M.TCP_SILENT, M.HTTP_SILENT, M.HTTP_SLOW_DRIP])
def test_stop_cuts_stalled_connections(mode: Misbehaviour) -> None:
    """A stalling misbehaviour never keeps a stopped server (or the suite) hanging."""
    server = EstTestServer(ServerConfig(misbehaviour=mode), _CA)
    server.start()
    if mode is M.TCP_SILENT:
        conn: socket.socket = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    else:
        conn = _tls(server)
        conn.sendall(_csr_request(server)[0])
    time.sleep(0.2)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 3
    with conn:
        assert _ends(conn)

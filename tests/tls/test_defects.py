"""Regression tests for the tlslite-ng 0.8.2 defects the adapter works around.

Each test first shows the defect with tlslite-ng used as it comes (its own key classes,
default settings), against a real ``openssl s_server``, then shows the adapter succeed
against the same server.  If a tlslite-ng upgrade fixes a defect, the first half fails
and tells us the workaround can go.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from tlslite.errors import TLSLocalAlert, TLSRemoteAlert
from tlslite.handshakesettings import HandshakeSettings
from tlslite.tlsconnection import TLSConnection
from tlslite.utils.keyfactory import parsePEMKey
from tlslite.x509certchain import X509CertChain

from est_hw.tls import TlsSettings
from est_hw.tls.bindings import TLS_EXPORTER_LABEL
from est_hw.tls.connection import TlsChannel, handshake_settings
from tests.tls.conftest import requires_gnutls, requires_openssl
from tests.tls.pki import Issued, Pki
from tests.tls.servers import ProcessServer, gnutls_serv, s_server

MakeSettings = Callable[..., TlsSettings]
pytestmark = requires_openssl


def bare_tlslite(
    server: ProcessServer, client: Issued, settings: HandshakeSettings
) -> TLSConnection:
    """A TLS 1.x client as tlslite-ng offers it, with its own software key."""
    conn = TLSConnection(socket.create_connection(("127.0.0.1", server.port), timeout=5))
    chain = X509CertChain()
    chain.parsePemList(client.chain_path.read_text())
    key = parsePEMKey(client.key_path.read_text(), private=True)
    conn.handshakeClientCert(chain, key, settings=settings, serverName="localhost")
    return conn


def http_get(channel: TlsChannel) -> bytes:
    channel.write(b"GET / HTTP/1.0\r\n\r\n", 5)
    data = b""
    while chunk := channel.read(65536, 5):
        data += chunk
    return data


def connect(server: ProcessServer, settings: TlsSettings) -> TlsChannel:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    return TlsChannel.establish(sock, "localhost", settings)


def test_defect1_tls13_certificate_compression(
    pki: Pki, make_settings: MakeSettings, log: Path
) -> None:
    """tlslite-ng sends CompressedCertificate although OpenSSL never offered it."""
    args = ("-tls1_3", "-Verify", "1", "-CAfile", str(pki.root_path))
    with s_server(pki.server_ec, log, *args) as server:
        plain = HandshakeSettings()
        plain.minVersion = (3, 4)
        assert plain.certificate_compression_send  # on by default
        conn = bare_tlslite(server, pki.client_ec, plain)
        with pytest.raises(TLSRemoteAlert, match="unexpected_message"):
            conn.write(b"GET / HTTP/1.0\r\n\r\n")
            conn.read()
        assert "unexpected message" in server.output()

        settings = make_settings("1.3", client=pki.client_ec)
        assert handshake_settings(settings).certificate_compression_send == []
        channel = connect(server, settings)
        assert http_get(channel).startswith(b"HTTP/1.0 200 ok")
        channel.close()


@pytest.mark.parametrize(("kind", "sigalgs"), [("ec", "ECDSA+SHA256"), ("rsa", "RSA-PSS+SHA256")])
def test_defect2_tls12_certificate_request_without_rsa_pkcs1(
    pki: Pki, make_settings: MakeSettings, log: Path, kind: str, sigalgs: str
) -> None:
    """tlslite-ng aborts when a TLS 1.2 CertificateRequest lists no rsa_pkcs1 scheme."""
    client: Issued = pki.client_ec if kind == "ec" else pki.client_rsa
    args = ("-tls1_2", "-Verify", "1", "-CAfile", str(pki.root_path), "-client_sigalgs", sigalgs)
    with s_server(pki.server_ec, log, *args) as server:
        plain = HandshakeSettings()
        plain.maxVersion = (3, 3)
        plain.certificate_compression_send = []
        with pytest.raises(TLSLocalAlert, match="doesn't accept any sigalgs"):
            bare_tlslite(server, client, plain)

        channel = connect(server, make_settings("1.2", client=client))
        assert channel._conn.est_patched_certificate_request
        page = http_get(channel).decode()
        channel.close()
    assert page.startswith("HTTP/1.0 200 ok")
    assert f"CN={'client-' + kind}" in page or f"CN = client-{kind}" in server.output()


def _openssl_keying_material(server: ProcessServer) -> bytes:
    out = server.wait_for("Keying material:")
    found = re.findall(r"Keying material: ([0-9A-F]+)", out)
    assert len(found) == 1
    return bytes.fromhex(found[0])


@pytest.mark.parametrize("kind", ["none", "ec", "rsa"])
def test_defect3_tls13_exporter_with_a_client_certificate(
    pki: Pki, make_settings: MakeSettings, log: Path, kind: str
) -> None:
    """tlslite-ng's TLS 1.3 exporter is wrong when the client sends a certificate."""
    client = {"none": None, "ec": pki.client_ec, "rsa": pki.client_rsa}[kind]
    args = ["-tls1_3", "-keymatexport", TLS_EXPORTER_LABEL.decode(), "-keymatexportlen", "32"]
    if client:
        args += ["-Verify", "1", "-CAfile", str(pki.root_path)]
    with s_server(pki.server_ec, log, *args, www=False) as server:
        channel = connect(server, make_settings("1.3", client=client))
        channel.write(b"ping\n", 5)
        expected = _openssl_keying_material(server)
        theirs = bytes(channel._conn.keyingMaterialExporter(bytearray(TLS_EXPORTER_LABEL), 32))
        channel.close()
    assert channel.tls_exporter == expected
    if client:
        assert theirs != expected  # the defect
    else:
        assert theirs == expected


def test_tls12_exporter_uses_an_empty_context_not_none(
    pki: Pki, make_settings: MakeSettings, log: Path
) -> None:
    """RFC 9266 wants an empty context; s_server -keymatexport exports with none."""
    args = [
        "-tls1_2",
        "-keymatexport",
        TLS_EXPORTER_LABEL.decode(),
        "-keymatexportlen",
        "32",
        "-Verify",
        "1",
        "-CAfile",
        str(pki.root_path),
    ]
    with s_server(pki.server_ec, log, *args, www=False) as server:
        channel = connect(server, make_settings("1.2", client=pki.client_rsa))
        channel.write(b"ping\n", 5)
        no_context = _openssl_keying_material(server)
        ours_without_context = bytes(
            channel._conn.keyingMaterialExporter(bytearray(TLS_EXPORTER_LABEL), 32)
        )
        channel.close()
    assert channel.extended_master_secret
    assert ours_without_context == no_context  # same secret, same PRF ...
    assert channel.tls_exporter != no_context  # ... but RFC 9266 has a (zero-length) context


@requires_gnutls
@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_channel_bindings_match_gnutls(
    pki: Pki, make_settings: MakeSettings, log: Path, version: str
) -> None:
    """GnuTLS prints its own tls-unique / tls-exporter (RFC 5929, RFC 9266)."""
    args = (
        f"--priority=NORMAL:-VERS-ALL:+VERS-TLS{version}",
        "--require-client-cert",
        f"--x509cafile={pki.root_path}",
    )
    with gnutls_serv(pki.server_ec, log, *args) as server:
        channel = connect(server, make_settings(version, client=pki.client_ec))
        assert http_get(channel).startswith(b"HTTP/1.0 200 OK")
        out = server.wait_for("'tls-exporter'")
        channel.close()
    assert channel.tls_exporter is not None
    assert re.findall(r"'tls-exporter': ([0-9a-f]+)", out) == [channel.tls_exporter.hex()]
    unique = re.findall(r"'tls-unique': ([0-9a-f]+)", out)
    if version == "1.2":
        assert channel.tls_unique is not None
        assert unique == [channel.tls_unique.hex()]
    else:
        assert channel.tls_unique is None

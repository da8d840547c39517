"""TlsChannel: the tlslite-ng connection itself (keep-alive checks, errors, closing)."""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from est_hw.errors import PinIncorrectError
from est_hw.tls import ClientIdentity, ServerTrust, TlsSettings
from est_hw.tls.connection import TlsChannel
from tests.tls.conftest import requires_openssl
from tests.tls.keys import TokenLikeEcKey, TokenLikeRsaKey
from tests.tls.pki import Pki
from tests.tls.servers import PythonTlsServer, s_server

MakeSettings = Callable[..., TlsSettings]


def establish(port: int, settings: TlsSettings) -> TlsChannel:
    return TlsChannel.establish(
        socket.create_connection(("127.0.0.1", port), timeout=5), "localhost", settings
    )


def wait_readable(channel: TlsChannel) -> None:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        if select.select([channel.raw_socket], [], [], 0.02)[0]:
            return
    raise AssertionError("nothing arrived")


def test_session_tickets_do_not_make_an_idle_connection_unusable(
    pki: Pki, make_settings: MakeSettings
) -> None:
    issued = pki.server_ec
    with PythonTlsServer(issued.chain_path, issued.key_path, version="1.3") as server:
        channel = establish(server.port, make_settings("1.3"))
        wait_readable(channel)  # OpenSSL sends two NewSessionTickets after the handshake
        assert not channel.idle_readable()
        assert channel._conn.tickets
        channel.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 5)
        assert channel.read(65536, 5).startswith(b"HTTP/1.1 200 OK")
        channel.close()
        channel.close()  # idempotent


def test_a_closed_idle_connection_is_readable(pki: Pki, make_settings: MakeSettings) -> None:
    issued = pki.server_ec
    with PythonTlsServer(issued.chain_path, issued.key_path, keep_alive=False) as server:
        channel = establish(server.port, make_settings())
        channel.write(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", 5)
        assert channel.read(65536, 5).startswith(b"HTTP/1.1 200 OK")
        wait_readable(channel)
        assert channel.idle_readable()
        assert channel.read(100, 5) == b""
        channel.close()


class RefusingKey(TokenLikeEcKey):
    def sign(self, data: object, signature_algorithm: object) -> bytes:
        raise PinIncorrectError("the token refused the PIN")


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_token_errors_reach_the_caller_unchanged(pki: Pki, version: str) -> None:
    issued = pki.server_ec
    identity = ClientIdentity(RefusingKey(pki.client_ec.key), pki.client_ec.chain)  # type: ignore[arg-type]
    settings = TlsSettings(ServerTrust((pki.root,)), identity, version, version)
    with (
        PythonTlsServer(
            issued.chain_path, issued.key_path, version=version, client_ca=pki.root_path
        ) as server,
        pytest.raises(PinIncorrectError),
    ):
        establish(server.port, settings)


@requires_openssl
@pytest.mark.parametrize("kind", ["ec", "rsa"])
def test_tls13_post_handshake_authentication(
    pki: Pki, make_settings: MakeSettings, log: Path, kind: str
) -> None:
    """RFC 8446 section 4.6.2: the server asks for our certificate after the handshake."""
    client = pki.client_ec if kind == "ec" else pki.client_rsa
    settings = make_settings("1.3", client=client)
    args = ("-tls1_3", "-verify", "1", "-CAfile", str(pki.root_path))
    with s_server(pki.server_ec, log, *args, www=False) as server:
        channel = establish(server.port, settings)
        assert settings.client is not None
        key = settings.client.private_key
        assert isinstance(key, TokenLikeEcKey | TokenLikeRsaKey)
        channel.write(b"before\n", 5)
        server.wait_for("before")
        server.type("c")  # s_server: send a CertificateRequest (post-handshake)
        deadline = time.monotonic() + 3
        while len(key.signed) < 2 and time.monotonic() < deadline:
            # tickets first, then the request, answered with Certificate,
            # CertificateVerify and Finished
            assert not channel.idle_readable()
            time.sleep(0.01)
        assert len(key.signed) == 2
        channel.write(b"after\n", 5)
        server.wait_for("after")
        # Our certificate is verified twice: in the handshake and after it.  (s_server
        # writes these lines to stderr, so they may trail its stdout.)
        seen = f"depth=0 CN = client-{kind}"
        deadline = time.monotonic() + 3
        while server.output().count(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.output().count(seen) == 2
        channel.close()

"""est_hw.tls.accel: tlslite-ng's ciphers, X25519 and ECDSA checks routed to OpenSSL."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
import tlslite.keyexchange
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from tlslite.utils.chacha20_poly1305 import CHACHA20_POLY1305
from tlslite.utils.python_aesgcm import new as python_aesgcm
from tlslite.utils.x25519 import X25519_G
from tlslite.utils.x25519 import x25519 as python_x25519

from est_hw.tls import ServerTrust, TlsSettings, accel
from est_hw.tls.connection import TlsChannel
from tests.tls.pki import Pki, ec_key
from tests.tls.servers import PythonTlsServer


@pytest.mark.parametrize("key_size", [16, 32])
def test_aesgcm_matches_tlslite(key_size: int) -> None:
    key, nonce, aad, data = os.urandom(key_size), os.urandom(12), os.urandom(13), os.urandom(100)
    ours, theirs = accel.create_aesgcm(bytearray(key)), python_aesgcm(bytearray(key))
    sealed = ours.seal(bytearray(nonce), bytearray(data), bytearray(aad))
    assert sealed == theirs.seal(bytearray(nonce), bytearray(data), bytearray(aad))
    assert ours.open(bytearray(nonce), sealed, bytearray(aad)) == bytearray(data)
    sealed[0] ^= 1
    assert ours.open(bytearray(nonce), sealed, bytearray(aad)) is None
    assert ours.name == f"aes{key_size * 8}gcm"


def test_chacha20_poly1305_matches_tlslite() -> None:
    key, nonce, aad, data = os.urandom(32), os.urandom(12), os.urandom(13), os.urandom(100)
    ours = accel.create_chacha20(bytearray(key))
    theirs = CHACHA20_POLY1305(bytearray(key), "python")
    sealed = ours.seal(bytearray(nonce), bytearray(data), bytearray(aad))
    assert sealed == theirs.seal(bytearray(nonce), bytearray(data), bytearray(aad))
    assert ours.open(bytearray(nonce), sealed[:-1] + b"\0", bytearray(aad)) is None


def test_x25519_matches_tlslite() -> None:
    k = bytearray(os.urandom(32))
    assert accel.x25519(k, bytearray(X25519_G)) == python_x25519(bytearray(k), bytearray(X25519_G))
    peer = X25519PrivateKey.generate().public_key().public_bytes_raw()
    assert accel.x25519(k, bytearray(peer)) == python_x25519(bytearray(k), bytearray(peer))
    assert accel.x25519(k, bytearray(32)) == bytearray(32)  # low-order point: all zero


def test_fast_ecdsa_verify_accepts_only_good_signatures() -> None:
    key = ec_key()
    message = b"server key exchange params"
    signature = key.sign(message, ec.ECDSA(hashes.SHA384()))
    fast = accel.fast_ecdsa_public_key(_TlsliteLike(), key.public_key())
    digest = hashlib.sha384(message).digest()
    assert fast.verify(bytearray(signature), bytearray(digest[:32]), None, "sha384", None)
    assert not fast.verify(bytearray(signature), bytearray(32), None, "sha384", None)
    assert not fast.verify(bytearray(b"\x30\x00"), bytearray(digest[:32]), None, "sha384", None)
    assert fast.curve_name == "NIST256p"  # everything else is tlslite-ng's key


class _TlsliteLike:
    key_type = "ecdsa"
    curve_name = "NIST256p"


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_handshakes_use_the_openssl_backed_ciphers(pki: Pki, version: str) -> None:
    issued = pki.server_ec
    settings = TlsSettings(ServerTrust((pki.root,)), None, version, version)
    with PythonTlsServer(issued.chain_path, issued.key_path, version=version) as server:
        channel = TlsChannel.establish(
            socket.create_connection(("127.0.0.1", server.port)), "localhost", settings
        )
        assert channel._conn.getCipherImplementation() == "cryptography"
        channel.close()
    assert tlslite.keyexchange.x25519 is accel.x25519

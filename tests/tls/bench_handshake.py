"""Handshake and throughput timings of the TLS adapter (not collected by pytest).

Run: ``.venv/bin/python -m tests.tls.bench_handshake [--no-accel] [-n 40]``

Against a local Python ssl server: median handshake time for TLS 1.2 / 1.3, without a
client certificate and with EC P-256 / RSA-2048 client keys (wrapped like token keys),
and the bulk receive rate of one 8 MiB answer (``--bulk-mib``).  ``--no-accel`` keeps tlslite-ng's
pure-Python ciphers and X25519, to show what :mod:`est_hw.tls.accel` buys.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path

from est_hw.tls import ClientIdentity, ServerTrust, TlsSettings, accel
from est_hw.tls.connection import TlsChannel
from tests.tls.keys import token_like
from tests.tls.pki import Issued, build_pki

BULK = [8 << 20]  # bytes in the bulk answer (--bulk-mib)


def serve(ctx: ssl.SSLContext, listener: socket.socket) -> None:
    while True:
        try:
            raw, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=answer, args=(ctx, raw), daemon=True).start()


def answer(ctx: ssl.SSLContext, raw: socket.socket) -> None:
    try:
        with ctx.wrap_socket(raw, server_side=True) as tls:
            if tls.recv(16) == b"bulk":
                tls.sendall(b"x" * BULK[0])
    except (OSError, ssl.SSLError):
        pass


def handshake(port: int, settings: TlsSettings) -> TlsChannel:
    sock = socket.create_connection(("127.0.0.1", port))
    return TlsChannel.establish(sock, "localhost", settings)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-accel", action="store_true")
    parser.add_argument("-n", type=int, default=40)
    parser.add_argument("--bulk-mib", type=int, default=8)
    args = parser.parse_args()
    BULK[0] = args.bulk_mib << 20
    if args.no_accel:
        accel._state["installed"] = True  # pretend: leave tlslite-ng as it is
    pki = build_pki(Path(tempfile.mkdtemp()))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.server_ec.chain_path, pki.server_ec.key_path)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.load_verify_locations(pki.root_path)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Thread(target=serve, args=(ctx, listener), daemon=True).start()

    clients: dict[str, Issued | None] = {"none": None, "ec": pki.client_ec, "rsa": pki.client_rsa}
    print(f"accel={'off' if args.no_accel else 'on'}  n={args.n}")
    for version in ("1.2", "1.3"):
        for name, issued in clients.items():
            identity = ClientIdentity(token_like(issued.key), issued.chain) if issued else None
            settings = TlsSettings(ServerTrust((pki.root,)), identity, version, version)
            handshake(port, settings).close()  # warm up
            times = []
            for _ in range(args.n):
                started = time.perf_counter()
                channel = handshake(port, settings)
                times.append(time.perf_counter() - started)
                channel.close()
            print(
                f"TLS {version} client={name:4}  median {statistics.median(times) * 1e3:6.1f} ms"
                f"  min {min(times) * 1e3:6.1f} ms"
            )
        settings = TlsSettings(ServerTrust((pki.root,)), None, version, version)
        channel = handshake(port, settings)
        channel.write(b"bulk", 5)
        received, started = 0, time.perf_counter()
        while chunk := channel.read(1 << 16, 30):
            received += len(chunk)
        elapsed = time.perf_counter() - started
        channel.close()
        print(f"TLS {version} bulk receive {received / elapsed / 1e6:6.1f} MB/s")


if __name__ == "__main__":
    main()

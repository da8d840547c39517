"""``python -m est_hw.testing.server``: run the RFC 7030 test server as a process.

Passwords never come on the command line: --users-file holds ``user:password`` lines.
The server logs one line per request to stderr and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from est_hw.testing.ca import TestCa
from est_hw.testing.config import OPERATION_NAMES, AuthMode, Quirk, ServerConfig
from est_hw.testing.misbehaviour import Misbehaviour
from est_hw.testing.server import EstTestServer
from est_hw.testing.wire import BodyError, decode_base64_body

__all__ = ["build_parser", "main", "read_users_file"]

_TLS_CHOICES = {"1.2": ("1.2",), "1.3": ("1.3",), "both": ("1.2", "1.3")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m est_hw.testing.server",
        description="A strict RFC 7030 EST test server with a throwaway CA.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    add("--port", type=int, default=0, help="TCP port; 0 picks a free one (default)")
    add("--ready-file", type=Path, help="write the port number here once listening")
    add("--ca-out", type=Path, help="write the root CA certificate (PEM) here")
    add("--state-dir", type=Path, help="keep the CA here and reuse it across restarts")
    add("--tls-version", choices=sorted(_TLS_CHOICES), default="both")
    add("--server-name", action="append", dest="server_names", metavar="NAME",
        help="a DNS name or IP of the TLS certificate (repeatable; "
        "default localhost and 127.0.0.1)")  # fmt: skip
    add("--users-file", type=Path, help="lines of user:password for HTTP authentication")
    add("--auth", choices=["none", "basic", "digest"], default="none")
    add("--auth-csrattrs", action="store_true", help="also authenticate /csrattrs")
    add("--label", help="serve under /.well-known/est/LABEL/ only")
    add("--csrattrs-file", type=Path, help="CsrAttrs to serve (DER or base64); else 204")
    add("--pending", type=int, default=0, help="answer the first N /simpleenroll with 202")
    add("--pending-reenroll", type=int, default=0, help="the same for /simplereenroll")
    add("--retry-after", type=int, default=1, help="Retry-After seconds of a 202")
    add("--require-client-cert", action="store_true", help="refuse clients without a cert")
    add("--client-ca", type=Path, action="append", default=[], metavar="PEM",
        help="also accept client certificates issued by the CA(s) in this file")  # fmt: skip
    add("--enforce-tls-unique", action="store_true",
        help="challengePassword must be base64(tls-unique) (RFC 7030 3.5; TLS 1.2)")  # fmt: skip
    add("--cert-days", type=int, default=365, help="validity of issued certificates")
    add("--quirk", action="append", default=[], choices=[q.value for q in Quirk],
        help="misbehave like some real servers do (repeatable)")  # fmt: skip
    add("--misbehave", metavar="NAME", choices=[m.value for m in Misbehaviour],
        help="act as one kind of broken or hostile server, e.g. http-slow-drip or "
        "body-garbage-base64 (every NAME: docs/hostile-servers.md)")  # fmt: skip
    add("--misbehave-on", action="append", default=[], choices=OPERATION_NAMES,
        metavar="OPERATION", help="the operation(s) --misbehave hits (repeatable; "
        "default simpleenroll; tcp and tls misbehaviours hit every connection)")  # fmt: skip
    add("--redirect-to", metavar="URL",
        help="Location of --misbehave redirect-elsewhere (and redirect-to-http)")  # fmt: skip
    add("--quiet", action="store_true", help="do not log requests")
    return parser


def read_users_file(path: Path) -> dict[str, str]:
    """``user:password`` per line; blank lines and lines starting with # are skipped."""
    users: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user:
            raise ValueError(f"{path}:{number}: expected user:password")
        users[user] = password
    return users


def _read_csrattrs(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:1] == b"\x30":
        return data
    try:
        return decode_base64_body(data.rstrip(b"\0"))
    except BodyError as exc:
        raise ValueError(f"{path}: neither DER nor base64 ({exc})") from None


def _load_ca(state_dir: Path | None) -> TestCa:
    if state_dir is None:
        return TestCa.create()
    if TestCa.exists(state_dir):
        return TestCa.load(state_dir)
    ca = TestCa.create()
    ca.save(state_dir)
    return ca


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def _config(args: argparse.Namespace) -> ServerConfig:
    from cryptography import x509

    auth: AuthMode = args.auth
    users = read_users_file(args.users_file) if args.users_file else {}
    if auth != "none" and not users:
        raise ValueError("--auth basic/digest needs --users-file with at least one user")
    client_cas: list[x509.Certificate] = []
    for path in args.client_ca:
        client_cas.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return ServerConfig(
        host=args.host,
        port=args.port,
        tls_versions=_TLS_CHOICES[args.tls_version],
        server_names=tuple(args.server_names or ("localhost", "127.0.0.1")),
        users=users,
        auth=auth,
        auth_csrattrs=args.auth_csrattrs,
        label=args.label,
        csrattrs=_read_csrattrs(args.csrattrs_file) if args.csrattrs_file else None,
        pending=args.pending,
        pending_reenroll=args.pending_reenroll,
        retry_after=args.retry_after,
        require_client_cert=args.require_client_cert,
        client_ca_certs=tuple(client_cas),
        enforce_tls_unique=args.enforce_tls_unique,
        cert_days=args.cert_days,
        quirks=frozenset(Quirk(q) for q in args.quirk),
        misbehaviour=Misbehaviour.named(args.misbehave) if args.misbehave else None,
        misbehave_on=frozenset(args.misbehave_on or ("simpleenroll",)),
        redirect_to=args.redirect_to,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; exit 0 after a clean stop, 2 on bad arguments."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="est-test-server: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = _config(args)
        ca = _load_ca(args.state_dir)
    except (OSError, ValueError) as exc:
        parser.error(str(exc))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = EstTestServer(config, ca)
    try:
        server.start()
    except OSError as exc:
        print(f"est-test-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.ca_out:
            _write_atomically(args.ca_out, ca.anchor_pem())
        logging.getLogger("est_hw.testing.server").warning(
            "listening on %s%s (pid %d)", server.url, server.est_path, os.getpid()
        )
        if args.ready_file:
            _write_atomically(args.ready_file, f"{server.port}\n".encode())
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0

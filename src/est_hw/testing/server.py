"""A real RFC 7030 EST server over TLS, for tests and the demo.

Built on the stdlib (``http.server``, ``ssl``) and ``cryptography`` only, and independent
of ``est_hw.est`` and ``est_hw.tls``, so the client is tested against a separate
implementation.  Serves /cacerts (section 4.1), /simpleenroll and /simplereenroll
(section 4.2) and /csrattrs (section 4.5) under /.well-known/est/[label/] (section 3.2.2).

In a test::

    with EstTestServer(ServerConfig(auth="basic", users={"u": "p"})) as server:
        ...  # talk to server.url, trusting server.ca.anchor
        assert server.requests[-1].status == 200

From a shell: ``python -m est_hw.testing.server --help``.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType

from cryptography.hazmat.primitives import serialization

from est_hw.testing import hostile_net as hostile
from est_hw.testing.app import EstApp
from est_hw.testing.ca import TestCa
from est_hw.testing.config import RequestLog, ServerConfig
from est_hw.testing.handler import EstHttpServer

__all__ = ["EstTestServer", "ServerConfig"]

_TLS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def make_ssl_context(config: ServerConfig, ca: TestCa) -> ssl.SSLContext:
    """The server's TLS context: its certificate from ``ca`` (or the one a tls
    misbehaviour asks for), the configured versions, and client certificates verified
    against ``ca`` plus any extra client CAs."""
    chain, key = hostile.server_identity(config, ca)
    pem = serialization.Encoding.PEM
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    versions = sorted(config.tls_versions)
    context.minimum_version = _TLS[versions[0]]
    context.maximum_version = _TLS[versions[-1]]
    # load_cert_chain reads files only: write them to a private directory and drop it.
    with tempfile.TemporaryDirectory(prefix="est-hw-server-") as tmp:
        chain_file = Path(tmp) / "chain.pem"
        key_file = Path(tmp) / "key.pem"
        chain_file.write_bytes(b"".join(cert.public_bytes(pem) for cert in chain))
        key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        context.load_cert_chain(chain_file, key_file)
    trusted = [*ca.chain, *config.client_ca_certs]
    if len(chain) == 1 and chain[0].issuer == ca.issuing_cert.subject:
        # OpenSSL completes a lone server certificate from the verify store; leave the
        # issuing CA out of it so that the leaf really goes alone (TLS_NO_INTERMEDIATE).
        trusted = [ca.root_cert, *config.client_ca_certs]
    context.load_verify_locations(cadata="".join(c.public_bytes(pem).decode() for c in trusted))
    # Every configured CA is an anchor, even an intermediate given without its root.
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    # Always ask for a client certificate (needed by /simplereenroll, section 3.3.2);
    # require one only when configured.
    context.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
    context.set_alpn_protocols(["http/1.1"])
    hostile.tune_tls_context(config, context)
    return context


class EstTestServer:
    """An EST server on a background thread; use as a context manager or start()/stop().

    :param config: what to serve and how strictly (:class:`ServerConfig`).
    :param ca: the CA to issue from; a fresh one if omitted.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, config: ServerConfig | None = None, ca: TestCa | None = None) -> None:
        self.config = config if config is not None else ServerConfig()
        self.ca = ca if ca is not None else TestCa.create()
        #: every request answered, in order (thread-safe)
        self.requests = RequestLog()
        self._tls_failures: list[str] = []
        self._httpd: EstHttpServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind, listen and serve on a background thread."""
        if self._httpd is not None:
            raise RuntimeError("server already started")
        app = EstApp(self.config, self.ca)
        context = make_ssl_context(self.config, self.ca)
        httpd = EstHttpServer(
            (self.config.host, self.config.port), context, app, self.requests, self._tls_failures
        )
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="est-test-server"
        )
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and close the listening socket."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> EstTestServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _server(self) -> EstHttpServer:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return self._httpd

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port 0)."""
        return int(self._server().server_address[1])

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT`` (or the configured host, if it is not a wildcard)."""
        host = self.config.host
        if host in ("", "0.0.0.0", "::"):
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"https://{host}:{self.port}"

    @property
    def est_path(self) -> str:
        """The path prefix of the operations: /.well-known/est/ or .../est/<label>/."""
        label = self.config.label
        return "/.well-known/est/" + (f"{label}/" if label else "")

    def endpoint(self, operation: str) -> str:
        """The full URL of ``operation`` ("cacerts", "simpleenroll", ...)."""
        return self.url + self.est_path + operation

    @property
    def tls_failures(self) -> list[str]:
        """Messages of TLS handshakes that failed (for example: no client certificate)."""
        return list(self._tls_failures)


if __name__ == "__main__":
    from est_hw.testing.cli import main

    raise SystemExit(main())

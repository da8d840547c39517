"""The tlslite-ng client connection, with est-hw's checks and fixes built in.

:class:`TlsChannel` runs a client handshake (RFC 5246 / RFC 8446) over a connected socket
and then carries application data.  Compared with a bare tlslite-ng ``TLSConnection``:

* Only TLS 1.2 and 1.3, ECDHE key exchange and AEAD suites (AES-GCM, ChaCha20-Poly1305);
  ALPN offers ``http/1.1`` only.
* The server's chain and name are verified (:mod:`est_hw.tls.trust`) as soon as its
  Certificate arrives, before the client sends its own certificate, a signature or any
  application byte; on failure the handshake is aborted with a ``bad_certificate`` alert
  and :class:`~est_hw.errors.TrustError` is raised (RFC 7030 section 3.3.1).
* Client authentication signs with a ``cryptography`` key object
  (:class:`~est_hw.tls.signer.TlsliteSigningKey`).
* Channel bindings: ``tls-unique`` (RFC 5929 section 3, TLS 1.2 only) and
  ``tls-exporter`` (RFC 9266; TLS 1.3, or TLS 1.2 with extended master secret), both
  computed by est-hw (see :mod:`est_hw.tls.bindings`).

tlslite-ng 0.8.2 defects handled here (FIELD-NOTES, each has a regression test):

1. TLS 1.3: it sends CompressedCertificate although the server never offered it;
   certificate compression is switched off (``certificate_compression_send = []``).
2. TLS 1.2: it aborts when the server's CertificateRequest lists no ``rsa_pkcs1``
   scheme, even for an EC key; a never-selectable ``rsa_pkcs1_md5`` entry is added to the
   parsed message (the transcript keeps the bytes as received).
3. TLS 1.3 with a client certificate: its exporter uses the wrong transcript; the
   transcript hash at the server Finished is kept and the exporter is derived by
   :func:`est_hw.tls.bindings.tls13_exporter`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterator
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tlslite.constants import (
    AlertDescription,
    CipherSuite,
    HashAlgorithm,
    SignatureAlgorithm,
)
from tlslite.errors import (
    BaseTLSException,
    TLSAbruptCloseError,
    TLSLocalAlert,
    TLSRemoteAlert,
)
from tlslite.handshakesettings import HandshakeSettings
from tlslite.messages import CertificateRequest, Finished
from tlslite.tlsconnection import TLSConnection
from tlslite.x509 import X509
from tlslite.x509certchain import X509CertChain

from est_hw.errors import (
    ConnectionFailedError,
    DeadlineExceededError,
    EstHwError,
    TlsHandshakeError,
    TrustError,
)
from est_hw.tls import accel
from est_hw.tls.bindings import (
    TLS_EXPORTER_LABEL,
    TLS_EXPORTER_LENGTH,
    tls12_exporter,
    tls13_exporter,
)
from est_hw.tls.deadline import DeadlineSocket, remaining, socket_readable
from est_hw.tls.settings import VERSIONS, ClientIdentity, TlsSettings
from est_hw.tls.signer import SigningMismatchError, TlsliteSigningKey
from est_hw.tls.trust import verify_server_chain

ALPN_HTTP11 = "http/1.1"
_CLOSE_TIMEOUT = 1.0
_IDLE_RECORD_TIMEOUT = 0.2
_MAX_IDLE_RECORDS = 8
_VERSION_NAMES = {(3, 3): "TLSv1.2", (3, 4): "TLSv1.3"}
_TLS13_CONTEXT = b" " * 64 + b"TLS 1.3, client CertificateVerify\x00"

ChainCheck = Callable[[list[x509.Certificate]], None]


def handshake_settings(settings: TlsSettings) -> Any:
    """The tlslite-ng ``HandshakeSettings`` for ``settings`` (ECDHE + AEAD only)."""
    low, high = VERSIONS[settings.min_version], VERSIONS[settings.max_version]
    hs = HandshakeSettings()
    hs.minVersion, hs.maxVersion = low, high
    hs.versions = [v for v in ((3, 4), (3, 3)) if low <= v <= high]
    hs.cipherNames = ["aes256gcm", "aes128gcm", "chacha20-poly1305"]
    hs.macNames = ["aead"]
    hs.keyExchangeNames = ["ecdhe_ecdsa", "ecdhe_rsa"]
    hs.eccCurves = ["x25519", "secp256r1", "secp384r1"]
    hs.keyShares = ["x25519", "secp256r1"]
    hs.dhGroups = []
    hs.ecdsaSigHashes = ["sha512", "sha384", "sha256"]
    hs.rsaSigHashes = ["sha512", "sha384", "sha256"]
    # RSA client keys sign PKCS#1 v1.5 at TLS 1.2 (what every token and server supports)
    # and RSA-PSS at TLS 1.3, where PKCS#1 v1.5 is not allowed (RFC 8446 section 4.4.3).
    hs.rsaSchemes = ["pkcs1", "pss"]
    hs.dsaSigHashes = []
    hs.more_sig_schemes = ["Ed25519", "Ed448"]
    hs.certificate_compression_send = []  # defect 1
    hs.certificate_compression_receive = []
    hs.use_heartbeat_extension = False
    return hs


class EstTlsConnection(TLSConnection):  # type: ignore[misc]
    """tlslite-ng's TLSConnection with hooks for trust, channel bindings and defect 2.

    :param sock: the socket (a :class:`~est_hw.tls.deadline.DeadlineSocket`).
    :param check_chain: called with the server's chain as soon as it arrives (raise
        :class:`TrustError` to abort), or ``None`` to accept any chain.
    """

    def __init__(self, sock: Any, check_chain: ChainCheck | None) -> None:
        super().__init__(sock)
        self.est_check_chain = check_chain
        self.est_server_chain: list[x509.Certificate] = []
        self.est_chain_seen = False
        self.est_trust_error: TrustError | None = None
        self.est_first_finished: bytes | None = None
        self.est_server_finished_hash: Any = None
        self.est_patched_certificate_request = False
        self.est_pha_request: Any = None
        self.est_last_certificate_msg: Any = None

    def est_certificate_verify_messages(self) -> list[bytes]:
        """The unhashed messages a client CertificateVerify may cover (for the signer)."""
        if self.version != (3, 4):
            transcript = self._certificate_verify_handshake_hash
            return [] if transcript is None else [bytes(transcript.digest("intrinsic"))]
        context = self._handshake_hash
        if self.est_pha_request is not None and self.est_last_certificate_msg is not None:
            # RFC 8446 section 4.4: post-handshake authentication signs the handshake
            # up to the client Finished, the CertificateRequest and our Certificate.
            context = self._first_handshake_hashes.copy()
            context.update(self.est_pha_request.write())
            context.update(self.est_last_certificate_msg.write())
        return [_TLS13_CONTEXT + context.digest(name) for name in ("sha256", "sha384")]

    # tlslite-ng internals wrapped below (pinned version 0.8.2).

    def _sendMsg(self, msg: Any, *args: Any, **kwargs: Any) -> Any:
        if self.est_first_finished is None and isinstance(msg, Finished):
            self.est_first_finished = bytes(msg.verify_data)
        return super()._sendMsg(msg, *args, **kwargs)

    def _getMsg(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for result in super()._getMsg(*args, **kwargs):
            if isinstance(result, Finished):
                if self.est_first_finished is None:
                    self.est_first_finished = bytes(result.verify_data)
                if self.version == (3, 4) and self.est_server_finished_hash is None:
                    # RFC 8446 section 7.1: exporter_master_secret covers
                    # ClientHello...server Finished (defect 3).
                    self.est_server_finished_hash = self._handshake_hash.copy()
            elif isinstance(result, CertificateRequest) and self.version == (3, 3):
                self._widen_certificate_request(result)
            yield result

    def _widen_certificate_request(self, request: Any) -> None:
        """Defect 2: tlslite-ng wants an rsa_pkcs1 scheme in a TLS 1.2 CertificateRequest.

        The added ``rsa_pkcs1_md5`` is never in our own list, so it is never chosen.
        """
        algs = list(request.supported_signature_algs or [])
        if not any(alg[1] == SignatureAlgorithm.rsa for alg in algs):
            algs.append((HashAlgorithm.md5, SignatureAlgorithm.rsa))
            request.supported_signature_algs = algs
            self.est_patched_certificate_request = True

    def _handle_pha(self, cert_request: Any) -> Iterator[Any]:
        """TLS 1.3 post-handshake authentication (advertised by tlslite-ng whenever a
        client certificate is configured; servers such as Apache use it)."""
        self.est_pha_request = cert_request
        try:
            yield from super()._handle_pha(cert_request)
        finally:
            self.est_pha_request = None

    def _create_cert_msg(self, *args: Any, **kwargs: Any) -> Any:
        msg = super()._create_cert_msg(*args, **kwargs)
        self.est_last_certificate_msg = msg
        return msg

    def _clientGetKeyFromChain(
        self, certificate: Any, settings: Any, tack_ext: Any = None
    ) -> Iterator[Any]:
        chain_obj = certificate.cert_chain
        ders = [bytes(c.bytes) for c in chain_obj.x509List] if chain_obj else []
        try:
            self.est_server_chain = [x509.load_der_x509_certificate(d) for d in ders]
            if self.est_check_chain is not None:
                self.est_check_chain(self.est_server_chain)
        except (TrustError, ValueError) as exc:
            self.est_trust_error = (
                exc if isinstance(exc, TrustError) else TrustError("unparsable server certificate")
            )
            yield from self._sendError(AlertDescription.bad_certificate, str(exc))
        self.est_chain_seen = True
        for result in super()._clientGetKeyFromChain(certificate, settings, tack_ext):
            if isinstance(result, tuple) and self.est_server_chain:
                public_key, chain, tack = result
                leaf_key = self.est_server_chain[0].public_key()
                yield (accel.fast_ecdsa_public_key(public_key, leaf_key), chain, tack)
            else:
                yield result


class TlsChannel:
    """An established TLS client connection (use :meth:`establish`)."""

    def __init__(self, conn: EstTlsConnection, sock: DeadlineSocket) -> None:
        self._conn = conn
        self._sock = sock
        self.version: str = _VERSION_NAMES[conn.version]
        appproto = conn.session.appProto
        self.alpn: str | None = bytes(appproto).decode("ascii") if appproto else None
        self.server_chain: list[x509.Certificate] = list(conn.est_server_chain)
        #: RFC 5929 section 3.1: the first Finished of the handshake (TLS 1.2 only).
        self.tls_unique: bytes | None = conn.est_first_finished if conn.version == (3, 3) else None
        self.extended_master_secret: bool = bool(conn.extendedMasterSecret)
        self.tls_exporter: bytes | None = self._export(TLS_EXPORTER_LABEL, TLS_EXPORTER_LENGTH)
        self.closed = False

    @classmethod
    def establish(
        cls,
        sock: socket.socket,
        host: str,
        settings: TlsSettings,
        timeout: float | None = None,
    ) -> TlsChannel:
        """Run the client handshake on the connected ``sock`` for ``host``.

        :param timeout: seconds allowed per socket operation of the handshake (default:
            the socket's own timeout); the request deadline, if any, applies too.

        The socket is closed when the handshake fails.

        :raises TrustError: the server's chain or name did not verify.
        :raises TlsHandshakeError: the handshake failed (alert, wrong ALPN, ...).
        :raises ConnectionFailedError: socket error or timeout.
        """
        accel.install()
        wrapped = DeadlineSocket(sock)
        wrapped.op_timeout = sock.gettimeout() if timeout is None else timeout
        trust = settings.trust
        check: ChainCheck | None = None
        if trust.verify:

            def check(chain: list[x509.Certificate]) -> None:
                verify_server_chain(chain, host, trust)

        conn = EstTlsConnection(wrapped, check)
        chain, key = _client_credentials(settings.client, conn)
        try:
            conn.handshakeClientCert(
                chain,
                key,
                settings=handshake_settings(settings),
                serverName=None if _is_ip(host) else host,
                alpn=[bytearray(ALPN_HTTP11.encode())],
            )
            if trust.verify and not conn.est_chain_seen:
                raise TrustError("the server's certificate was never checked")
            channel = cls(conn, wrapped)
            if channel.alpn not in (None, ALPN_HTTP11):
                raise TlsHandshakeError(f"server selected ALPN {channel.alpn!r}")
        except BaseException as exc:
            sock.close()
            if conn.est_trust_error is not None:
                raise conn.est_trust_error from None
            if isinstance(exc, EstHwError) or not isinstance(exc, Exception):
                raise
            raise _handshake_error(exc) from exc
        return channel

    def read(self, max_bytes: int, timeout: float | None) -> bytes:
        """Up to ``max_bytes`` of application data; ``b""`` at the end of the stream."""
        self._sock.op_timeout = timeout
        try:
            data = self._conn.read(max=max_bytes, min=1)
        except TLSAbruptCloseError:
            return b""  # like ssl's suppress_ragged_eofs (HTTP framing decides)
        except (OSError, BaseTLSException, SigningMismatchError) as exc:
            raise _io_error("read", exc) from exc
        return bytes(data)

    def write(self, data: bytes, timeout: float | None) -> None:
        self._sock.op_timeout = timeout
        try:
            self._conn.write(data)
        except (OSError, BaseTLSException, SigningMismatchError) as exc:
            raise _io_error("write", exc) from exc

    def idle_readable(self) -> bool:
        """httpcore's keep-alive check: is this idle connection unusable?

        Bytes waiting on an idle connection normally mean the server closed it.  At TLS
        1.3 they may also be post-handshake messages (NewSessionTicket, KeyUpdate, RFC
        8446 section 4.6), which are processed here so that they do not cost the
        connection (and with it the channel binding the caller has read).
        """
        conn = self._conn
        for _ in range(_MAX_IDLE_RECORDS):
            if self.closed or conn.closed or conn._readBuffer:
                return True
            if not (conn.sock._read_buffer or socket_readable(self._sock.sock)):
                return False
            self._sock.op_timeout = _IDLE_RECORD_TIMEOUT
            try:
                conn.read(max=0, min=0)  # one record; application data stays buffered
            except (OSError, BaseTLSException, SigningMismatchError):
                return True
        return True

    @property
    def raw_socket(self) -> socket.socket:
        return self._sock.sock

    def close(self) -> None:
        """Send close_notify (bounded wait) and close the socket."""
        if self.closed:
            return
        self.closed = True
        self._sock.op_timeout = _CLOSE_TIMEOUT
        try:
            self._conn.close()
        except (OSError, BaseTLSException):
            pass
        finally:
            self._sock.close()

    def _export(self, label: bytes, length: int) -> bytes | None:
        """RFC 9266 tls-exporter: ``label``, an empty context, ``length`` bytes."""
        conn = self._conn
        name = "sha384" if conn.session.cipherSuite in CipherSuite.sha384PrfSuites else "sha256"
        master = bytes(conn.session.masterSecret)
        if conn.version == (3, 4):
            if conn.est_server_finished_hash is None:
                return None
            transcript = bytes(conn.est_server_finished_hash.digest(name))
            return tls13_exporter(
                hash_name=name,
                master_secret=master,
                server_finished_transcript_hash=transcript,
                label=label,
                context=b"",
                length=length,
            )
        if not conn.extendedMasterSecret:
            return None  # RFC 9266 section 3: not without extended master secret
        return tls12_exporter(
            hash_name=name,
            master_secret=master,
            client_random=bytes(conn._clientRandom),
            server_random=bytes(conn._serverRandom),
            label=label,
            context=b"",
            length=length,
        )


def _client_credentials(
    client: ClientIdentity | None, conn: EstTlsConnection
) -> tuple[Any, TlsliteSigningKey | None]:
    if client is None:
        return None, None
    certs = []
    for cert in client.chain:
        parsed = X509()
        parsed.parseBinary(bytearray(cert.public_bytes(serialization.Encoding.DER)))
        certs.append(parsed)
    signer = TlsliteSigningKey(client.private_key, conn.est_certificate_verify_messages)
    return X509CertChain(certs), signer


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _deadline_passed() -> bool:
    left = remaining()
    return left is not None and left <= 0.01


def _handshake_error(exc: Exception) -> EstHwError:
    if isinstance(exc, TimeoutError):
        if _deadline_passed():
            return DeadlineExceededError("request deadline exceeded during the TLS handshake")
        return ConnectionFailedError("TLS handshake timed out")
    if isinstance(exc, TLSRemoteAlert):
        alert = AlertDescription.toStr(exc.description)
        return TlsHandshakeError(f"the server aborted the TLS handshake: {alert}", alert=alert)
    if isinstance(exc, TLSLocalAlert):
        detail = exc.message or AlertDescription.toStr(exc.description)
        return TlsHandshakeError(f"TLS handshake failed: {detail}")
    if isinstance(exc, TLSAbruptCloseError):
        return TlsHandshakeError("the server closed the connection during the TLS handshake")
    if isinstance(exc, OSError):
        return ConnectionFailedError(f"TLS handshake failed: {exc.strerror or exc}")
    if isinstance(exc, BaseTLSException | SigningMismatchError):
        return TlsHandshakeError(f"TLS handshake failed: {exc or type(exc).__name__}")
    return TlsHandshakeError(f"TLS handshake failed: {type(exc).__name__}: {exc}")


def _io_error(what: str, exc: BaseException) -> ConnectionFailedError:
    if isinstance(exc, TimeoutError):
        if _deadline_passed():
            return DeadlineExceededError(f"request deadline exceeded during TLS {what}")
        return ConnectionFailedError(f"TLS {what} timed out")
    if isinstance(exc, TLSRemoteAlert):
        return ConnectionFailedError(
            f"the server sent a TLS alert: {AlertDescription.toStr(exc.description)}"
        )
    return ConnectionFailedError(f"TLS {what} failed: {exc or type(exc).__name__}")

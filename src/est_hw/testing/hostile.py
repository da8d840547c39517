"""The hostile test server's answers: how each http, status, body, redirect and csrattrs
:class:`Misbehaviour` is done.

:class:`~est_hw.testing.app.EstApp` passes every answer the strict server made to
:meth:`HostileAnswers.rewrite`, which returns the answer to send instead: a status line,
a body, a redirect, or -- for the http misbehaviours -- a raw answer written byte by byte
by :mod:`est_hw.testing.rawhttp`.  The tcp and tls misbehaviours live in
:mod:`est_hw.testing.hostile_net`, the CsrAttrs bodies in
:mod:`est_hw.testing.hostile_csrattrs`.

Like the rest of the test server this uses the stdlib and ``cryptography`` only, never
``est_hw.est`` or ``est_hw.tls``.
"""

from __future__ import annotations

import datetime
import email.utils
import time
import urllib.parse
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, pkcs7

from est_hw.testing import rawhttp
from est_hw.testing.ca import TestCa
from est_hw.testing.config import Response, ServerConfig
from est_hw.testing.hostile_csrattrs import csrattrs_der
from est_hw.testing.hostile_net import stranger_ca
from est_hw.testing.misbehaviour import Layer, Misbehaviour
from est_hw.testing.wire import BodyError, decode_base64_body, encode_base64_body, pkcs7_certs_only

if TYPE_CHECKING:
    from est_hw.testing.app import Request

__all__ = ["ABSURD", "REDIRECTED", "TEN_YEARS", "HostileAnswers"]

M = Misbehaviour
#: the seconds of ``RETRY_AFTER_TEN_YEARS``
TEN_YEARS = 10 * 365 * 24 * 3600
#: the seconds of ``RETRY_AFTER_ABSURD``
ABSURD = 10**13
#: the body size of ``BODY_HUGE`` and ``HTTP_HUGE_CHUNKED`` (the client's cap is 1 MiB)
HUGE = 2 * 1024 * 1024
#: the body size of ``BODY_OVERSIZED_BASE64`` (under the cap)
OVERSIZED = 900 * 1024
#: marks a request that a one-time redirect already sent back here
REDIRECTED = "hostile=redirected"
#: an OBJECT IDENTIFIER as long as id-ecPublicKey's (7 bytes) that is no key algorithm
_UNKNOWN_KEY_OID = bytes.fromhex("06072b06010401836f")  # 1.3.6.1.4.1.495
_EC_PUBLIC_KEY_OID = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
_HTML = (
    b"<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head>\n"
    b"<body><h1>Bad Gateway</h1><p>The upstream EST service is down.</p></body></html>\n"
)
_OPERATION_TYPES = {
    "cacerts": "application/pkcs7-mime",
    "csrattrs": "application/csrattrs",
    "simpleenroll": "application/pkcs7-mime; smime-type=certs-only",
    "simplereenroll": "application/pkcs7-mime; smime-type=certs-only",
}


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# --- answers ---------------------------------------------------------------------------------


def _text(status: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(
        status,
        (text + "\n").encode(),
        [("Content-Type", "text/plain; charset=utf-8"), *headers],
    )


def _with_content_type(response: Response, content_type: str | None) -> list[tuple[str, str]]:
    headers = [(k, v) for k, v in response.headers if k.lower() != "content-type"]
    if content_type is not None:
        headers.insert(0, ("Content-Type", content_type))
    return headers


def _unsupported_key_certificate(cert: x509.Certificate) -> x509.Certificate:
    """``cert`` with its key algorithm OID swapped for one no library knows.

    The swap keeps every length, so the DER stays well-formed; the signature no longer
    verifies, and ``public_key()`` raises ``UnsupportedAlgorithm``.
    """
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if _EC_PUBLIC_KEY_OID not in spki:
        raise ValueError("expected an EC certificate")
    odd = spki.replace(_EC_PUBLIC_KEY_OID, _UNKNOWN_KEY_OID, 1)
    der = cert.public_bytes(Encoding.DER).replace(spki, odd, 1)
    return x509.load_der_x509_certificate(der)


def _malformed_subject(certs: list[x509.Certificate]) -> bytes:
    """DER certs-only of ``certs`` where the first certificate's subject commonName is
    tagged 0x08 (EXTERNAL), not a string type: cryptography loads the PKCS#7 and parses the
    subject only when it is first read (found by fuzz/fuzz_certs_only.py)."""
    subject = certs[0].subject.public_bytes()
    common_name = bytes.fromhex("0603550403")  # OID 2.5.4.3, then the value's tag
    at = subject.find(common_name)
    if at < 0:
        raise ValueError("the certificate has no commonName to spoil")
    spoiled = bytearray(subject)
    spoiled[at + len(common_name)] = 0x08
    return pkcs7_certs_only(certs).replace(subject, bytes(spoiled))


class HostileAnswers:
    """Rewrites the answers to the targeted operations as ``config.misbehaviour`` says."""

    def __init__(self, config: ServerConfig, ca: TestCa) -> None:
        self.config = config
        self.ca = ca

    def rewrite(self, request: Request, operation: str, response: Response) -> Response:
        """The answer to send instead of ``response`` (which the strict server made)."""
        mode = self.config.misbehaviour
        if mode is not None and mode.layer is Layer.CSRATTRS:
            if operation != "csrattrs":
                return response
            headers = [("Content-Type", "application/csrattrs")]
            headers.append(("Content-Transfer-Encoding", "base64"))
            return Response(200, encode_base64_body(csrattrs_der(mode)), headers)
        if mode is None or operation not in self.config.misbehave_on:
            return response
        layer = mode.layer
        if layer is Layer.STATUS:
            return self._status(mode)
        if response.status >= 300 or layer in (Layer.TCP, Layer.TLS, Layer.CSRATTRS):
            return response
        if layer is Layer.REDIRECT:
            return self._redirect(mode, request, response)
        if layer is Layer.BODY:
            return self._body(mode, request, operation, response)
        return self._raw(mode, response)

    # --- status ------------------------------------------------------------------------

    def _status(self, mode: Misbehaviour) -> Response:
        realm = 'realm="est-hw hostile"'
        digest = f'Digest {realm}, nonce="bm9uY2U", opaque="b3BhcXVl"'
        challenges = {
            M.STATUS_401_BARE: [],
            M.STATUS_401_UNKNOWN_SCHEME: ["Negotiate", f"Bearer {realm}"],
            M.STATUS_401_FOREVER: [f'Basic {realm}, charset="UTF-8"'],
            M.DIGEST_NO_NONCE: [f'Digest {realm}, qop="auth", algorithm=SHA-256'],
            M.DIGEST_UNKNOWN_ALGORITHM: [f'{digest}, qop="auth", algorithm=SHA3-256'],
            M.DIGEST_AUTH_INT_ONLY: [f'{digest}, qop="auth-int", algorithm=SHA-256'],
            M.DIGEST_BARE_PARAMETER: [f'{digest}, qop="auth", algorithm=SHA-256, stale'],
        }
        if mode in challenges:
            response = _text(401, "authentication required")
            response.headers += [("WWW-Authenticate", value) for value in challenges[mode]]
            return response
        past = email.utils.formatdate(time.time() - 3600, usegmt=True)
        pending = {
            M.RETRY_AFTER_TEN_YEARS: str(TEN_YEARS),
            M.RETRY_AFTER_ABSURD: str(ABSURD),
            M.RETRY_AFTER_MALFORMED: "soon",
            M.RETRY_AFTER_NEGATIVE: "-30",
            M.RETRY_AFTER_HUGE_NUMBER: "9" * 5000,
            M.RETRY_AFTER_PAST_DATE: past,
            M.RETRY_AFTER_MISSING: None,
        }
        if mode in pending:
            value = pending[mode]
            return Response(202, b"", [("Retry-After", value)] if value is not None else [])
        statuses = {
            M.STATUS_204: Response(204),
            M.STATUS_404: _text(404, "not found"),
            M.STATUS_500: _text(500, "internal error"),
            M.STATUS_500_RETRY_AFTER: _text(500, "internal error", ("Retry-After", "30")),
            M.STATUS_503: _text(503, "service unavailable"),
            M.STATUS_503_RETRY_AFTER: _text(503, "try later", ("Retry-After", "30")),
        }
        return statuses[mode]

    # --- redirects ---------------------------------------------------------------------

    def _redirect(self, mode: Misbehaviour, request: Request, response: Response) -> Response:
        parts = urllib.parse.urlsplit(request.target)
        host = request.headers.get("host", f"127.0.0.1:{self.config.port}")
        port = host.rsplit(":", 1)[1] if ":" in host else "443"
        if mode in (M.REDIRECT_SAME_ORIGIN, M.REDIRECT_RELATIVE) and REDIRECTED in parts.query:
            return response  # followed once: now answer
        again = f"{parts.path}?{REDIRECTED}"
        if mode is M.REDIRECT_SAME_ORIGIN:
            location: str | None = f"https://{host}{again}"
        elif mode is M.REDIRECT_RELATIVE:
            location = f"{parts.path.rsplit('/', 1)[-1]}?{REDIRECTED}"
        elif mode is M.REDIRECT_LOOP:
            location = f"https://{host}{request.target}"
        elif mode is M.REDIRECT_TO_HTTP:
            location = self.config.redirect_to or f"http://{host}{again}"
        elif mode is M.REDIRECT_OTHER_HOST:
            other = "127.0.0.1" if host.startswith("localhost") else "localhost"
            location = f"https://{other}:{port}{again}"
        elif mode is M.REDIRECT_ELSEWHERE:
            location = self.config.redirect_to
        elif mode is M.REDIRECT_MALFORMED_LOCATION:
            location = "https://127.0.0.1:abc/"
        else:  # REDIRECT_NO_LOCATION
            location = None
        moved = _text(307, "moved")
        if location is not None:
            moved.headers.append(("Location", location))
        return moved

    # --- bodies ------------------------------------------------------------------------

    def _right_der(self, operation: str, response: Response) -> bytes:
        """The DER the strict server answered with (an empty CsrAttrs for a 204)."""
        if not response.body:
            return b"\x30\x00" if operation == "csrattrs" else b""
        try:
            return decode_base64_body(response.body.rstrip(b"\0"))
        except BodyError:
            return response.body

    def _issued(self, response: Response) -> list[x509.Certificate]:
        """The certificate(s) the strict server issued."""
        return pkcs7.load_der_pkcs7_certificates(self._right_der("", response))

    def _csr(self, request: Request) -> x509.CertificateSigningRequest:
        return x509.load_der_x509_csr(decode_base64_body(request.body))

    def _leaf(
        self,
        request: Request,
        *,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
        ca: bool = False,
        issuer: TestCa | None = None,
    ) -> x509.Certificate:
        """A certificate for the CSR's key, with the given twist."""
        csr = self._csr(request)
        signer = issuer or self.ca
        now = _now()
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(signer.issuing_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(minutes=5))
            .not_valid_after(not_after or now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.issuing_key.public_key()),
                critical=False,
            )
        )
        return builder.sign(signer.issuing_key, hashes.SHA256())

    def _certs(self, mode: Misbehaviour, request: Request, response: Response) -> bytes | None:
        """The DER certs-only answer of the certificate misbehaviours (enrollment only)."""
        issued = self._issued(response)
        day = datetime.timedelta(days=1)
        now = _now()
        if mode is M.BODY_SEVERAL_LEAVES:
            certs = [*issued, self._leaf(request)]
        elif mode is M.BODY_OTHER_KEY:
            other = ec.generate_private_key(ec.SECP256R1())
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(self._csr(request).subject)
                .sign(other, hashes.SHA256())
            )
            certs = [self.ca.issue(csr)]
        elif mode is M.BODY_EXPIRED:
            certs = [self._leaf(request, not_before=now - 30 * day, not_after=now - day)]
        elif mode is M.BODY_NOT_YET_VALID:
            certs = [self._leaf(request, not_before=now + day, not_after=now + 30 * day)]
        elif mode is M.BODY_UNTRUSTED_ISSUER:
            stranger = stranger_ca()
            certs = [self._leaf(request, issuer=stranger), *stranger.chain]
        elif mode is M.BODY_CA_CERTIFICATE:
            certs = [self.ca.issuing_cert]
        elif mode is M.BODY_CA_FOR_KEY:
            certs = [self._leaf(request, ca=True)]
        elif mode is M.BODY_BAD_SIGNATURE:
            der = bytearray(issued[0].public_bytes(Encoding.DER))
            der[-1] ^= 0x01  # the last byte of the signature's s
            certs = [x509.load_der_x509_certificate(bytes(der))]
        elif mode is M.BODY_UNSUPPORTED_EXTRA:
            certs = [*issued, _unsupported_key_certificate(self.ca.issuing_cert)]
        elif mode is M.BODY_WITH_CHAIN:
            certs = [*issued, *self.ca.chain]
        else:
            return None
        return pkcs7_certs_only(certs)

    def _body(
        self, mode: Misbehaviour, request: Request, operation: str, response: Response
    ) -> Response:
        content_type = response.header("Content-Type") or _OPERATION_TYPES.get(
            operation, "application/pkcs7-mime"
        )
        right = self._right_der(operation, response)
        right_body = encode_base64_body(right)
        base64_headers = _with_content_type(response, content_type)
        if not any(k.lower() == "content-transfer-encoding" for k, _ in base64_headers):
            base64_headers.append(("Content-Transfer-Encoding", "base64"))
        enrolling = operation in ("simpleenroll", "simplereenroll")
        certs = self._certs(mode, request, response) if enrolling else None
        if operation == "cacerts" and mode is M.BODY_UNTRUSTED_ISSUER:
            own = pkcs7.load_der_pkcs7_certificates(right)
            certs = pkcs7_certs_only([*own, stranger_ca().issuing_cert])
        if certs is not None:
            return Response(200, encode_base64_body(certs), base64_headers)
        if mode is M.BODY_EMPTY:
            return Response(200, b"", base64_headers)
        if mode is M.BODY_HTML:
            return Response(200, _HTML, [("Content-Type", "text/html; charset=utf-8")])
        if mode is M.BODY_HTML_AS_PKCS7:
            return Response(200, _HTML, base64_headers)
        if mode is M.BODY_GARBAGE_BASE64:
            middle = len(right_body) // 2
            garbled = right_body[:middle] + b"!*%" + right_body[middle + 3 :]
            return Response(200, garbled, base64_headers)
        if mode is M.BODY_TRUNCATED_BASE64:
            return Response(200, right_body[: len(right_body) // 2 + 1], base64_headers)
        if mode is M.BODY_OVERSIZED_BASE64:
            # a SEQUENCE that claims 2 GB, then junk: valid base64, hostile DER
            junk = b"\x30\x84\x7f\xff\xff\xff" + b"\x04\x82\xff\xff" * (OVERSIZED * 3 // 16)
            return Response(200, encode_base64_body(junk), base64_headers)
        if mode is M.BODY_TRAILING_JUNK:
            return Response(200, encode_base64_body(right + b"\x00junk" * 8), base64_headers)
        if mode is M.BODY_HUGE:
            line = b"QUFB" * 16 + b"\n"
            return Response(200, line * (HUGE // len(line) + 1), base64_headers)
        if mode is M.BODY_NO_CONTENT_TYPE:
            return Response(200, right_body, _with_content_type(response, None))
        if mode is M.BODY_WRONG_CONTENT_TYPE:
            return Response(200, right_body, _with_content_type(response, "text/plain"))
        if mode is M.BODY_WRONG_SMIME_TYPE:
            smime = "application/pkcs7-mime; smime-type=CMC-response"
            return Response(200, right_body, _with_content_type(response, smime))
        if mode is M.BODY_MALFORMED_CERTIFICATE:
            loaded = pkcs7.load_der_pkcs7_certificates(right or pkcs7_certs_only(self.ca.chain))
            return Response(200, encode_base64_body(_malformed_subject(loaded)), base64_headers)
        if mode is M.BODY_NO_CERTIFICATE:
            return Response(200, encode_base64_body(pkcs7_certs_only([])), base64_headers)
        if mode is M.BODY_BARE_CERTIFICATE:
            certs_der = right if right else pkcs7_certs_only([self.ca.root_cert])
            first = pkcs7.load_der_pkcs7_certificates(certs_der)[0]
            return Response(
                200, encode_base64_body(first.public_bytes(Encoding.DER)), base64_headers
            )
        if mode is M.BODY_PEM:
            pem = b"-----BEGIN PKCS7-----\n" + right_body + b"-----END PKCS7-----\n"
            return Response(200, pem, base64_headers)
        if mode is M.BODY_RAW_DER:
            headers = [
                (k, v) for k, v in base64_headers if k.lower() != "content-transfer-encoding"
            ]
            return Response(200, right, headers)
        if mode is M.BODY_LEGACY_CONTENT_TYPE:
            legacy = "application/x-pkcs7-mime" if "pkcs7" in content_type else content_type
            return Response(200, right_body, _with_content_type(response, legacy))
        return response  # a certificate misbehaviour on a non-enrollment operation

    # --- raw http ----------------------------------------------------------------------

    def _raw(self, mode: Misbehaviour, response: Response) -> Response:
        head, body = rawhttp.serialize(response)
        whole = head + body
        if mode is M.HTTP_GARBAGE:
            answer = rawhttp.write(b"\x16\x03\x01\x00\x05garbage\xff\xfe\r\n\r\n")
        elif mode is M.HTTP_BAD_STATUS_LINE:
            answer = rawhttp.write(b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n")
        elif mode is M.HTTP_SLOW_DRIP:
            answer = rawhttp.drip(whole)
        elif mode is M.HTTP_SILENT:
            answer = rawhttp.hold_open()
        elif mode is M.HTTP_CLOSE_BEFORE_ANSWER:
            answer = rawhttp.abort()
        elif mode is M.HTTP_CLOSE_MID_HEADERS:
            answer = rawhttp.write(head[: len(head) // 2])
        elif mode is M.HTTP_CLOSE_MID_BODY:
            answer = rawhttp.write(head, body[: len(body) // 2])
        elif mode is M.HTTP_LENGTH_TOO_LONG:
            head, _ = rawhttp.serialize(response, length=len(body) + 100)
            answer = rawhttp.then_hold_open(head, body)
        elif mode is M.HTTP_LENGTH_TOO_SHORT:
            head, _ = rawhttp.serialize(response, length=max(0, len(body) - 10))
            answer = rawhttp.write(head, body)
        elif mode is M.HTTP_LENGTH_MALFORMED:
            head, _ = rawhttp.serialize(
                response, with_length=False, extra_headers=(("Content-Length", f"{len(body)}abc"),)
            )
            answer = rawhttp.write(head, body)
        elif mode is M.HTTP_LENGTH_CONFLICT:
            head, _ = rawhttp.serialize(
                response, extra_headers=(("Content-Length", str(len(body) + 1)),)
            )
            answer = rawhttp.write(head, body)
        elif mode is M.HTTP_CHUNKED:
            answer = rawhttp.chunked(response)
        elif mode is M.HTTP_CHUNKED_MALFORMED:
            answer = rawhttp.chunked(response, bad_size=True)
        elif mode is M.HTTP_CHUNKED_TRUNCATED:
            answer = rawhttp.chunked(response, last=False)
        elif mode is M.HTTP_HUGE_CHUNKED:
            answer = rawhttp.huge_chunked(response, HUGE)
        elif mode is M.HTTP_HUGE_HEADER:
            head, _ = rawhttp.serialize(response, extra_headers=(("X-Junk", "a" * (HUGE // 2)),))
            answer = rawhttp.write(head, body)
        elif mode is M.HTTP_CONTENT_ENCODING:
            answer = rawhttp.gzipped(response)
        elif mode is M.HTTP_INTERIM_103:
            early = b"HTTP/1.1 103 Early Hints\r\nLink: </.well-known/est/>; rel=preload\r\n\r\n"
            answer = rawhttp.write(early, whole)
        else:  # HTTP_CLOSE_DELIMITED
            answer = rawhttp.close_delimited(response)
        return Response(response.status, response.body, list(response.headers), True, answer)

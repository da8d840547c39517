"""The EST operations of the test server, as a function from request to response.

No sockets here: :mod:`est_hw.testing.handler` does HTTP and TLS and hands each request
to :meth:`EstApp.handle`.  Section numbers refer to RFC 7030.
"""

from __future__ import annotations

import base64
import email.utils
import hmac
import threading
import time
import urllib.parse
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AttributeOID

from est_hw.testing.auth import Authenticator
from est_hw.testing.ca import TestCa
from est_hw.testing.config import Quirk, Response, ServerConfig
from est_hw.testing.hostile import HostileAnswers
from est_hw.testing.keygen import decrypt_key_id, fullcmc_response, serverkeygen_response
from est_hw.testing.wire import (
    BodyError,
    decode_base64_body,
    encode_base64_body,
    longest_line,
    media_type,
    pkcs7_certs_only,
)

__all__ = ["EstApp", "Outcome", "Request"]

WELL_KNOWN = "/.well-known/est/"
#: operation -> the one method it accepts (sections 4.1 - 4.5)
OPERATIONS = {
    "cacerts": "GET",
    "csrattrs": "GET",
    "simpleenroll": "POST",
    "simplereenroll": "POST",
    "serverkeygen": "POST",
    "fullcmc": "POST",
}
PKCS7_CERTS_ONLY = "application/pkcs7-mime; smime-type=certs-only"


@dataclass(frozen=True)
class Request:
    """One HTTP request as the handler saw it on a TLS connection."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    tls_version: str | None
    peer_cert: x509.Certificate | None
    tls_unique: bytes | None
    connection: int


@dataclass(frozen=True)
class Outcome:
    """The response plus what the server decided, for the request log."""

    response: Response
    operation: str
    user: str | None = None
    reason: str = ""


def text_response(status: int, reason: str) -> Response:
    """An error response with a human-readable text/plain body (section 4.2.3)."""
    return Response(
        status, (reason + "\n").encode(), [("Content-Type", "text/plain; charset=utf-8")]
    )


class _Refusal(Exception):
    def __init__(self, response: Response, reason: str) -> None:
        super().__init__(reason)
        self.response = response
        self.reason = reason


def _refuse(status: int, reason: str) -> _Refusal:
    return _Refusal(text_response(status, reason), reason)


def _san(
    source: x509.Certificate | x509.CertificateSigningRequest,
) -> set[x509.GeneralName] | None:
    try:
        ext = source.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return None
    return set(ext.value)


class EstApp:
    """Routes, authenticates and answers EST requests against a :class:`TestCa`."""

    def __init__(self, config: ServerConfig, ca: TestCa) -> None:
        self.config = config
        self.ca = ca
        self.prefix = WELL_KNOWN + (f"{config.label}/" if config.label else "")
        self.authenticator = (
            Authenticator(config.auth, config.users, config.realm)
            if config.auth != "none"
            else None
        )
        self._lock = threading.Lock()
        self._pending = {"simpleenroll": config.pending, "simplereenroll": config.pending_reenroll}
        self.hostile = HostileAnswers(config, ca)

    # --- responses --------------------------------------------------------------------

    def _base64(self, der: bytes, content_type: str) -> Response:
        """A 200 with a base64 body (sections 4.1.3, 4.2.3, 4.5.2; RFC 8951 section 3)."""
        quirks = self.config.quirks
        if Quirk.BASE64_ONE_LINE in quirks:
            body = encode_base64_body(der, width=0)
        elif Quirk.BASE64_CRLF_76 in quirks:
            body = encode_base64_body(der, width=76, eol=b"\r\n")
        else:
            body = encode_base64_body(der)
        if Quirk.TRAILING_NUL in quirks:
            body += b"\0"
        headers = [("Content-Type", content_type)]
        if Quirk.NO_CTE_HEADER not in quirks:
            headers.append(("Content-Transfer-Encoding", "base64"))
        return Response(200, body, headers)

    def _pending_response(self) -> Response:
        """202 Accepted with Retry-After (section 4.2.3)."""
        seconds = self.config.retry_after
        if Quirk.RETRY_AFTER_DATE in self.config.quirks:
            value = email.utils.formatdate(time.time() + seconds, usegmt=True)
        else:
            value = str(seconds)
        return Response(202, b"", [("Retry-After", value)])

    # --- dispatch ---------------------------------------------------------------------

    def operation(self, target: str) -> str:
        """The operation named by ``target``, or "" if it is not an EST path here."""
        path = urllib.parse.urlsplit(target).path
        if not path.startswith(self.prefix):
            return ""
        op = path[len(self.prefix) :]
        return op if op in OPERATIONS else ""

    def handle(self, request: Request) -> Outcome:
        """Answer one request; then the misbehaviour (if any) rewrites the answer, and the
        response hook (if any) has the last word."""
        outcome = self._handle(request)
        if self.config.misbehaviour is not None:
            rewritten = self.hostile.rewrite(request, outcome.operation, outcome.response)
            if rewritten is not outcome.response:
                reason = f"misbehaving: {self.config.misbehaviour.value}"
                outcome = Outcome(rewritten, outcome.operation, outcome.user, reason)
        hook = self.config.response_hook
        if hook is not None:
            outcome = Outcome(
                hook(outcome.operation, outcome.response),
                outcome.operation,
                outcome.user,
                outcome.reason,
            )
        return outcome

    def _handle(self, request: Request) -> Outcome:
        op = self.operation(request.target)
        if not op:
            return Outcome(text_response(404, "not found"), "", reason="unknown path")
        allowed = OPERATIONS[op]
        if request.method != allowed:
            response = text_response(405, f"method not allowed; use {allowed}")
            response.headers.append(("Allow", allowed))
            return Outcome(response, op, reason="wrong method")
        user: str | None = None
        try:
            user = self._authenticate(request, op)
            if op == "cacerts":
                response = self._base64(pkcs7_certs_only(self.ca.chain), "application/pkcs7-mime")
            elif op == "csrattrs":
                response = self._csrattrs()
            elif op == "serverkeygen":
                csr = self._read_csr(request)
                response = serverkeygen_response(
                    self.ca,
                    csr,
                    days=self.config.cert_days,
                    rsa_key=self.config.serverkeygen_rsa,
                    pkcs1=self.config.serverkeygen_pkcs1,
                    encrypt_to=self._serverkeygen_recipient(csr),
                    signer=self.config.serverkeygen_signer,
                )
            elif op == "fullcmc":
                response = self._fullcmc(request)
            else:
                response = self._enroll(request, op)
        except _Refusal as refusal:
            return Outcome(refusal.response, op, user, refusal.reason)
        return Outcome(response, op, user)

    def _serverkeygen_recipient(
        self, csr: x509.CertificateSigningRequest
    ) -> rsa.RSAPublicKey | None:
        """The key to encrypt a generated key to: the configured recipient, when the CSR
        asks for encryption (section 4.4.1.2); else None (plain PKCS#8)."""
        if decrypt_key_id(csr) is None:
            return None
        return self.config.serverkeygen_recipient

    # --- authentication (section 3.2.3, 3.3.2) ----------------------------------------

    def _authenticate(self, request: Request, op: str) -> str | None:
        if self.authenticator is None:
            return None
        if op == "cacerts" or (op == "csrattrs" and not self.config.auth_csrattrs):
            return None  # section 4.1.1: /cacerts SHOULD NOT require authentication
        if request.peer_cert is not None and self.config.cert_auth_suffices:
            return None  # the TLS layer verified the client certificate
        result = self.authenticator.check(
            request.headers.get("authorization"), request.method, request.target
        )
        if result.user is not None:
            return result.user
        response = text_response(401, "authentication required")
        if Quirk.BARE_401 not in self.config.quirks:
            response.headers.extend(("WWW-Authenticate", c) for c in result.challenges)
        raise _Refusal(response, result.reason)

    # --- /csrattrs (section 4.5) ------------------------------------------------------

    def _csrattrs(self) -> Response:
        if self.config.csrattrs is None:
            return Response(204)  # section 4.5.2: no attributes
        return self._base64(self.config.csrattrs, "application/csrattrs")

    # --- /simpleenroll and /simplereenroll (section 4.2) ------------------------------

    def _fullcmc(self, request: Request) -> Response:
        """Section 4.3: a Full PKI Request in, a Simple PKI Response out (testing/keygen)."""
        content_type = request.headers.get("content-type", "").replace(" ", "").lower()
        if content_type != "application/pkcs7-mime;smime-type=cmc-request":
            raise _refuse(415, "Content-Type must be application/pkcs7-mime; CMC-request")
        try:
            return fullcmc_response(self.ca, request.body, days=self.config.cert_days)
        except BodyError as exc:
            raise _refuse(400, str(exc)) from None

    def _read_csr(self, request: Request) -> x509.CertificateSigningRequest:
        content_type = media_type(request.headers.get("content-type"))
        if content_type != "application/pkcs10":
            raise _refuse(415, "Content-Type must be application/pkcs10 (RFC 7030 4.2.1)")
        if Quirk.STRICT_REQUEST_LINES in self.config.quirks and longest_line(request.body) > 76:
            raise _refuse(400, "base64 lines longer than 76 characters are not accepted")
        try:
            der = decode_base64_body(request.body)
        except BodyError as exc:
            raise _refuse(400, str(exc)) from None
        try:
            csr = x509.load_der_x509_csr(der)
        except ValueError as exc:
            raise _refuse(400, f"body is not a DER PKCS#10 request: {exc}") from None
        try:
            valid = csr.is_signature_valid
        except Exception as exc:  # unsupported algorithm and the like
            raise _refuse(400, f"cannot check the CSR signature: {exc}") from None
        if not valid:
            raise _refuse(400, "the CSR signature does not verify")
        try:  # cryptography parses lazily: find a malformed field here, not while issuing
            _ = (csr.subject, csr.extensions, csr.public_key())
        except Exception as exc:  # ValueError, UnsupportedAlgorithm
            raise _refuse(400, f"the CSR does not parse: {str(exc)[:120]}") from None
        return csr

    def _check_tls_unique(self, request: Request, csr: x509.CertificateSigningRequest) -> None:
        """Section 3.5: challengePassword = base64(tls-unique) of this TLS connection."""
        if request.tls_version != "TLSv1.2" or request.tls_unique is None:
            raise _refuse(400, "tls-unique is not defined for this TLS version; use TLS 1.2")
        try:
            attribute = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD)
        except x509.AttributeNotFound:
            raise _refuse(400, "the CSR has no challengePassword (RFC 7030 3.5)") from None
        expected = base64.b64encode(request.tls_unique)
        if not hmac.compare_digest(attribute.value, expected):
            raise _refuse(400, "challengePassword does not match tls-unique (RFC 7030 3.5)")

    def _current_certificate(self, request: Request) -> x509.Certificate:
        """Section 3.3.2: the certificate being renewed is the TLS client certificate."""
        current = request.peer_cert
        if current is None:
            raise _refuse(403, "/simplereenroll needs the current certificate as TLS client cert")
        if not self.ca.issued_here(current):
            raise _refuse(403, "the TLS client certificate was not issued by this CA")
        return current

    @staticmethod
    def _check_reenroll(current: x509.Certificate, csr: x509.CertificateSigningRequest) -> None:
        """Section 4.2.2: subject and subjectAltName equal the current certificate's."""
        if csr.subject != current.subject:
            raise _refuse(400, "CSR subject differs from the certificate being renewed")
        if _san(csr) != _san(current):
            raise _refuse(400, "CSR subjectAltName differs from the certificate being renewed")

    def _take_pending(self, op: str) -> bool:
        with self._lock:
            if self._pending[op] > 0:
                self._pending[op] -= 1
                return True
        return False

    def _enroll(self, request: Request, op: str) -> Response:
        current = self._current_certificate(request) if op == "simplereenroll" else None
        csr = self._read_csr(request)
        if current is not None:
            self._check_reenroll(current, csr)
        if self.config.enforce_tls_unique:
            self._check_tls_unique(request, csr)
        if self._take_pending(op):
            return self._pending_response()
        cert = self.ca.issue(csr, days=self.config.cert_days)
        # Section 4.2.3: certs-only, containing only the certificate that was issued.
        return self._base64(pkcs7_certs_only([cert]), PKCS7_CERTS_ONLY)

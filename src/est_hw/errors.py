"""One exception tree for the whole package.

Every error knows the CLI exit code it maps to (``exit_code``), so the CLI maps errors to
exit codes in one place.  Library exceptions (python-pkcs11, tlslite-ng, httpx, tss2) are
turned into these at the layer boundary where they occur.  Messages never contain secrets
(PINs, passwords, TPM auth values).

Exit codes (documented in README.md and docs/exit-codes.md):

====  ==========================================================================
0     success
2     usage error (bad option, bad input file)
3     authentication refused by the server (HTTP 401/403)
4     token error (wrong PIN, missing token, slot or key)
5     server unreachable, server error or protocol error
6     trust failure (certificate verification, fingerprint mismatch)
7     enrollment pending (HTTP 202, RFC 7030 section 4.2.3)
====  ==========================================================================
"""

from __future__ import annotations


class EstHwError(Exception):
    """Base of every est-hw error."""

    exit_code: int = 1


class UsageError(EstHwError):
    """The caller asked for something malformed or contradictory."""

    exit_code = 2


# --- tokens -------------------------------------------------------------------------------


class TokenError(EstHwError):
    """A key store (PKCS#11 token, TPM, key file) refused or failed an operation."""

    exit_code = 4


class TokenNotFoundError(TokenError):
    """No slot or token matches the selection."""


class PinIncorrectError(TokenError):
    """The token rejected the PIN (the PIN itself is never part of the message)."""


class KeyNotFoundError(TokenError):
    """No key (or no certificate) on the token matches the selection."""


class UnsupportedKeyError(TokenError):
    """The key type or mechanism is not supported by this token or by est-hw."""


# --- the server and the protocol ----------------------------------------------------------


class ServerError(EstHwError):
    """The EST server could not be reached, failed, or spoke something other than EST."""

    exit_code = 5


class ConnectionFailedError(ServerError):
    """TCP connect, TLS handshake (for reasons other than trust) or I/O failed."""


class TlsHandshakeError(ConnectionFailedError):
    """The TLS handshake failed for a reason other than trust (RFC 8446 section 6).

    :param alert: the TLS alert the server sent (``"certificate_required"``, ...) or
        ``None`` when the failure was local or had no alert.
    """

    def __init__(self, message: str, *, alert: str | None = None) -> None:
        super().__init__(message)
        self.alert = alert


class DeadlineExceededError(ConnectionFailedError):
    """The whole request (connect, handshake, send, receive) took longer than allowed."""


class ProtocolError(ServerError):
    """The server's answer is not what RFC 7030 says it must be."""


class HttpStatusError(ServerError):
    """The server answered with an HTTP error status (RFC 7030 section 4.2.3).

    :param status: the HTTP status code.
    :param server_text: the server's error text (truncated, printable only).
    """

    def __init__(self, message: str, *, status: int, server_text: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.server_text = server_text


class AuthenticationError(HttpStatusError):
    """The server refused our credentials or our client certificate (401/403)."""

    exit_code = 3


# --- trust -----------------------------------------------------------------------------


class TrustError(EstHwError):
    """A certificate could not be verified against the trust anchors."""

    exit_code = 6


class FingerprintMismatchError(TrustError):
    """Bootstrap (RFC 7030 section 4.1.1): no /cacerts certificate has the fingerprint."""


class CertificateMismatchError(TrustError):
    """The issued certificate does not carry the public key of the token key."""


# --- pending -----------------------------------------------------------------------------


class EnrollmentPendingError(EstHwError):
    """The server accepted the request for later processing (HTTP 202, section 4.2.3).

    :param retry_after: seconds to wait before retrying, as the server asked.
    """

    exit_code = 7

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after

"""The catalogue of hostile behaviours the test server can show (``--misbehave NAME``).

Each :class:`Misbehaviour` is one way a real, broken or hostile EST server answers; the
implementation is :mod:`est_hw.testing.hostile`.  A misbehaviour works at one
:class:`Layer`:

``tcp``     every connection, before TLS (the server never completes a handshake)
``tls``     every connection: the server's certificate or the handshake itself
``http``    the raw bytes of the answer to a targeted operation (framing, timing)
``status``  the status line and headers of the answer to a targeted operation
``body``    the body (and Content-Type) of the answer to a targeted operation
``redirect`` a 3xx answer to a targeted operation
``csrattrs`` the /csrattrs answer (whatever ``misbehave_on`` says): a CsrAttrs that asks
            the client for something it cannot or must not build

The targeted operations are ``ServerConfig.misbehave_on`` (default: simpleenroll).
``http``, ``body`` and ``redirect`` misbehaviours replace only answers that were not a
refusal (status below 300), so an authentication challenge still comes first and the
misbehaviour hits the request that carries credentials; ``status`` misbehaviours replace
every answer.  Which exit code est-hw must give for each is documented in
docs/hostile-servers.md and checked by tests/hostile/.
"""

from __future__ import annotations

import enum

__all__ = ["Layer", "Misbehaviour"]


class Layer(enum.Enum):
    """Where a misbehaviour acts (see the module docstring)."""

    TCP = "tcp"
    TLS = "tls"
    HTTP = "http"
    STATUS = "status"
    BODY = "body"
    REDIRECT = "redirect"
    CSRATTRS = "csrattrs"


class Misbehaviour(enum.Enum):
    """One hostile or broken server behaviour; the value is its ``--misbehave`` name and
    :attr:`description` says what the server does."""

    # --- tcp: every connection, before TLS ---------------------------------------------
    TCP_SILENT = ("tcp-silent", "accept TCP, then never say anything (no ServerHello)")
    TCP_CLOSE = ("tcp-close", "accept TCP and close it at once")
    TCP_RESET = ("tcp-reset", "read the ClientHello, then reset the connection (RST)")
    TCP_PLAINTEXT_HTTP = (
        "tcp-plaintext-http",
        "answer the ClientHello with a plaintext HTTP/1.1 400 (an http server on the port)",
    )
    TCP_GARBAGE = ("tcp-garbage", "answer the ClientHello with random bytes")

    # --- tls: the certificate and the handshake ----------------------------------------
    TLS_WRONG_NAME = ("tls-wrong-name", "a server certificate for another name (wrong.example)")
    TLS_EXPIRED = ("tls-expired", "a server certificate that expired yesterday")
    TLS_NOT_YET_VALID = ("tls-not-yet-valid", "a server certificate valid from tomorrow")
    TLS_SELF_SIGNED = ("tls-self-signed", "a self-signed server certificate with the right names")
    TLS_UNTRUSTED_CA = (
        "tls-untrusted-ca",
        "a server certificate (and chain) from a CA the client does not trust",
    )
    TLS_NO_INTERMEDIATE = (
        "tls-no-intermediate",
        "the leaf only: the issuing CA certificate is left out of the handshake",
    )
    TLS_CLIENT_AUTH_EKU = (
        "tls-client-auth-eku",
        "a server certificate whose extendedKeyUsage is clientAuth only",
    )
    TLS_CLOSE_AFTER_HANDSHAKE = (
        "tls-close-after-handshake",
        "complete the handshake, then close before reading the request",
    )
    TLS_NO_SHARED_CIPHER = (
        "tls-no-shared-cipher",
        "offer only a non-AEAD, non-ECDHE cipher suite at TLS 1.2 (no suite in common)",
    )

    # --- http: raw bytes of the answer ---------------------------------------------------
    HTTP_GARBAGE = ("http-garbage", "bytes that are not HTTP at all")
    HTTP_BAD_STATUS_LINE = (
        "http-bad-status-line",
        "a status line that does not parse (HTTP/1.1 2OO OK)",
    )
    HTTP_SLOW_DRIP = ("http-slow-drip", "the right answer, one byte per second")
    HTTP_SILENT = ("http-silent", "read the request, never answer, keep the connection open")
    HTTP_CLOSE_BEFORE_ANSWER = (
        "http-close-before-answer",
        "read the request, close the connection without an answer",
    )
    HTTP_CLOSE_MID_HEADERS = ("http-close-mid-headers", "half of the header block, then close")
    HTTP_CLOSE_MID_BODY = (
        "http-close-mid-body",
        "the headers and half of the body (Content-Length says all), then close",
    )
    HTTP_LENGTH_TOO_LONG = (
        "http-length-too-long",
        "a Content-Length 100 bytes longer than the body, then silence",
    )
    HTTP_LENGTH_TOO_SHORT = (
        "http-length-too-short",
        "a Content-Length shorter than the body (the body is cut)",
    )
    HTTP_LENGTH_MALFORMED = ("http-length-malformed", "a Content-Length that is not a number")
    HTTP_LENGTH_CONFLICT = ("http-length-conflict", "two Content-Length headers that disagree")
    HTTP_CHUNKED = (
        "http-chunked",
        "the right answer in chunked transfer coding (well-formed: must be accepted)",
    )
    HTTP_CHUNKED_MALFORMED = (
        "http-chunked-malformed",
        "chunked, with a chunk size that is not hex",
    )
    HTTP_CHUNKED_TRUNCATED = (
        "http-chunked-truncated",
        "chunked, closed before the last (zero) chunk",
    )
    HTTP_HUGE_CHUNKED = ("http-huge-chunked", "more than 1 MiB of chunks, no length announced")
    HTTP_HUGE_HEADER = ("http-huge-header", "one header line of 1 MiB")
    HTTP_CONTENT_ENCODING = (
        "http-content-encoding",
        "the body gzip-compressed, with Content-Encoding: gzip",
    )
    HTTP_INTERIM_103 = (
        "http-interim-103",
        "a 103 Early Hints interim answer before the right one (must be accepted)",
    )
    HTTP_CLOSE_DELIMITED = (
        "http-close-delimited",
        "HTTP/1.0 style: no Content-Length, the body ends when the connection closes "
        "(well-formed: must be accepted)",
    )

    # --- status: the status line and headers --------------------------------------------
    STATUS_204 = ("status-204", "204 No Content")
    STATUS_404 = ("status-404", "404 Not Found")
    STATUS_500 = ("status-500", "500 Internal Server Error")
    STATUS_500_RETRY_AFTER = ("status-500-retry-after", "500 with Retry-After: 30")
    STATUS_503 = ("status-503", "503 Service Unavailable")
    STATUS_503_RETRY_AFTER = ("status-503-retry-after", "503 with Retry-After: 30")
    STATUS_401_BARE = ("status-401-bare", "401 without WWW-Authenticate")
    STATUS_401_UNKNOWN_SCHEME = (
        "status-401-unknown-scheme",
        "401 challenging with a scheme est-hw does not speak (Negotiate, Bearer)",
    )
    STATUS_401_FOREVER = (
        "status-401-forever",
        "401 with a valid Basic challenge for every request, whatever the credentials",
    )
    DIGEST_NO_NONCE = ("digest-no-nonce", "401 with a Digest challenge that lacks its nonce")
    DIGEST_UNKNOWN_ALGORITHM = (
        "digest-unknown-algorithm",
        "401 with a Digest challenge for an unknown algorithm (SHA3-256)",
    )
    DIGEST_AUTH_INT_ONLY = (
        "digest-auth-int-only",
        "401 with a Digest challenge offering qop=auth-int only",
    )
    DIGEST_BARE_PARAMETER = (
        "digest-bare-parameter",
        "401 with a Digest challenge holding a parameter without = (stale)",
    )
    RETRY_AFTER_TEN_YEARS = (
        "retry-after-ten-years",
        "202 with Retry-After of ten years (315360000 seconds)",
    )
    RETRY_AFTER_ABSURD = (
        "retry-after-absurd",
        "202 with Retry-After: 10000000000000 (valid delta-seconds: 300 000 years)",
    )
    RETRY_AFTER_MALFORMED = ("retry-after-malformed", "202 with Retry-After: soon")
    RETRY_AFTER_NEGATIVE = ("retry-after-negative", "202 with Retry-After: -30")
    RETRY_AFTER_HUGE_NUMBER = ("retry-after-huge-number", "202 with a Retry-After of 5000 digits")
    RETRY_AFTER_PAST_DATE = ("retry-after-past-date", "202 with a Retry-After date in the past")
    RETRY_AFTER_MISSING = (
        "retry-after-missing",
        "202 without Retry-After (RFC 7030 4.2.3 says it MUST be there)",
    )

    # --- body: the body and its Content-Type ---------------------------------------------
    BODY_EMPTY = ("body-empty", "200 with an empty body")
    BODY_HTML = ("body-html", "200 with an HTML error page (text/html)")
    BODY_HTML_AS_PKCS7 = (
        "body-html-as-pkcs7",
        "200 with an HTML error page labelled as the right media type",
    )
    BODY_GARBAGE_BASE64 = ("body-garbage-base64", "characters outside the base64 alphabet")
    BODY_TRUNCATED_BASE64 = ("body-truncated-base64", "the right base64, cut in the middle")
    BODY_OVERSIZED_BASE64 = (
        "body-oversized-base64",
        "valid base64 of 900 KiB: the right DER followed by junk (under the 1 MiB cap)",
    )
    BODY_TRAILING_JUNK = ("body-trailing-junk", "the right PKCS#7 followed by junk bytes")
    BODY_HUGE = ("body-huge", "a body of 2 MiB (with its Content-Length)")
    BODY_NO_CONTENT_TYPE = ("body-no-content-type", "no Content-Type header")
    BODY_WRONG_CONTENT_TYPE = ("body-wrong-content-type", "Content-Type text/plain")
    BODY_WRONG_SMIME_TYPE = (
        "body-wrong-smime-type",
        "application/pkcs7-mime; smime-type=CMC-response",
    )
    BODY_NO_CERTIFICATE = ("body-no-certificate", "a certs-only SignedData holding no certificate")
    BODY_BARE_CERTIFICATE = ("body-bare-certificate", "a bare DER certificate instead of a PKCS#7")
    BODY_SEVERAL_LEAVES = ("body-several-leaves", "two different certificates for the client's key")
    BODY_OTHER_KEY = ("body-other-key", "a certificate for another key")
    BODY_EXPIRED = ("body-expired", "the issued certificate expired yesterday")
    BODY_NOT_YET_VALID = ("body-not-yet-valid", "the issued certificate is valid from tomorrow")
    BODY_UNTRUSTED_ISSUER = (
        "body-untrusted-issuer",
        "issued by a CA that does not chain to the anchor (that CA included); on /cacerts:"
        " the right CA certificates plus a CA of another PKI",
    )
    BODY_CA_CERTIFICATE = (
        "body-ca-certificate",
        "the issuing CA's own certificate instead of a leaf",
    )
    BODY_CA_FOR_KEY = ("body-ca-for-key", "a CA certificate (cA=TRUE) for the client's key")
    BODY_BAD_SIGNATURE = ("body-bad-signature", "the issued certificate with a broken signature")
    BODY_MALFORMED_CERTIFICATE = (
        "body-malformed-certificate",
        "the answer's first certificate with a subject value of a forbidden ASN.1 type",
    )
    BODY_UNSUPPORTED_EXTRA = (
        "body-unsupported-extra",
        "the issued certificate plus a certificate with an unknown public key algorithm",
    )
    BODY_WITH_CHAIN = (
        "body-with-chain",
        "the issued certificate plus the whole CA chain (must be accepted)",
    )
    BODY_PEM = ("body-pem", "the PKCS#7 in PEM armour (must be accepted)")
    BODY_RAW_DER = ("body-raw-der", "the PKCS#7 as raw DER, no base64 (must be accepted)")
    BODY_LEGACY_CONTENT_TYPE = (
        "body-legacy-content-type",
        "application/x-pkcs7-mime without smime-type (must be accepted)",
    )

    # --- redirect -------------------------------------------------------------------------
    REDIRECT_SAME_ORIGIN = (
        "redirect-same-origin",
        "307 to the same operation on the same origin (absolute URL), once",
    )
    REDIRECT_RELATIVE = (
        "redirect-relative",
        "307 to the same operation by a relative Location, once",
    )
    REDIRECT_LOOP = ("redirect-loop", "307 to itself, forever")
    REDIRECT_TO_HTTP = ("redirect-to-http", "307 to http:// on the same host and port")
    REDIRECT_OTHER_HOST = (
        "redirect-other-host",
        "307 to the same server under another host name (localhost)",
    )
    REDIRECT_ELSEWHERE = (
        "redirect-elsewhere",
        "307 to ``ServerConfig.redirect_to`` (another server, for instance)",
    )
    REDIRECT_MALFORMED_LOCATION = (
        "redirect-malformed-location",
        "307 to a Location that is no URL (https://127.0.0.1:abc/)",
    )
    REDIRECT_NO_LOCATION = ("redirect-no-location", "307 without a Location header")

    _value_: str
    #: one line saying what the server does
    description: str

    def __new__(cls, value: str, description: str) -> Misbehaviour:
        member = object.__new__(cls)
        member._value_ = value
        member.description = description
        return member

    # --- csrattrs: what the server asks the client to put in its CSR ---------------------
    CSRATTRS_BAD_COUNTRY = (
        "csrattrs-bad-country",
        "an RFC 9908 template whose fixed countryName has 3 letters (USA)",
    )
    CSRATTRS_DUPLICATE_ATTRIBUTE = (
        "csrattrs-duplicate-attribute",
        "an RFC 9908 template with the same commonName twice in one RDN",
    )
    CSRATTRS_LONG_COMMON_NAME = (
        "csrattrs-long-common-name",
        "an RFC 9908 template whose fixed commonName has 100 characters (max 64)",
    )
    CSRATTRS_JUNK_EXTENSION = (
        "csrattrs-junk-extension",
        "an extensionRequest for keyUsage whose value is junk (the CSR is then refused)",
    )
    CSRATTRS_UNMAKEABLE_KEY = (
        "csrattrs-unmakeable-key",
        "asks for an RSA-1024 key (est-hw notes it and makes its default key)",
    )
    CSRATTRS_NEEDS_SUBJECT = (
        "csrattrs-needs-subject",
        "an RFC 9908 template that needs a serialNumber the user did not give",
    )
    CSRATTRS_MALFORMED_TEMPLATE = (
        "csrattrs-malformed-template",
        "a certificationRequestInfoTemplate attribute whose value is not a template",
    )
    CSRATTRS_NOT_CSRATTRS = (
        "csrattrs-not-csrattrs",
        "a body that is base64 of DER, but not of a CsrAttrs",
    )

    @classmethod
    def named(cls, value: str) -> Misbehaviour:
        """The member whose ``--misbehave`` name is ``value`` (``Misbehaviour(value)``)."""
        for member in cls:
            if member.value == value:
                return member
        raise ValueError(f"no misbehaviour named {value!r}")

    @property
    def layer(self) -> Layer:
        """Where this misbehaviour acts."""
        return _PREFIX_LAYERS[self.value.split("-", 1)[0]]


_PREFIX_LAYERS = {
    "tcp": Layer.TCP,
    "tls": Layer.TLS,
    "http": Layer.HTTP,
    "status": Layer.STATUS,
    "digest": Layer.STATUS,
    "retry": Layer.STATUS,
    "body": Layer.BODY,
    "redirect": Layer.REDIRECT,
    "csrattrs": Layer.CSRATTRS,
}

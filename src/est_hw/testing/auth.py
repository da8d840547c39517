"""Server-side HTTP authentication for the test server (RFC 7030 section 3.2.3).

Basic (RFC 7617) and Digest (RFC 7616: SHA-256 and MD5, qop=auth, server nonces that
expire, nonce-count replay detection), written with hashlib and hmac only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["AuthResult", "Authenticator"]

_ALGORITHMS = {"SHA-256": hashlib.sha256, "MD5": hashlib.md5}
_NONCE_LIFETIME = 300.0
_MAX_NONCES = 4096


@dataclass(frozen=True)
class AuthResult:
    """The outcome of checking one request's Authorization header.

    ``user`` is set on success; otherwise ``reason`` says why (never the password) and
    ``challenges`` are the WWW-Authenticate values to send with the 401.
    """

    user: str | None
    reason: str = ""
    challenges: tuple[str, ...] = ()


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Authenticator:
    """Checks Basic or Digest credentials against a fixed user table."""

    def __init__(self, mode: str, users: Mapping[str, str], realm: str) -> None:
        if mode not in ("basic", "digest"):
            raise ValueError(f"unknown HTTP authentication scheme {mode!r}")
        self.mode = mode
        self.realm = realm
        self._users = dict(users)
        self._opaque = secrets.token_hex(16)
        self._lock = threading.Lock()
        self._nonces: dict[str, tuple[float, set[int]]] = {}

    # --- challenges -------------------------------------------------------------------

    def _new_nonce(self) -> str:
        nonce = secrets.token_urlsafe(24)
        now = time.monotonic()
        with self._lock:
            if len(self._nonces) >= _MAX_NONCES:
                expired = [n for n, (t, _) in self._nonces.items() if now - t > _NONCE_LIFETIME]
                for old in expired or list(self._nonces)[: _MAX_NONCES // 2]:
                    del self._nonces[old]
            self._nonces[nonce] = (now, set())
        return nonce

    def challenges(self, *, stale: bool = False) -> tuple[str, ...]:
        """WWW-Authenticate values, most preferred first (RFC 7616 section 3.7)."""
        if self.mode == "basic":
            return (f"Basic realm={_quote(self.realm)}, charset={_quote('UTF-8')}",)
        nonce = self._new_nonce()
        out = []
        for algorithm in _ALGORITHMS:
            value = (
                f"Digest realm={_quote(self.realm)}, qop={_quote('auth')}, "
                f"algorithm={algorithm}, nonce={_quote(nonce)}, opaque={_quote(self._opaque)}"
            )
            out.append(value + (", stale=true" if stale else ""))
        return tuple(out)

    def _fail(self, reason: str, *, stale: bool = False) -> AuthResult:
        return AuthResult(None, reason, self.challenges(stale=stale))

    # --- verification -----------------------------------------------------------------

    def check(self, authorization: str | None, method: str, target: str) -> AuthResult:
        """Check the Authorization header of a ``method`` request for ``target``."""
        if not authorization:
            return self._fail("no credentials")
        scheme, _, params = authorization.strip().partition(" ")
        if scheme.lower() != self.mode:
            return self._fail(f"expected {self.mode.capitalize()} authentication")
        if self.mode == "basic":
            return self._check_basic(params.strip())
        return self._check_digest(params, method, target)

    def _password_ok(self, user: str, password: str) -> bool:
        expected = self._users.get(user)
        # Compare even for unknown users so timing does not tell which users exist.
        ok = hmac.compare_digest((expected or "\0").encode(), password.encode())
        return expected is not None and ok

    def _check_basic(self, token: str) -> AuthResult:
        try:
            decoded = base64.b64decode(token, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return self._fail("malformed Basic credentials")
        user, sep, password = decoded.partition(":")
        if not sep or not self._password_ok(user, password):
            return self._fail("wrong username or password")
        return AuthResult(user)

    def _check_digest(self, params: str, method: str, target: str) -> AuthResult:
        fields = urllib.request.parse_keqv_list(urllib.request.parse_http_list(params))
        needed = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        missing = [name for name in needed if not fields.get(name)]
        if missing:
            return self._fail("Digest credentials lack " + ", ".join(missing))
        algorithm = fields.get("algorithm", "MD5")
        hash_fn = _ALGORITHMS.get(algorithm.upper())
        if hash_fn is None:
            return self._fail(f"unsupported Digest algorithm {algorithm}")
        if fields["realm"] != self.realm or fields.get("opaque", self._opaque) != self._opaque:
            return self._fail("wrong realm or opaque")
        if fields["qop"] != "auth":
            return self._fail("qop must be auth")
        if fields["uri"] != target:
            return self._fail("Digest uri does not match the request target")
        if fields.get("userhash", "false").lower() == "true":
            return self._fail("userhash is not supported")
        try:
            nc = int(fields["nc"], 16)
        except ValueError:
            return self._fail("malformed nonce-count")
        with self._lock:
            entry = self._nonces.get(fields["nonce"])
            known = entry is not None
            fresh = entry is not None and time.monotonic() - entry[0] <= _NONCE_LIFETIME
            replayed = entry is not None and nc in entry[1]
        # (never call _fail with the lock held: it makes a new nonce under the lock)
        if not fresh:
            return self._fail("unknown or expired nonce", stale=known)
        if replayed:
            return self._fail("replayed nonce-count")
        user = fields["username"]
        password = self._users.get(user, "")

        def h(text: str) -> str:
            return hash_fn(text.encode("utf-8")).hexdigest()

        ha1 = h(f"{user}:{self.realm}:{password}")
        ha2 = h(f"{method}:{fields['uri']}")
        expected = h(f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}")
        ok = hmac.compare_digest(expected, fields["response"].lower())
        if user not in self._users or not ok:
            return self._fail("wrong username or password")
        with self._lock:
            entry = self._nonces.get(fields["nonce"])
            replayed = entry is None or nc in entry[1]
            if entry is not None:
                entry[1].add(nc)
        if replayed:
            return self._fail("replayed nonce-count")
        return AuthResult(user)

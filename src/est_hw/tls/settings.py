"""TLS configuration: whom to trust, who we are, which protocol versions.

Frozen records handed to the transport (RFC 7030 section 3.3: TLS 1.1 or later is
required; est-hw speaks TLS 1.2 (RFC 5246) and TLS 1.3 (RFC 8446) only).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from est_hw.errors import UsageError
from est_hw.keys.base import PrivateKey
from est_hw.tls.trust import ServerTrust

VERSIONS: dict[str, tuple[int, int]] = {"1.2": (3, 3), "1.3": (3, 4)}


@dataclass(frozen=True)
class ClientIdentity:
    """The client certificate for TLS client authentication (RFC 7030 section 3.3.2).

    :param private_key: a cryptography key object; it only ever has to ``sign()``, so a
        key inside a token works (the private numbers are never needed).
    :param chain: the client certificate first, then the CA certificates to send.
    """

    private_key: PrivateKey
    chain: tuple[x509.Certificate, ...]

    def __post_init__(self) -> None:
        chain = tuple(self.chain)
        if not chain:
            raise UsageError("a client identity needs at least its own certificate")
        object.__setattr__(self, "chain", chain)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        if chain[0].public_key().public_bytes(der, spki) != (
            self.private_key.public_key().public_bytes(der, spki)
        ):
            raise UsageError("the client certificate does not carry the key's public key")


@dataclass(frozen=True)
class TlsSettings:
    """Everything the TLS adapter needs for one server.

    :param trust: how the server is authenticated.
    :param client: the client certificate and key, or ``None`` (no client auth).
    :param min_version: lowest protocol version, ``"1.2"`` or ``"1.3"``.
    :param max_version: highest protocol version, ``"1.2"`` or ``"1.3"``.
    """

    trust: ServerTrust
    client: ClientIdentity | None = None
    min_version: str = "1.2"
    max_version: str = "1.3"

    def __post_init__(self) -> None:
        for version in (self.min_version, self.max_version):
            if version not in VERSIONS:
                raise UsageError(f"unsupported TLS version {version!r} (use 1.2 or 1.3)")
        if VERSIONS[self.min_version] > VERSIONS[self.max_version]:
            raise UsageError("min_version is above max_version")

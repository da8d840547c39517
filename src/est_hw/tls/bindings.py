"""Channel-binding values: the TLS 1.3 exporter (RFC 8446 section 7.5).

tlslite-ng 0.8.2 derives its TLS 1.3 exporter master secret over the transcript up to
the client's CertificateVerify instead of up to the server Finished (FIELD-NOTES), so
with a client certificate its ``keyingMaterialExporter()`` is wrong.  est-hw derives the
exporter itself, from the master secret and the transcript hash taken at the server
Finished, as RFC 8446 section 7.1 says:

    exporter_master_secret = Derive-Secret(Master Secret, "exp master",
                                           ClientHello...server Finished)
    TLS-Exporter(label, context, length) =
        HKDF-Expand-Label(Derive-Secret(exporter_master_secret, label, ""),
                          "exporter", Hash(context), length)

RFC 9266 ``tls-exporter`` is ``TLS-Exporter("EXPORTER-Channel-Binding", "", 32)``.

At TLS 1.2 the exporter is RFC 5705's, where an empty context is NOT the same as no
context (section 4): RFC 9266 asks for an empty context value, so the seed ends with a
zero length (what GnuTLS does; ``openssl s_server -keymatexport`` exports without a
context, which gives a different value).  RFC 9266 section 3: TLS 1.2 only with the
extended master secret (RFC 7627).
"""

from __future__ import annotations

import hashlib
import hmac

#: RFC 9266 section 2.
TLS_EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
TLS_EXPORTER_LENGTH = 32


def hkdf_expand(hash_name: str, prk: bytes, info: bytes, length: int) -> bytes:
    """HKDF-Expand (RFC 5869 section 2.3)."""
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hash_name).digest()
        out += block
        counter += 1
    return out[:length]


def hkdf_expand_label(
    hash_name: str, secret: bytes, label: bytes, context: bytes, length: int
) -> bytes:
    """HKDF-Expand-Label (RFC 8446 section 7.1)."""
    full_label = b"tls13 " + label
    info = (
        length.to_bytes(2, "big")
        + bytes([len(full_label)])
        + full_label
        + bytes([len(context)])
        + context
    )
    return hkdf_expand(hash_name, secret, info, length)


def derive_secret(hash_name: str, secret: bytes, label: bytes, transcript_hash: bytes) -> bytes:
    """Derive-Secret (RFC 8446 section 7.1), given the transcript's hash."""
    size = hashlib.new(hash_name).digest_size
    return hkdf_expand_label(hash_name, secret, label, transcript_hash, size)


def tls13_exporter(
    *,
    hash_name: str,
    master_secret: bytes,
    server_finished_transcript_hash: bytes,
    label: bytes,
    context: bytes,
    length: int,
) -> bytes:
    """TLS-Exporter (RFC 8446 section 7.5) from the master secret.

    :param hash_name: the cipher suite's hash (``"sha256"`` or ``"sha384"``).
    :param server_finished_transcript_hash: Hash(ClientHello...server Finished).
    """
    exporter_master = derive_secret(
        hash_name, master_secret, b"exp master", server_finished_transcript_hash
    )
    empty = hashlib.new(hash_name).digest()
    secret = derive_secret(hash_name, exporter_master, label, empty)
    context_hash = hashlib.new(hash_name, context).digest()
    return hkdf_expand_label(hash_name, secret, b"exporter", context_hash, length)


def tls12_prf(hash_name: str, secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    """PRF(secret, label, seed) of RFC 5246 section 5 (P_hash with the suite's hash)."""
    full_seed = label + seed
    out = b""
    a = full_seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + full_seed, hash_name).digest()
    return out[:length]


def tls12_exporter(
    *,
    hash_name: str,
    master_secret: bytes,
    client_random: bytes,
    server_random: bytes,
    label: bytes,
    context: bytes | None,
    length: int,
) -> bytes:
    """The RFC 5705 exporter for TLS 1.2 (``context=None``: no context at all)."""
    seed = client_random + server_random
    if context is not None:
        seed += len(context).to_bytes(2, "big") + context
    return tls12_prf(hash_name, master_secret, label, seed, length)

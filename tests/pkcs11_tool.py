"""pkcs11-tool (OpenSC) as an independent cross-check of what est-hw left on a token."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field

from tests.conftest import SoftHsmToken


@dataclass
class TokenObject:
    """One object of ``pkcs11-tool -O``: its kind line and its attribute lines."""

    kind: str
    attrs: dict[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.attrs.get("label", "")

    @property
    def id(self) -> str:
        return self.attrs.get("ID", "")


def pkcs11_tool(
    token: SoftHsmToken, *args: str, login: bool = True
) -> subprocess.CompletedProcess[bytes]:
    """Run opensc's pkcs11-tool against ``token``, logged in with its PIN unless not ``login``."""
    command = ["pkcs11-tool", "--module", token.module, "--token-label", token.label]
    if login:
        command += ["--login", "--pin", token.pin]
    env = {**os.environ, "SOFTHSM2_CONF": str(token.conf)}
    return subprocess.run([*command, *args], check=True, capture_output=True, env=env)


def list_objects_text(token: SoftHsmToken) -> str:
    """``pkcs11-tool -O``: every object on the token, as the text pkcs11-tool prints."""
    return pkcs11_tool(token, "-O").stdout.decode()


def list_objects(token: SoftHsmToken) -> list[TokenObject]:
    """Every object on the token, as pkcs11-tool sees it."""
    objects: list[TokenObject] = []
    for line in list_objects_text(token).splitlines():
        if not line.strip():
            continue
        if not line.startswith(" "):
            objects.append(TokenObject(line.strip()))
        elif objects and ":" in line:
            name, _, value = line.strip().partition(":")
            objects[-1].attrs[name.strip()] = value.strip()
    return objects


def read_object(token: SoftHsmToken, kind: str, object_id: str) -> bytes:
    """The DER of a certificate (``cert``) or public key (``pubkey``) by hex id."""
    return pkcs11_tool(token, "--read-object", "--type", kind, "--id", object_id).stdout


def public_key_matches(token: SoftHsmToken, object_id: str, public_key: object) -> bool:
    """Does the token's public key object ``object_id`` hold ``public_key``?

    pkcs11-tool exports RSA and P-256 keys as SubjectPublicKeyInfo; for P-384 it cannot
    ("cannot create EVP_PKEY"), so the EC_POINT of its listing is compared instead.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        PublicFormat,
        load_der_public_key,
    )

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        (obj,) = [
            o for o in list_objects(token)
            if o.kind.startswith("Public Key Object") and o.id == object_id
        ]  # fmt: skip
        point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        # EC_POINT is the DER OCTET STRING around the point: 04 <len> <point>
        return obj.attrs["EC_POINT"].endswith(point.hex())
    return load_der_public_key(read_object(token, "pubkey", object_id)) == public_key

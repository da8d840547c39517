"""Turning results into --json objects and human lines (the only place that prints)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cryptography import x509


def certificate_summary(cert: x509.Certificate) -> dict[str, Any]:
    """The fields of a certificate that users look at, JSON-ready."""
    from est_hw.x509.names import serial_hex
    from est_hw.x509.trust import fingerprint

    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial_number": serial_hex(cert.serial_number),
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "fingerprint": fingerprint(cert),
    }


def emit_json(obj: dict[str, Any]) -> None:
    """Print one JSON object on stdout (the whole --json output of a command)."""
    sys.stdout.write(json.dumps(obj, indent=2, sort_keys=False) + "\n")


def emit_lines(lines: list[str]) -> None:
    """Print human-readable lines on stdout."""
    for line in lines:
        click.echo(line)


def inventory_summary(token: str, inventory: Any) -> dict[str, Any]:
    """Keys with their certificates (and whether each matches its key), then the rest."""
    by_id: dict[bytes, list[Any]] = {}
    for stored in inventory.certificates:
        if not stored.is_ca:
            by_id.setdefault(stored.key_id, []).append(stored)
    keys = []
    paired: set[int] = set()
    for key in inventory.keys:
        certs = by_id.get(key.key_id, [])
        cert_obj = None
        if certs:
            stored = certs[0]
            paired.update(id(c) for c in certs)
            cert_obj = {
                **certificate_summary(stored.certificate),
                "matches_key": stored.certificate.public_key() == key.public_key(),
                "location": stored.location,
            }
        keys.append(
            {
                "label": key.label,
                "id": key.key_id.hex(),
                "key_type": key.key_type.value,
                "certificate": cert_obj,
            }
        )
    others = [
        {
            "label": stored.label,
            "id": stored.key_id.hex(),
            "is_ca": stored.is_ca,
            "location": stored.location,
            **certificate_summary(stored.certificate),
        }
        for stored in inventory.certificates
        if id(stored) not in paired
    ]
    return {"token": token, "keys": keys, "other_certificates": others}


def csrattrs_summary(attributes: Any) -> dict[str, Any]:
    """The decoded /csrattrs answer (RFC 7030 4.5.2), JSON-ready."""
    return {
        "oids": list(attributes.oids),
        "attributes": [attr.oid for attr in attributes.attributes],
        "challenge_password_requested": attributes.challenge_password_requested,
        "key_type_hint": attributes.key_type_hint,
        "signature_hash_hint": attributes.signature_hash_hint,
        "extension_requests": [
            {"oid": ext.oid, "critical": ext.critical} for ext in attributes.extension_requests
        ],
        "template": attributes.template is not None,
    }

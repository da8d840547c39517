"""The commands: cacerts, csrattrs, enroll, show.

Each command parses, calls the library, and renders; nothing else.  Heavy modules are
imported inside the command bodies so that ``est-hw --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from est_hw.cli.options import (
    ServerArgs,
    TokenArgs,
    output_options,
    server_options,
    take,
    token_options,
)
from est_hw.errors import UsageError

#: The values of :class:`est_hw.keys.base.KeyType` (kept here so --help imports nothing).
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")


def _start(kwargs: dict[str, Any]) -> bool:
    from est_hw.cli.main import setup_output

    as_json = bool(kwargs.pop("as_json"))
    setup_output(as_json, int(kwargs.pop("verbose")))
    return as_json


def _write_pem(path: Path, certs: list[Any]) -> None:
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        path.write_bytes(b"".join(cert.public_bytes(Encoding.PEM) for cert in certs))
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


@click.command()
@server_options
@output_options
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the CA certificates as PEM here instead of stdout.")  # fmt: skip
def cacerts(**kwargs: Any) -> None:
    """Fetch and verify the CA certificates (RFC 7030 4.1)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from est_hw.cli.render import certificate_summary, emit_json

    as_json = _start(kwargs)
    out = kwargs.pop("out")
    server = take(ServerArgs, kwargs).connect()
    with server.client() as client:
        certs = client.cacerts()
    if out is not None:
        _write_pem(out, certs)
    if as_json:
        emit_json({"status": "ok", "certificates": [certificate_summary(c) for c in certs]})
    elif out is None:
        for cert in certs:
            click.echo(cert.public_bytes(Encoding.PEM).decode(), nl=False)


@click.command()
@server_options
@output_options
def csrattrs(**kwargs: Any) -> None:
    """Fetch the CSR attributes the server asks for (RFC 7030 4.5)."""
    from est_hw.cli.render import csrattrs_summary, emit_json, emit_lines

    as_json = _start(kwargs)
    server = take(ServerArgs, kwargs).connect()
    with server.client() as client:
        attributes = client.csrattrs()
    summary = csrattrs_summary(attributes)
    if as_json:
        emit_json({"status": "ok", **summary})
    else:
        emit_lines([f"{name}: {value}" for name, value in summary.items()])


@click.command()
@server_options
@token_options
@output_options
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    default="ec-p256",
    show_default=True,
    help="Key to generate inside the token.",
)
@click.option("--key-label", help="Label of the new key and certificate (default: the CN).")
@click.option("--subject", help="Subject as an RFC 4514 string, e.g. CN=dev-1,O=Example.")
@click.option(
    "--san",
    multiple=True,
    metavar="KIND:VALUE",
    help="subjectAltName dns:NAME|ip:ADDR|uri:URI|email:ADDR (repeatable).",
)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Also write the certificate and chain as PEM here.")  # fmt: skip
def enroll(**kwargs: Any) -> None:
    """Generate a key on the token, enroll it, store the certificate (RFC 7030 4.2.1)."""
    from cryptography.x509.oid import NameOID

    from est_hw.cli.render import certificate_summary, emit_json, emit_lines
    from est_hw.keys.base import KeyType
    from est_hw.provision import EnrollRequest
    from est_hw.provision import enroll as enroll_on_token
    from est_hw.x509.csr import CsrContent
    from est_hw.x509.names import parse_san, parse_subject

    as_json = _start(kwargs)
    out: Path | None = kwargs.pop("out")
    subject_text: str | None = kwargs.pop("subject")
    san_texts: tuple[str, ...] = kwargs.pop("san")
    if not subject_text and not san_texts:
        raise UsageError("give --subject and/or --san: the certificate needs a name")
    subject = parse_subject(subject_text) if subject_text else parse_subject_empty()
    sans = tuple(parse_san(text) for text in san_texts)
    key_type = KeyType(kwargs.pop("key_type"))
    label: str | None = kwargs.pop("key_label")
    token_args = take(TokenArgs, kwargs)
    uri = token_args.uri()
    if label is None and uri is not None and uri.object:
        label = uri.object
    if label is None:
        common_names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        label = str(common_names[0].value) if common_names else "est-hw"

    server = take(ServerArgs, kwargs).connect()
    request = EnrollRequest(key_type, label, CsrContent(subject=subject, sans=sans))
    with token_args.open() as backend:
        result = enroll_on_token(backend, server, request)
    if out is not None:
        _write_pem(out, [result.certificate, *result.chain])
    summary = certificate_summary(result.certificate)
    fields = {
        "status": "issued",
        "subject": summary["subject"],
        "issuer": summary["issuer"],
        "serial_number": summary["serial_number"],
        "not_after": summary["not_after"],
        "key_id": result.key.key_id.hex(),
        "key_label": result.key.label,
        "key_type": result.key.key_type.value,
        "token": result.token,
        "chain_length": len(result.chain),
    }
    if as_json:
        emit_json(fields)
    else:
        emit_lines([f"{name}: {value}" for name, value in fields.items()])


def parse_subject_empty() -> Any:
    """An empty subject, for certificates named by their SAN only (RFC 5280 4.1.2.6)."""
    from cryptography import x509

    return x509.Name([])


@click.command()
@token_options
@output_options
def show(**kwargs: Any) -> None:
    """List the keys and certificates on the token."""
    from est_hw.cli.render import emit_json, emit_lines, inventory_summary

    as_json = _start(kwargs)
    with take(TokenArgs, kwargs).open() as backend:
        summary = inventory_summary(backend.name, backend.inventory())
    if as_json:
        emit_json({"status": "ok", **summary})
        return
    lines = [f"token: {summary['token']}"]
    for key in summary["keys"]:
        lines.append(f"key {key['label']!r} id={key['id']} type={key['key_type']}")
        cert = key["certificate"]
        if cert is None:
            lines.append("  certificate: none")
            continue
        lines += [f"  {name}: {cert[name]}" for name in ("subject", "issuer", "serial_number")]
        lines.append(f"  not_after: {cert['not_after']}")
        lines.append(f"  matches key: {'yes' if cert['matches_key'] else 'NO'}")
    for cert in summary["other_certificates"]:
        role = "CA certificate" if cert["is_ca"] else "certificate without key"
        lines.append(f"{role} {cert['label']!r} id={cert['id']}: {cert['subject']}")
    emit_lines(lines)


ALL = (cacerts, csrattrs, enroll, show)

"""The commands that read: cacerts, csrattrs, show (enrollment.py has those that write).

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
from est_hw.errors import EstHwError, UsageError


def start(kwargs: dict[str, Any]) -> bool:
    from est_hw.cli.main import setup_output

    as_json = bool(kwargs.pop("as_json"))
    setup_output(as_json, int(kwargs.pop("verbose")))
    return as_json


def write_pem(path: Path, certs: list[Any]) -> None:
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
    from est_hw.x509.trust import validate_cacerts

    as_json = start(kwargs)
    out = kwargs.pop("out")
    server = take(ServerArgs, kwargs).connect()
    with server.client() as client:
        certs = client.cacerts()
    validate_cacerts(certs, server.trust.anchors)
    if out is not None:
        write_pem(out, certs)
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

    as_json = start(kwargs)
    server = take(ServerArgs, kwargs).connect()
    with server.client() as client:
        attributes = client.csrattrs()
    summary = csrattrs_summary(attributes)
    if as_json:
        emit_json({"status": "ok", **summary})
    else:
        emit_lines([f"{name}: {value}" for name, value in summary.items()])


@click.command()
@token_options
@output_options
def show(**kwargs: Any) -> None:
    """List the keys and certificates on the token."""
    from est_hw.cli.render import emit_json, emit_lines, inventory_summary

    as_json = start(kwargs)
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
        if cert["location"]:
            lines.append(f"  stored in: {cert['location']}")
    for cert in summary["other_certificates"]:
        role = "CA certificate" if cert["is_ca"] else "certificate without key"
        lines.append(f"{role} {cert['label']!r} id={cert['id']}: {cert['subject']}")
    emit_lines(lines)


@click.command()
@server_options
@output_options
@click.option(
    "--in",
    "in_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="The CMC request (RFC 5272 PKIData in CMS): DER, PEM or base64.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Where to write the CMC response (DER).")  # fmt: skip
def fullcmc(**kwargs: Any) -> None:
    """Send a CMC request and save the CMC response (RFC 7030 4.3), uninterpreted."""
    import hashlib

    from est_hw.cli.render import emit_json, emit_lines
    from est_hw.est.codec import decode_base64_body

    as_json = start(kwargs)
    in_path: Path = kwargs.pop("in_path")
    out: Path = kwargs.pop("out")
    try:
        raw = in_path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --in {in_path}: {exc.strerror}") from None
    try:
        request = decode_base64_body(raw, what=f"--in {in_path}")
    except EstHwError as exc:
        raise UsageError(str(exc)) from None
    server = take(ServerArgs, kwargs).connect()
    with server.client() as client:
        response = client.fullcmc(request)
    try:
        out.write_bytes(response)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    fields = {"status": "ok", "response_bytes": len(response),
              "response_sha256": hashlib.sha256(response).hexdigest(), "out": str(out)}  # fmt: skip
    if as_json:
        emit_json(fields)
    else:
        emit_lines([f"{name}: {value}" for name, value in fields.items()])


ALL = (cacerts, csrattrs, fullcmc, show)

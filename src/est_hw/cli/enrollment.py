"""The commands that put certificates on the token: enroll, reenroll, renew.

Each parses, calls :mod:`est_hw.provision`, and renders; heavy modules are imported
inside the bodies so that ``est-hw --help`` stays fast.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from est_hw.cli.commands import start, write_pem
from est_hw.cli.options import (
    ServerArgs,
    TokenArgs,
    option_group,
    output_options,
    server_options,
    take,
    token_options,
)
from est_hw.errors import UsageError

if TYPE_CHECKING:
    from est_hw.keys.base import KeyBackend, TokenKey
    from est_hw.metrics import Metrics
    from est_hw.provision import ChannelBinding, EnrollResult
    from est_hw.provision.waiting import WaitPolicy
    from est_hw.tls.settings import ClientIdentity
    from est_hw.x509.csr import CsrContent

#: The values of :class:`est_hw.keys.base.KeyType` (kept here so --help imports nothing).
KEY_TYPES = ("ec-p256", "ec-p384", "rsa-2048", "rsa-3072", "rsa-4096")
#: The values of :class:`est_hw.provision.ChannelBinding`.
CHANNEL_BINDINGS = ("auto", "tls-unique", "tls-exporter", "none")

#: What enroll, reenroll and renew share about the exchange with the server: the CSR's
#: channel binding and what to do on HTTP 202 (read back with :func:`_exchange`).
exchange_options = option_group(
    [
        click.option(
            "--channel-binding",
            type=click.Choice(CHANNEL_BINDINGS),
            default="auto",
            show_default=True,
            help="Bind the CSR to the TLS connection (RFC 7030 3.5). auto: tls-unique at TLS "
            "1.2 when /csrattrs asks for challengePassword.",
        ),
        click.option(
            "--wait",
            is_flag=True,
            help="On HTTP 202 (pending), wait as the server's Retry-After says and resend the "
            "same CSR, up to --max-wait. Without it est-hw exits 7 and the next run resumes.",
        ),
        click.option(
            "--max-wait",
            default="1h",
            show_default=True,
            metavar="DURATION",
            help="With --wait: give up (exit 7) when the server asks to wait beyond this.",
        ),
    ]
)
out_option = click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the certificate and chain as PEM here.",
)
key_label_option = click.option(
    "--key-label", help="Label of the key on the token (default: the only enrolled key)."
)


#: The metrics of the running command when --timings was given (see :func:`timed`).
_timings: dict[str, Metrics | None] = {"metrics": None}


def timed(command: Callable[..., None]) -> Callable[..., None]:
    """Add ``--timings``: time per phase and counts of handshakes, requests, signatures."""

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        from est_hw import metrics

        wanted = kwargs.pop("timings")
        with metrics.recording() as recorded:
            _timings["metrics"] = recorded if wanted else None
            command(**kwargs)

    return click.option(
        "--timings",
        is_flag=True,
        help="Report time per phase (token open, keygen, CSR signing, TLS handshake, HTTP, "
        "verify, store, journal) and counts of TLS handshakes, HTTP requests and token signatures.",
    )(wrapper)


def _render(result: EnrollResult, status: str, as_json: bool, out: Path | None) -> None:
    from est_hw.cli.render import certificate_summary, emit_json, emit_lines
    from est_hw.x509.names import serial_hex

    if out is not None:
        write_pem(out, [result.certificate, *result.chain])
    summary = certificate_summary(result.certificate)
    fields: dict[str, Any] = {
        "status": status,
        "subject": summary["subject"],
        "issuer": summary["issuer"],
        "serial_number": summary["serial_number"],
        "not_after": summary["not_after"],
        "key_id": result.key.key_id.hex(),
        "key_label": result.key.label,
        "key_type": result.key.key_type.value,
        "token": result.token,
        "chain_length": len(result.chain),
        "resumed": result.resumed,
    }
    if result.previous is not None:
        fields["previous_serial_number"] = serial_hex(result.previous.serial_number)
        fields["rekeyed"] = result.previous.public_key() != result.certificate.public_key()
    recorded = _timings["metrics"]
    if recorded is not None:
        fields["timings"] = recorded.as_json()
    if as_json:
        emit_json(fields)
    else:
        emit_lines([f"{name}: {value}" for name, value in fields.items()])


def _exchange(kwargs: dict[str, Any]) -> tuple[ChannelBinding, WaitPolicy | None]:
    """The values of :data:`exchange_options`: the channel binding, and --wait / --max-wait
    as a polling policy (progress goes to stderr on a TTY)."""
    import sys

    from est_hw.provision import ChannelBinding
    from est_hw.provision.renew import parse_duration
    from est_hw.provision.waiting import WaitPolicy

    binding = ChannelBinding(kwargs.pop("channel_binding"))
    wait: bool = kwargs.pop("wait")
    max_wait = parse_duration(kwargs.pop("max_wait"), option="--max-wait")
    if not wait:
        return binding, None

    def progress(seconds: int, attempt: int) -> None:
        if sys.stderr.isatty():
            click.echo(
                f"est-hw: request pending (attempt {attempt}); retrying in {seconds} s", err=True
            )

    return binding, WaitPolicy(max_wait=max_wait.total_seconds(), progress=progress)


def _report_existing(token_args: TokenArgs, label: str, as_json: bool) -> bool:
    """--if-missing: report and return True when ``label`` is enrolled already."""
    from est_hw.cli.render import certificate_summary, emit_json, emit_lines
    from est_hw.provision.identity import existing_enrollment

    with token_args.open() as backend:
        certificate = existing_enrollment(backend, label)
        token = backend.name
    if certificate is None:
        return False
    summary = certificate_summary(certificate)
    fields = {"status": "skipped", "key_label": label, "token": token,
              **{k: summary[k] for k in ("subject", "serial_number", "not_after")}}  # fmt: skip
    if as_json:
        emit_json(fields)
    else:
        emit_lines([f"{name}: {value}" for name, value in fields.items()])
    return True


def _csr_content(subject_text: str | None, san_texts: tuple[str, ...]) -> CsrContent:
    """--subject / --san as CSR content (at least one is needed)."""
    from cryptography import x509

    from est_hw.x509.csr import CsrContent
    from est_hw.x509.names import parse_san, parse_subject

    if not subject_text and not san_texts:
        raise UsageError("give --subject and/or --san: the certificate needs a name")
    subject = parse_subject(subject_text) if subject_text else x509.Name([])
    return CsrContent(subject=subject, sans=tuple(parse_san(text) for text in san_texts))


def _key_label(label: str | None, token_args: TokenArgs, content: CsrContent) -> str:
    """--key-label, else the object of --key-uri, else the subject's CN, else "est-hw"."""
    from cryptography.x509.oid import NameOID

    uri = token_args.uri()
    if label is None and uri is not None and uri.object:
        label = uri.object
    if label is None:
        common_names = content.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        label = str(common_names[0].value) if common_names else "est-hw"
    return label


def _tls_identity(backend: KeyBackend, tls_key_text: str | None) -> ClientIdentity | None:
    """The key + certificate --tls-key-uri names on the token, for TLS client auth."""
    if tls_key_text is None:
        return None
    from est_hw.keys.uri import parse_pkcs11_uri
    from est_hw.provision import client_identity

    uri = parse_pkcs11_uri(tls_key_text)
    if not (uri.id or uri.object):
        raise UsageError("--tls-key-uri must name a key: object=LABEL or id=...")
    return client_identity(backend, backend.find_key(key_id=uri.id, label=uri.object))


def _decrypt_key(backend: KeyBackend, uri_text: str | None) -> TokenKey | None:
    """The decryption key --decrypt-key-uri names on the token."""
    if uri_text is None:
        return None
    from est_hw.keys.uri import parse_pkcs11_uri

    uri = parse_pkcs11_uri(uri_text)
    if not (uri.id or uri.object):
        raise UsageError("--decrypt-key-uri must name a key: object=LABEL or id=...")
    return backend.find_key(key_id=uri.id, label=uri.object)


def _named_key(backend: KeyBackend, token_args: TokenArgs, label: str | None) -> TokenKey:
    """The enrolled key named by --handle/--key-file (TPM), --key-label or --key-uri, else
    the only one."""
    from est_hw.provision import select_enrolled_key

    if token_args.selects_one_key():
        from est_hw.keys.tpm import TpmBackend

        assert isinstance(backend, TpmBackend)
        return backend.selected_key()

    uri = token_args.uri()
    key_id = uri.id if uri else None
    label = label or (uri.object if uri else None)
    return select_enrolled_key(backend, key_id=key_id, label=label)


@click.command()
@server_options
@token_options
@output_options
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    help="Key to generate inside the token (default: what /csrattrs asks for, else ec-p256).",
)
@click.option("--no-csrattrs", is_flag=True, help="Do not ask /csrattrs (RFC 7030 4.5).")
@click.option(
    "--if-missing",
    is_flag=True,
    help="Do nothing (status skipped, exit 0) when the token already holds this key label "
    "with a valid certificate: for first-boot units.",
)
@click.option("--key-label", help="Label of the new key and certificate (default: the CN).")
@click.option("--subject", help="Subject as an RFC 4514 string, e.g. CN=dev-1,O=Example.")
@click.option(
    "--san",
    multiple=True,
    metavar="KIND:VALUE",
    help="subjectAltName dns:NAME|ip:ADDR|uri:URI|email:ADDR (repeatable).",
)
@click.option(
    "--tls-key-uri",
    metavar="URI",
    help="Authenticate TLS with this key and its certificate on the token "
    "(e.g. an IDevID): pkcs11:object=LABEL or pkcs11:id=%01.",
)
@exchange_options
@out_option
@timed
def enroll(**kwargs: Any) -> None:
    """Generate a key on the token, enroll it, store the certificate (RFC 7030 4.2.1)."""
    from est_hw.keys.base import KeyType
    from est_hw.provision import EnrollRequest
    from est_hw.provision import enroll as enroll_on_token

    as_json = start(kwargs)
    out: Path | None = kwargs.pop("out")
    content = _csr_content(kwargs.pop("subject"), kwargs.pop("san"))
    key_type_text: str | None = kwargs.pop("key_type")
    use_csrattrs = not kwargs.pop("no_csrattrs")
    binding, wait = _exchange(kwargs)
    tls_key_text: str | None = kwargs.pop("tls_key_uri")
    if_missing: bool = kwargs.pop("if_missing")
    token_args = take(TokenArgs, kwargs)
    label = _key_label(kwargs.pop("key_label"), token_args, content)
    if if_missing and _report_existing(token_args, label, as_json):
        return
    server = take(ServerArgs, kwargs).connect()
    request = EnrollRequest(
        KeyType(key_type_text or "ec-p256"),
        label,
        content,
        key_type_explicit=key_type_text is not None,
        use_csrattrs=use_csrattrs,
    )
    with token_args.open() as backend:
        identity = _tls_identity(backend, tls_key_text)
        result = enroll_on_token(
            backend, server, request, tls_identity=identity, binding=binding, wait=wait
        )
    _render(result, "issued", as_json, out)


@click.command()
@server_options
@token_options
@output_options
@key_label_option
@click.option(
    "--rekey",
    is_flag=True,
    help="Generate a new key on the token; the old key and certificate are deleted "
    "only after the new certificate is stored.",
)
@click.option(
    "--key-type",
    type=click.Choice(KEY_TYPES),
    help="With --rekey: type of the new key (default: as the old one).",
)
@exchange_options
@out_option
@timed
def reenroll(**kwargs: Any) -> None:
    """Renew the certificate on the token now (RFC 7030 4.2.2, TLS signed by the token)."""
    from est_hw.keys.base import KeyType
    from est_hw.provision import reenroll as reenroll_on_token

    as_json = start(kwargs)
    out: Path | None = kwargs.pop("out")
    rekey: bool = kwargs.pop("rekey")
    key_type_text: str | None = kwargs.pop("key_type")
    if key_type_text and not rekey:
        raise UsageError("--key-type needs --rekey (re-enrollment keeps the key otherwise)")
    binding, wait = _exchange(kwargs)
    label: str | None = kwargs.pop("key_label")
    token_args = take(TokenArgs, kwargs)
    server = take(ServerArgs, kwargs).connect()
    with token_args.open() as backend:
        key = _named_key(backend, token_args, label)
        result = reenroll_on_token(
            backend,
            server,
            key,
            rekey=rekey,
            new_key_type=KeyType(key_type_text) if key_type_text else None,
            binding=binding,
            wait=wait,
        )
    _render(result, "issued", as_json, out)


@click.command()
@server_options
@token_options
@output_options
@key_label_option
@click.option(
    "--before",
    metavar="DURATION|PERCENT",
    help="Renew when at most this much is left: 30d, 12h, or 25% of the "
    "lifetime (default: the last third of the lifetime).",
)
@click.option(
    "--jitter",
    metavar="DURATION",
    help="Wait a random time up to this (e.g. 10m) before renewing, to spread a fleet.",
)
@click.option("--rekey", is_flag=True, help="Renew with a new key generated on the token.")
@exchange_options
@out_option
@timed
def renew(**kwargs: Any) -> None:
    """Re-enroll only if the certificate on the token is due (exit 0 either way)."""
    import datetime
    import logging
    import secrets
    import time

    from est_hw.cli.render import emit_json, emit_lines
    from est_hw.provision import reenroll as reenroll_on_token
    from est_hw.provision import stored_certificate
    from est_hw.provision.renew import RenewalWindow, parse_duration

    as_json = start(kwargs)
    out: Path | None = kwargs.pop("out")
    window = RenewalWindow.parse(kwargs.pop("before"))
    jitter_text: str | None = kwargs.pop("jitter")
    jitter = parse_duration(jitter_text, option="--jitter") if jitter_text else None
    rekey: bool = kwargs.pop("rekey")
    binding, wait = _exchange(kwargs)
    label: str | None = kwargs.pop("key_label")
    token_args = take(TokenArgs, kwargs)
    server_args = take(ServerArgs, kwargs)
    with token_args.open() as backend:
        key = _named_key(backend, token_args, label)
        current = stored_certificate(backend.inventory(), key)
        now = datetime.datetime.now(datetime.UTC)
        if not window.is_due(current, now):
            fields = {
                "status": "not_due",
                "not_after": current.not_valid_after_utc.isoformat(),
                "due_at": window.due_at(current).isoformat(),
                "key_label": key.label,
                "token": backend.name,
            }
            if as_json:
                emit_json(fields)
            else:
                emit_lines([f"{name}: {value}" for name, value in fields.items()])
            return
        if jitter is not None:
            delay = secrets.randbelow(int(jitter.total_seconds() * 1000) + 1) / 1000
            logging.getLogger("est_hw.renew").info("waiting %.1f s (--jitter)", delay)
            time.sleep(delay)
        server = server_args.connect()
        result = reenroll_on_token(backend, server, key, rekey=rekey, binding=binding, wait=wait)
    _render(result, "renewed", as_json, out)


@click.command()
@server_options
@token_options
@output_options
@click.option("--key-label", help="Label of the imported key and certificate (default: the CN).")
@click.option("--subject", help="Subject as an RFC 4514 string, e.g. CN=dev-1,O=Example.")
@click.option("--san", multiple=True, metavar="KIND:VALUE", help="subjectAltName (repeatable).")
@click.option(
    "--tls-key-uri",
    metavar="URI",
    help="Authenticate TLS with this key and its certificate on the token.",
)
@click.option(
    "--key-out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the server-generated key here (PKCS#8 PEM, mode 0600). Only "
    "when a copy outside the token is really needed.",
)
@click.option(
    "--decrypt-key-uri",
    metavar="URI",
    help="Ask for the key CMS-encrypted to this RSA key on the token (it needs "
    "CKA_DECRYPT), e.g. 'pkcs11:object=LABEL' (RFC 7030 4.4.1.2).",
)
@out_option
@timed
def serverkeygen(**kwargs: Any) -> None:
    """Let the server generate the key, import it into the token (RFC 7030 4.4)."""
    from est_hw.keys.base import KeyType
    from est_hw.provision import EnrollRequest
    from est_hw.provision.serverkeygen import serverkeygen as serverkeygen_into_token

    as_json = start(kwargs)
    out: Path | None = kwargs.pop("out")
    key_out: Path | None = kwargs.pop("key_out")
    content = _csr_content(kwargs.pop("subject"), kwargs.pop("san"))
    tls_key_text: str | None = kwargs.pop("tls_key_uri")
    decrypt_key_text: str | None = kwargs.pop("decrypt_key_uri")
    token_args = take(TokenArgs, kwargs)
    label = _key_label(kwargs.pop("key_label"), token_args, content)
    server = take(ServerArgs, kwargs).connect()
    # the key type is the server's choice; the record notes what came back
    request = EnrollRequest(KeyType.EC_P256, label, content, key_type_explicit=False)
    with token_args.open() as backend:
        identity = _tls_identity(backend, tls_key_text)
        decrypt_key = _decrypt_key(backend, decrypt_key_text)
        result = serverkeygen_into_token(
            backend,
            server,
            request,
            tls_identity=identity,
            key_out=key_out,
            decrypt_key=decrypt_key,
        )
    _render(result, "issued", as_json, out)


ALL = (enroll, reenroll, renew, serverkeygen)

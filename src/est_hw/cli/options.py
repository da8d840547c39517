"""The options shared by the commands, and what they turn into.

Click parses; these helpers collect the values into frozen dataclasses and turn them
into the objects the library takes (an open key backend, an authenticated server).
Heavy modules are imported inside the functions so that ``est-hw --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from est_hw.errors import UsageError

if TYPE_CHECKING:
    from est_hw.keys.base import KeyBackend
    from est_hw.keys.uri import Pkcs11Uri
    from est_hw.provision import ServerSession

F = TypeVar("F", bound=Callable[..., Any])
MODULE_ENV = "EST_HW_PKCS11_MODULE"


def _apply(decorators: list[Callable[[F], F]]) -> Callable[[F], F]:
    def wrap(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return wrap


output_options = _apply(
    [
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout."),
        click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv: debug)."),
    ]
)

server_options = _apply(
    [
        click.option("--server", envvar="EST_HW_SERVER", required=True, metavar="URL",
                     help="EST server, https://host[:port][/root] (env EST_HW_SERVER)."),
        click.option("--label", metavar="LABEL",
                     help="CA label: /.well-known/est/LABEL/ (RFC 7030 3.2.2)."),
        click.option("--ca-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="PEM file of explicit trust anchors (RFC 7030 3.6.1)."),
        click.option("--ca-fingerprint", metavar="sha256:HEX",
                     help="Bootstrap: accept /cacerts only if a certificate has this "
                          "fingerprint (RFC 7030 4.1.1)."),
        click.option("--system-trust", is_flag=True,
                     help="Also trust the OS trust store (RFC 7030 3.6.2)."),
        click.option("--username", envvar="EST_HW_USERNAME",
                     help="HTTP Basic/Digest user (env EST_HW_USERNAME)."),
        click.option("--password-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="File holding the HTTP password (else env EST_HW_PASSWORD, "
                          "else a prompt)."),
        click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0,
                     show_default=True, help="Seconds allowed for each request."),
    ]
)  # fmt: skip

token_options = _apply(
    [
        click.option("--module", metavar="PATH",
                     help=f"PKCS#11 module (else module-path of --key-uri, else env "
                          f"{MODULE_ENV})."),
        click.option("--slot", type=int, help="PKCS#11 slot id."),
        click.option("--token", "token_label", metavar="LABEL", help="PKCS#11 token label."),
        click.option("--key-uri", metavar="URI",
                     help="RFC 7512 URI: pkcs11:token=...;object=...;id=%01"),
        click.option("--pin-source", metavar="env:VAR|file:PATH",
                     help="Where the PIN is (default env EST_HW_PIN, else a prompt)."),
        click.option("--key-dir", type=click.Path(path_type=Path, file_okay=False),
                     help="Use software keys in this directory instead of a token "
                          "(development only)."),
    ]
)  # fmt: skip


@dataclass(frozen=True)
class ServerArgs:
    """The values of :data:`server_options`."""

    server: str
    label: str | None
    ca_file: Path | None
    ca_fingerprint: str | None
    system_trust: bool
    username: str | None
    password_file: Path | None
    timeout: float

    def connect(self) -> ServerSession:
        """Resolve the password, validate the URL and establish trust (RFC 7030 3.6)."""
        from est_hw.cli.secrets import resolve_password
        from est_hw.est.auth import HttpCredentials
        from est_hw.est.client import EstEndpoint
        from est_hw.provision import TrustOptions, establish_trust
        from est_hw.x509.trust import parse_fingerprint

        endpoint = EstEndpoint.parse(self.server, self.label)
        fingerprint = parse_fingerprint(self.ca_fingerprint) if self.ca_fingerprint else None
        password = resolve_password(self.password_file, self.username)
        credentials = (
            HttpCredentials(self.username, password)
            if self.username is not None and password is not None
            else None
        )
        options = TrustOptions(self.ca_file, fingerprint, self.system_trust)
        return establish_trust(endpoint, options, credentials=credentials, timeout=self.timeout)


@dataclass(frozen=True)
class TokenArgs:
    """The values of :data:`token_options`."""

    module: str | None
    slot: int | None
    token_label: str | None
    key_uri: str | None
    pin_source: str | None
    key_dir: Path | None

    def uri(self) -> Pkcs11Uri | None:
        """The parsed ``--key-uri``, if given."""
        from est_hw.keys.uri import parse_pkcs11_uri

        return parse_pkcs11_uri(self.key_uri) if self.key_uri else None

    def open(self) -> KeyBackend:
        """Open the selected token (or key directory) and log in."""
        if self.key_dir is not None:
            if self.module or self.slot is not None or self.token_label or self.key_uri:
                raise UsageError("--key-dir cannot be combined with PKCS#11 token options")
            from est_hw.keys.file import open_file_store

            return open_file_store(self.key_dir)
        import os

        from est_hw.cli.secrets import resolve_pin
        from est_hw.keys.pkcs11 import TokenSelector, open_pkcs11

        uri = self.uri()
        module = self.module or (uri.module_path if uri else None) or os.environ.get(MODULE_ENV)
        if uri and uri.module_path and self.module and uri.module_path != self.module:
            raise UsageError("--module and the module-path of --key-uri disagree")
        if not module:
            raise UsageError(f"no PKCS#11 module: use --module or set {MODULE_ENV}")
        selector = TokenSelector(
            module=module,
            slot=self.slot if self.slot is not None else (uri.slot_id if uri else None),
            token_label=self.token_label or (uri.token if uri else None),
            serial=uri.serial if uri else None,
        )
        pin_source = self.pin_source or (uri.pin_source if uri else None)
        pin = resolve_pin(pin_source, selector.token_label)
        return open_pkcs11(selector, pin)


T = TypeVar("T", ServerArgs, TokenArgs)


def take(cls: type[T], kwargs: dict[str, Any]) -> T:
    """Pop the fields of ``cls`` out of a command's keyword arguments."""
    return cls(**{field.name: kwargs.pop(field.name) for field in fields(cls)})

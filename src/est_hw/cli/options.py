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
    from est_hw.keys.base import KeyBackend, Secret
    from est_hw.keys.uri import Pkcs11Uri
    from est_hw.provision import ServerSession

F = TypeVar("F", bound=Callable[..., Any])
MODULE_ENV = "EST_HW_PKCS11_MODULE"
TCTI_ENV = "TPM2TOOLS_TCTI"


def option_group(decorators: list[Callable[[F], F]]) -> Callable[[F], F]:
    """One decorator for several click options, listed in ``--help`` in this order."""

    def wrap(func: F) -> F:
        for decorator in reversed(decorators):
            func = decorator(func)
        return func

    return wrap


output_options = option_group(
    [
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout."),
        click.option("-v", "--verbose", count=True, help="Log progress to stderr (-vv: debug)."),
    ]
)

server_options = option_group(
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

token_options = option_group(
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
        click.option("--tpm", is_flag=True, help="Keys live in a TPM 2.0 (see docs/tpm.md)."),
        click.option("--tcti", metavar="TCTI",
                     help=f"With --tpm: TPM access, e.g. swtpm:port=2321 (default env "
                          f"{TCTI_ENV}, else device:/dev/tpmrm0)."),
        click.option("--handle", metavar="0x81......",
                     help="With --tpm: persistent handle of the key (new keys: first free "
                          "in 0x81000100-0x810001ff)."),
        click.option("--key-file", type=click.Path(path_type=Path, dir_okay=False),
                     help="With --tpm: keep the key as a TSS2 PRIVATE KEY file instead."),
        click.option("--nv-index", metavar="0x01......",
                     help="With --tpm: NV index for the certificate (default: from the "
                          "handle, 0x81000100 -> 0x01000100)."),
        click.option("--owner-auth-source", metavar="env:VAR|file:PATH",
                     help="With --tpm: owner hierarchy auth, when it has one."),
        click.option("--key-auth-source", metavar="env:VAR|file:PATH",
                     help="With --tpm: auth value of the key."),
        click.option("--state-dir", type=click.Path(path_type=Path, file_okay=False),
                     help="With --tpm: where records and oversized chains go (default "
                          "/var/lib/est-hw/tpm/<tcti> as root, else ~/.local/state/...)."),
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

        return connect_to(
            self.server,
            self.label,
            ca_file=self.ca_file,
            ca_fingerprint=self.ca_fingerprint,
            system_trust=self.system_trust,
            username=self.username,
            password=resolve_password(self.password_file, self.username),
            timeout=self.timeout,
        )


def connect_to(
    url: str,
    label: str | None,
    *,
    ca_file: Path | None,
    ca_fingerprint: str | None,
    system_trust: bool,
    username: str | None,
    password: Secret | None,
    timeout: float,
) -> ServerSession:
    """Validate the URL and establish trust in the server (RFC 7030 3.6); HTTP
    credentials go with the session when both a username and a password are given."""
    from est_hw.est.auth import HttpCredentials
    from est_hw.est.client import EstEndpoint
    from est_hw.provision import TrustOptions, establish_trust
    from est_hw.x509.trust import parse_fingerprint

    endpoint = EstEndpoint.parse(url, label)
    fingerprint = parse_fingerprint(ca_fingerprint) if ca_fingerprint else None
    credentials = (
        HttpCredentials(username, password)
        if username is not None and password is not None
        else None
    )
    options = TrustOptions(ca_file, fingerprint, system_trust)
    return establish_trust(endpoint, options, credentials=credentials, timeout=timeout)


@dataclass(frozen=True)
class TokenArgs:
    """The values of :data:`token_options`."""

    module: str | None
    slot: int | None
    token_label: str | None
    key_uri: str | None
    pin_source: str | None
    key_dir: Path | None
    tpm: bool
    tcti: str | None
    handle: str | None
    key_file: Path | None
    nv_index: str | None
    owner_auth_source: str | None
    key_auth_source: str | None
    state_dir: Path | None

    def uri(self) -> Pkcs11Uri | None:
        """The parsed ``--key-uri``, if given."""
        from est_hw.keys.uri import parse_pkcs11_uri

        return parse_pkcs11_uri(self.key_uri) if self.key_uri else None

    def open(self) -> KeyBackend:
        """Open the selected token (or TPM, or key directory) and log in."""
        from est_hw import metrics

        with metrics.phase("token_open"):
            return self._open()

    def _open(self) -> KeyBackend:
        tpm_only = (self.tcti, self.handle, self.key_file, self.nv_index,
                    self.owner_auth_source, self.key_auth_source, self.state_dir)  # fmt: skip
        if not self.tpm and any(value is not None for value in tpm_only):
            raise UsageError("--tcti, --handle, --key-file, --nv-index, ... need --tpm")
        if self.tpm:
            return self._open_tpm()
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

    def _open_tpm(self) -> KeyBackend:
        """A TPM through its TCTI (env TPM2TOOLS_TCTI, else /dev/tpmrm0)."""
        import os

        from est_hw.cli.secrets import from_source
        from est_hw.keys.tpm_tcti import DEFAULT_TCTI, TpmSelector, parse_tpm_handle

        if self.module or self.slot is not None or self.token_label or self.key_uri:
            raise UsageError("--tpm cannot be combined with PKCS#11 token options")
        if self.key_dir is not None or self.pin_source is not None:
            raise UsageError("--tpm takes --key-auth-source, not --key-dir or --pin-source")
        if self.handle is not None and self.key_file is not None:
            raise UsageError("give --handle or --key-file, not both")
        tcti = self.tcti or os.environ.get(TCTI_ENV) or DEFAULT_TCTI
        selector = TpmSelector(
            tcti=tcti,
            state_dir=self.state_dir or default_tpm_state_dir(tcti),
            owner_auth=from_source(self.owner_auth_source, "owner auth")
            if self.owner_auth_source
            else None,
            key_auth=from_source(self.key_auth_source, "key auth")
            if self.key_auth_source
            else None,
            handle=parse_tpm_handle(self.handle) if self.handle else None,
            key_file=self.key_file,
            nv_index=parse_tpm_handle(self.nv_index, what="NV index") if self.nv_index else None,
        )
        try:
            from est_hw.keys.tpm import open_tpm
        except ImportError as exc:
            raise UsageError(
                f"--tpm needs the tpm extra (pip install 'est-hw[tpm]'): {exc}"
            ) from None
        return open_tpm(selector)

    def selects_one_key(self) -> bool:
        """--handle or --key-file name the key itself (TPM)."""
        return self.tpm and (self.handle is not None or self.key_file is not None)


def default_tpm_state_dir(tcti: str) -> Path:
    """/var/lib/est-hw/tpm/<tcti> as root, else $XDG_STATE_HOME/est-hw/tpm/<tcti>."""
    import os

    from est_hw.keys.tpm_tcti import state_dir_name

    name = state_dir_name(tcti)
    if os.geteuid() == 0:
        return Path("/var/lib/est-hw/tpm") / name
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "est-hw" / "tpm" / name


T = TypeVar("T", ServerArgs, TokenArgs)


def take(cls: type[T], kwargs: dict[str, Any]) -> T:
    """Pop the fields of ``cls`` out of a command's keyword arguments.

    For :class:`TokenArgs`, options of the backend *not* selected are dropped when they
    come from the config file or the environment rather than the command line: a
    ``[common]`` ``pin_source`` must not break ``--tpm``, nor a ``tcti`` a PKCS#11
    command (docs/configuration.md).  On the command line they still conflict.
    """
    values = {field.name: kwargs.pop(field.name) for field in fields(cls)}
    if cls is TokenArgs:
        not_selected = _TPM_ONLY if not values["tpm"] else _PKCS11_ONLY
        for name in not_selected:
            if values[name] is not None and not _from_command_line(name):
                values[name] = None
    return cls(**values)


#: TokenArgs fields that only a PKCS#11 token (or --key-dir) uses, and only a TPM uses.
_PKCS11_ONLY = ("module", "slot", "token_label", "key_uri", "pin_source", "key_dir")
_TPM_ONLY = ("tcti", "handle", "key_file", "nv_index", "owner_auth_source",
             "key_auth_source", "state_dir")  # fmt: skip


def _from_command_line(name: str) -> bool:
    """Whether the current command's parameter ``name`` was given as a flag."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return True  # called outside click: every value is explicit
    return ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE

"""Configuration from a TOML file and EST_HW_* environment variables, under the flags.

Precedence, highest first: a flag on the command line, an environment variable
(``EST_HW_<COMMAND>_<OPTION>``, then ``EST_HW_<OPTION>``), the config file (the command's
table, then ``[common]`` / the top level), the built-in default.  Click does the
arbitration: the file becomes the group's ``default_map`` and every option gets its
environment variable names (:func:`install_envvars`).  ``est-hw config show`` prints
the result with where each value came from.  docs/configuration.md has the details.

The file is looked for at ``--config PATH`` (env EST_HW_CONFIG), else
``$XDG_CONFIG_HOME/est-hw/config.toml``, else ``/etc/est-hw/config.toml``.  Secrets are
refused in it: only ``password_file`` and ``*_source`` name where a secret is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from est_hw.errors import UsageError
from est_hw.tomlfile import read_toml

CONFIG_ENV = "EST_HW_CONFIG"
SYSTEM_CONFIG = Path("/etc/est-hw/config.toml")
COMMON = "common"
ENV_PREFIX = "EST_HW"
#: Environment variables the commands read themselves when the option is unset; they
#: are environment, so they win over the file's value of that option.
FALLBACK_ENV = {
    "module": "EST_HW_PKCS11_MODULE",
    "pin_source": "EST_HW_PIN",
    "password_file": "EST_HW_PASSWORD",
}
#: Commands whose options the file and the environment do not set.
_NOT_CONFIGURED = frozenset({"config"})


@dataclass(frozen=True)
class LoadedConfig:
    """The config file as the commands see it.

    :param default_map: command -> parameter name -> value (click's ``default_map``).
    :param origins: command -> parameter name -> ``[table]`` the value came from.
    :param overridden: command -> parameter name -> the fallback variable that wins.
    """

    path: Path | None
    default_map: dict[str, dict[str, Any]] = field(default_factory=dict)
    origins: dict[str, dict[str, str]] = field(default_factory=dict)
    overridden: dict[str, dict[str, str]] = field(default_factory=dict)


def config_paths() -> list[Path]:
    """Where the config file is looked for, in order, when --config is not given."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path(base) / "est-hw" / "config.toml", SYSTEM_CONFIG]


def apply_config(ctx: click.Context, explicit: Path | None, disabled: bool) -> None:
    """Group callback: load the config file into ``ctx.default_map`` (and ``ctx.obj``)."""
    assert isinstance(ctx.command, click.Group)
    path = None if disabled else explicit or _first_existing(config_paths())
    if path is not None:
        path = path.absolute()
    loaded = load_config(path, ctx.command) if path is not None else LoadedConfig(None)
    ctx.default_map = loaded.default_map
    ctx.meta["est_hw.config"] = loaded


def _first_existing(paths: list[Path]) -> Path | None:
    return next((path for path in paths if path.is_file()), None)


def option_name(param: click.Option) -> str:
    """The name of an option in the config file: its long flag, ``-`` as ``_``."""
    longs = [opt for opt in param.opts if opt.startswith("--")]
    return (longs[0] if longs else param.opts[0]).lstrip("-").replace("-", "_")


def configurable(command: click.Command) -> Iterator[click.Option]:
    """The options of ``command`` that the file and the environment may set."""
    for param in command.params:
        if isinstance(param, click.Option) and param.expose_value and param.name:
            yield param


def leaf_commands(group: click.Group) -> dict[str, click.Command]:
    """The commands the file configures, by name."""
    return {
        name: command
        for name, command in group.commands.items()
        if name not in _NOT_CONFIGURED and not isinstance(command, click.Group)
    }


def install_envvars(group: click.Group) -> None:
    """Give every option ``EST_HW_<COMMAND>_<OPTION>`` and ``EST_HW_<OPTION>`` variables.

    Variables an option already had (EST_HW_SERVER, EST_HW_USERNAME) keep working.
    """
    for name, command in leaf_commands(group).items():
        for param in configurable(command):
            upper = option_name(param).upper()
            names = [f"{ENV_PREFIX}_{name.upper()}_{upper}", f"{ENV_PREFIX}_{upper}"]
            existing = param.envvar
            extra = [existing] if isinstance(existing, str) else list(existing or [])
            param.envvar = names + [var for var in extra if var not in names]


def load_config(path: Path, group: click.Group) -> LoadedConfig:
    """Read and check the config file.

    :raises UsageError: unreadable, not TOML, an unknown table or option, a value of the
        wrong type, or a secret written into the file.
    """
    from est_hw.provision.plan import refuse_secrets

    data = read_toml(path, what="config file")
    refuse_secrets(data, f"config file {path}")
    commands = leaf_commands(group)
    common = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    if COMMON in tables:
        overlap = sorted(set(common) & set(tables[COMMON]))
        if overlap:
            raise UsageError(
                f"config file {path}: {overlap[0]!r} is set at the top level and in [common]"
            )
        common.update(tables.pop(COMMON))
    unknown_tables = sorted(set(tables) - set(commands))
    if unknown_tables:
        raise UsageError(
            f"config file {path}: unknown table [{unknown_tables[0]}] (tables: [common], "
            + ", ".join(f"[{name}]" for name in sorted(commands))
            + ")"
        )
    loaded = LoadedConfig(path)
    reader = _Reader(path)
    used_common: set[str] = set()
    for name, command in commands.items():
        values, origins = reader.command(name, command, common, tables.get(name, {}))
        used_common |= {key for key in common if _param_for(command, key) is not None}
        for param_name, variable in FALLBACK_ENV.items():
            if param_name in values and os.environ.get(variable):
                del values[param_name]
                loaded.overridden.setdefault(name, {})[param_name] = variable
        if values:
            loaded.default_map[name] = values
            loaded.origins[name] = origins
    unused = sorted(set(common) - used_common)
    if unused:
        raise UsageError(f"config file {path}: no command has an option {unused[0]!r}")
    return loaded


def _param_for(command: click.Command, key: str) -> click.Option | None:
    """The option a file key names: its long flag (``key_type``) or parameter name."""
    wanted = key.replace("-", "_")
    for param in configurable(command):
        if wanted in (option_name(param), param.name):
            return param
    return None


@dataclass(frozen=True)
class _Reader:
    """Checks one value against its option and resolves relative paths."""

    path: Path

    def command(
        self,
        name: str,
        command: click.Command,
        common: dict[str, Any],
        table: dict[str, Any],
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The defaults of one command: ``[common]`` first, then its own table."""
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for key, value in common.items():
            param = _param_for(command, key)
            if param is not None and param.name:
                values[param.name] = self.value(command, param, value, COMMON)
                origins[param.name] = COMMON
        for key, value in table.items():
            param = _param_for(command, key)
            if param is None or not param.name:
                known = ", ".join(sorted(option_name(p) for p in configurable(command)))
                raise UsageError(
                    f"config file {self.path}: [{name}] has no option {key!r} (options: {known})"
                )
            values[param.name] = self.value(command, param, value, name)
            origins[param.name] = name
        return values, origins

    def value(self, command: click.Command, param: click.Option, value: Any, table: str) -> Any:
        where = f"config file {self.path}: [{table}] {option_name(param)}"
        if param.multiple and isinstance(value, str):
            value = [value]
        if isinstance(value, dict) or (
            isinstance(value, list) and not (param.multiple or param.nargs != 1)
        ):
            raise UsageError(f"{where}: expected a single value")
        if isinstance(value, list) and not all(isinstance(v, str | int | float) for v in value):
            raise UsageError(f"{where}: expected a list of plain values")
        if isinstance(param.type, click.Path):
            value = (
                [self.resolve(v) for v in value] if isinstance(value, list) else self.resolve(value)
            )
        elif option_name(param).endswith("_source") and isinstance(value, str):
            kind, sep, ref = value.partition(":")
            if kind == "file" and sep and ref:
                value = f"file:{self.resolve(ref)}"
        try:
            param.type_cast_value(click.Context(command), value)
        except click.BadParameter as exc:
            raise UsageError(f"{where}: {exc.message}") from None
        return value

    def resolve(self, value: Any) -> Any:
        """A relative path is relative to the directory of the config file."""
        if not isinstance(value, str):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else self.path.resolve().parent / path)


# --- est-hw config show ---------------------------------------------------------------------


@click.group(name="config")
def config_group() -> None:
    """Inspect the configuration (file, EST_HW_* environment, flags)."""


@config_group.command(context_settings={"ignore_unknown_options": True})
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
@click.option("--all", "show_all", is_flag=True, help="Also list options left at empty defaults.")
@click.argument("command_name", metavar="[COMMAND]", required=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED, metavar="[FLAGS]...")
@click.pass_context
def show(
    ctx: click.Context,
    as_json: bool,
    show_all: bool,
    command_name: str | None,
    args: tuple[str, ...],
) -> None:
    """Print the effective configuration of every command (or of COMMAND run with FLAGS),
    with where each value comes from: flag, env, file or default.  Secrets are never
    shown, only where they would be read from."""
    from est_hw.cli.render import emit_json, emit_lines

    root = ctx.find_root()
    group = root.command
    assert isinstance(group, click.Group)
    loaded: LoadedConfig = root.meta.get("est_hw.config") or LoadedConfig(None)
    commands = leaf_commands(group)
    if command_name is not None and command_name not in commands:
        raise UsageError(f"no command {command_name!r} (commands: {', '.join(sorted(commands))})")
    if args and command_name is None:
        raise UsageError("flags need a COMMAND to apply to")
    shown = {command_name: commands[command_name]} if command_name else commands
    result = {
        name: effective(root, loaded, name, command, list(args) if command_name else [])
        for name, command in sorted(shown.items())
    }
    if as_json:
        path = str(loaded.path) if loaded.path else None
        emit_json({"status": "ok", "config_file": path, "commands": result})
        return
    lines = [f"config file: {loaded.path or 'none'}"]
    for name, entries in result.items():
        lines.append(f"[{name}]")
        for key, entry in entries.items():
            if (
                not show_all
                and entry["source"] == "default"
                and entry["value"] in (None, False, [])
            ):
                continue
            origin = entry["source"] + (f" {entry['from']}" if entry.get("from") else "")
            lines.append(f"  {key} = {_shown(entry['value'])}  ({origin})")
    emit_lines(lines)


def effective(
    root: click.Context, loaded: LoadedConfig, name: str, command: click.Command, args: list[str]
) -> dict[str, dict[str, Any]]:
    """Each option of ``command``: its value as the command would see it, and its source."""
    sub = command.make_context(name, args, parent=root, resilient_parsing=True)
    entries: dict[str, dict[str, Any]] = {}
    for param in configurable(command):
        assert param.name is not None
        source = sub.get_parameter_source(param.name)
        value = _jsonable(sub.params.get(param.name))
        entry: dict[str, Any] = {"value": redact(value), "source": "default", "from": None}
        if source is click.core.ParameterSource.COMMANDLINE:
            entry["source"] = "flag"
        elif source is click.core.ParameterSource.ENVIRONMENT:
            entry.update(source="env", **{"from": _set_variable(param)})
        elif source is click.core.ParameterSource.DEFAULT_MAP:
            table = loaded.origins.get(name, {}).get(param.name, COMMON)
            entry.update(source="file", **{"from": f"[{table}]"})
        if param.name == "module" and entry["source"] == "default":
            variable = FALLBACK_ENV["module"]
            if os.environ.get(variable):
                entry.update(value=os.environ[variable], source="env", **{"from": variable})
        entries[option_name(param)] = entry
    for secret, option, variable in (("pin", "pin_source", "EST_HW_PIN"),
                                     ("password", "password_file", "EST_HW_PASSWORD")):  # fmt: skip
        if option in entries:
            entries[secret] = _secret_entry(entries[option], variable)
    if "password" in entries and not _given(entries, "username", "password_file"):
        # no username, no HTTP authentication: nothing would be read or prompted for
        entries["password"] = {"value": None, "source": "unused", "from": "without --username"}
    return entries


def _given(entries: dict[str, Any], *options: str) -> bool:
    """Whether any of ``options`` has a value in ``entries``."""
    return any(entries.get(option, {}).get("value") is not None for option in options)


def _secret_entry(option: dict[str, Any], variable: str) -> dict[str, Any]:
    """Where a PIN or password would be read from; never its value."""
    hidden = "(secret, not shown)"
    if option["value"] is not None:
        kind = "file" if not str(option["value"]).startswith("env:") else "env"
        reference = str(option["value"]).removeprefix("file:").removeprefix("env:")
        return {"value": hidden, "source": kind, "from": reference}
    if os.environ.get(variable):
        return {"value": hidden, "source": "env", "from": variable}
    return {"value": None, "source": "prompt", "from": None}


def _set_variable(param: click.Option) -> str | None:
    names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar or [])
    return next((var for var in names if os.environ.get(var)), None)


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if type(value).__name__ == "Sentinel" or value.__class__.__module__.startswith("click"):
        return None  # click's UNSET: nothing given
    return str(value)


def redact(value: Any) -> Any:
    """Hide what could be a secret inside a value (a URI's pin-value, a URL's userinfo)."""
    import re

    if isinstance(value, list):
        return [redact(v) for v in value]
    if not isinstance(value, str):
        return value
    value = re.sub(r"(pin-value=)[^;?&]*", r"\1***", value, flags=re.IGNORECASE)
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", value)


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return "(none)" if value is None else str(value)

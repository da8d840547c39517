"""The ``est-hw`` command: the group, logging, and the one place errors become exit codes.

Exit codes: 0 ok; 2 usage; 3 authentication refused by the server; 4 token error;
5 server unreachable, server or protocol error; 6 trust failure; 7 pending (HTTP 202);
8 ``provision``: at least one device failed (the others were provisioned or skipped).
"""

from __future__ import annotations

import atexit
import gc
import sys
from pathlib import Path

import click

from est_hw import __version__
from est_hw.cli import commands, config, enrollment, provisioning
from est_hw.errors import EstHwError

#: Set by :func:`setup_output`; an error is then also reported as a JSON object.
_state = {"json": False}


def setup_output(as_json: bool, verbose: int) -> None:
    """Record --json and configure logging to stderr for -v / -vv."""
    import logging  # here, not at the top: --help and usage errors need no logging

    _state["json"] = as_json
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="est-hw: %(levelname)s: %(message)s")
    # Library warnings (e.g. cryptography's BER fallback for a server's PKCS#7) go to the
    # log, so stderr stays one line per error unless -v is given.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.INFO if verbose else logging.ERROR)
    if verbose < 2:
        # httpx logs every request at INFO; keep -v about est-hw's own steps.
        logging.getLogger("httpx").setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="est-hw")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar=config.CONFIG_ENV,
    metavar="PATH",
    help="Config file (default $XDG_CONFIG_HOME/est-hw/config.toml, else "
    "/etc/est-hw/config.toml; env EST_HW_CONFIG).",
)
@click.option("--no-config", is_flag=True, help="Read no config file.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, no_config: bool) -> None:
    """EST (RFC 7030) enrollment for keys inside a PKCS#11 token or a TPM 2.0.

    Every option can also come from an EST_HW_* environment variable or the config
    file; flags win over the environment, which wins over the file (docs/configuration.md).

    Exit codes: 0 ok, 2 usage, 3 authentication refused, 4 token error,
    5 server or protocol error, 6 trust failure, 7 enrollment pending,
    8 provision: some devices failed.
    """
    config.apply_config(ctx, config_path, no_config)


for _command in (*commands.ALL, *enrollment.ALL, *provisioning.ALL, config.config_group):
    cli.add_command(_command)
config.install_envvars(cli)


def report_error(exc: EstHwError) -> None:
    """One line on stderr; with --json also one object on stdout."""
    message = str(exc) or type(exc).__name__
    click.echo(f"est-hw: error: {message}", err=True)
    if _state["json"]:
        from est_hw.cli.render import emit_json

        obj: dict[str, object] = {"status": "error", "error": message, "exit_code": exc.exit_code}
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            obj["status"] = "pending"
            obj["retry_after"] = retry_after
        emit_json(obj)


def main() -> None:
    """Console-script entry point: run the CLI and map errors to exit codes."""
    # Nothing allocated before exit needs collecting: freezing spares the interpreter a
    # full collection over cryptography/httpx/tlslite objects at shutdown (60-80 ms).
    atexit.register(gc.freeze)
    try:
        status = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("est-hw: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        if _state["json"] or "--json" in sys.argv[1:]:  # a parse error: before setup_output
            from est_hw.cli.render import emit_json

            emit_json({"status": "error", "error": exc.format_message(),
                       "exit_code": exc.exit_code})  # fmt: skip
        sys.exit(exc.exit_code)
    except EstHwError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("est-hw: interrupted", err=True)
        sys.exit(130)
    sys.exit(status if isinstance(status, int) else 0)


if __name__ == "__main__":
    main()

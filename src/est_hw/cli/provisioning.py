"""``est-hw provision PLAN.toml``: enroll every device a plan names, concurrently.

Parses, resolves the secrets the plan points at, connects, and hands the devices to
:func:`est_hw.provision.batch.run_batch`; prints progress, writes the per-device report
and picks the exit code (8 when a device failed).  docs/provisioning.md has the plan.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import click

from est_hw.cli.commands import start
from est_hw.cli.options import connect_to, output_options
from est_hw.errors import EstHwError, UsageError

if TYPE_CHECKING:
    from est_hw.keys.base import Secret
    from est_hw.provision import ServerSession
    from est_hw.provision.batch import Device, DeviceOutcome, DeviceSecrets
    from est_hw.provision.plan import DeviceGroup, Plan, ServerPlan

#: Exit code when at least one device failed (the others were issued or skipped).
SOME_DEVICES_FAILED = 8
PIN_SOURCE_DEFAULT = "env:EST_HW_PIN"


@click.command()
@click.argument("plan_path", metavar="PLAN.toml", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Devices provisioned at the same time: est-hw itself and up to N-1 worker processes.",
)
@click.option(
    "--workers",
    type=click.Choice(["auto", "now"]),
    default="auto",
    show_default=True,
    help="When the worker processes of --jobs start: once the devices left would take "
    "est-hw longer than starting them (auto), or at once (now, e.g. for slow tokens).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write one JSON line per device here (replaced; see --append).",
)
@click.option("--append", is_flag=True, help="Append to --report instead of replacing it.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="List the devices and the names they would get; touch no token or server.",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Live progress on stderr (default: when stderr is a terminal).",
)
@output_options
def provision(**kwargs: Any) -> int:
    """Enroll every device of a provisioning plan (docs/provisioning.md).

    Devices already provisioned are skipped, unfinished ones resumed; a failed device does
    not stop the others.  Exit 0 when every device was issued or skipped, 8 when at least
    one failed, 7 when none failed but some are pending (HTTP 202).
    """
    import dataclasses

    from est_hw.provision.batch import expand_devices
    from est_hw.provision.plan import load_plan

    as_json = start(kwargs)
    plan = load_plan(kwargs["plan_path"])
    plan = dataclasses.replace(plan, groups=tuple(_with_defaults(g) for g in plan.groups))
    devices = expand_devices(plan)
    if not devices:
        raise UsageError(f"plan {plan.path}: the device groups select no device")
    if kwargs["dry_run"]:
        return _dry_run(plan, devices, as_json)
    secrets = _group_secrets(plan)
    server = _connect(plan.server)
    _forget_secret_variables(plan)
    progress = kwargs["progress"]
    if progress is None:
        progress = sys.stderr.isatty()
    return _run(plan, devices, server, secrets, kwargs, as_json=as_json, progress=progress)


def _with_defaults(group: DeviceGroup) -> DeviceGroup:
    """A TPM group without state_dir gets the base of ``est-hw --tpm``'s default."""
    import dataclasses

    from est_hw.cli.options import default_tpm_state_dir

    if group.kind == "tpm" and group.state_dir is None:
        return dataclasses.replace(group, state_dir=default_tpm_state_dir("tpm").parent)
    return group


def _group_secrets(plan: Plan) -> dict[int, DeviceSecrets | EstHwError]:
    """Each group's PIN or TPM auth values, read now; a group whose source fails keeps
    the error, and only its devices fail."""
    from est_hw.cli.secrets import from_source
    from est_hw.provision.batch import DeviceSecrets

    secrets: dict[int, DeviceSecrets | EstHwError] = {}
    for group in plan.groups:
        try:
            if group.kind == "pkcs11":
                pin = from_source(group.pin_source or PIN_SOURCE_DEFAULT, "PIN")
                secrets[group.number] = DeviceSecrets(pin=pin)
            else:
                owner = group.owner_auth_source
                key = group.key_auth_source
                secrets[group.number] = DeviceSecrets(
                    owner_auth=from_source(owner, "owner auth") if owner else None,
                    key_auth=from_source(key, "key auth") if key else None,
                )
        except EstHwError as exc:
            secrets[group.number] = exc
    return secrets


def _secret_variables(plan: Plan) -> set[str]:
    """The environment variables the plan's secrets are read from."""
    from est_hw.cli.secrets import PASSWORD_ENV

    sources = [plan.server.password_source]
    for group in plan.groups:
        if group.kind == "pkcs11":
            sources.append(group.pin_source or PIN_SOURCE_DEFAULT)
        sources += [group.owner_auth_source, group.key_auth_source]
    names = {source[4:] for source in sources if source and source.startswith("env:")}
    server = plan.server
    if server.username and not server.password_file and not server.password_source:
        names.add(PASSWORD_ENV)
    return names


def _forget_secret_variables(plan: Plan) -> None:
    """Drop the variables that held the secrets, once read: the worker processes of
    ``--jobs N`` inherit est-hw's environment, and they get the secrets over a pipe."""
    import os

    for name in _secret_variables(plan):
        os.environ.pop(name, None)


def _connect(server: ServerPlan) -> ServerSession:
    """Resolve the password, validate the URL and establish trust (RFC 7030 3.6)."""
    from est_hw.cli.secrets import from_source, resolve_password

    password: Secret | None
    if server.password_source is not None:
        password = from_source(server.password_source, "password")
    else:
        password = resolve_password(server.password_file, server.username)
    return connect_to(
        server.url,
        server.label,
        ca_file=server.ca_file,
        ca_fingerprint=server.ca_fingerprint,
        system_trust=server.system_trust,
        username=server.username,
        password=password,
        timeout=server.timeout,
    )


def _run(
    plan: Plan,
    devices: tuple[Device, ...],
    server: ServerSession,
    secrets: dict[int, DeviceSecrets | EstHwError],
    kwargs: dict[str, Any],
    *,
    as_json: bool,
    progress: bool,
) -> int:
    import contextlib

    from est_hw.provision.batch import run_batch

    report_path: Path | None = kwargs["report"]
    counts: Counter[str] = Counter()
    failures: list[dict[str, Any]] = []
    display = _Progress(len(devices), kwargs["jobs"], enabled=progress)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        report = stack.enter_context(_open_report(report_path, kwargs["append"]))
        outcomes = stack.enter_context(
            contextlib.closing(
                run_batch(
                    plan, devices, server, secrets, jobs=kwargs["jobs"], workers=kwargs["workers"]
                )
            )
        )
        stack.callback(display.finish)
        for outcome in outcomes:
            counts[outcome.status] += 1
            if report is not None:
                _write_line(report, report_line(outcome))
            if outcome.status in ("failed", "pending"):
                failures.append(
                    {"device": outcome.device.name, "status": outcome.status,
                     "error": outcome.error, "exit_code": outcome.exit_code}
                )  # fmt: skip
            display.update(outcome, counts)
    elapsed = time.monotonic() - started
    code = SOME_DEVICES_FAILED if counts["failed"] else 7 if counts["pending"] else 0
    summary: dict[str, Any] = {
        "status": {0: "ok", 7: "pending"}.get(code, "failed"),
        "devices": len(devices),
        **{name: counts[name] for name in ("issued", "skipped", "failed", "pending")},
        "elapsed_s": round(elapsed, 3),
        "devices_per_second": round(len(devices) / elapsed, 2) if elapsed > 0 else None,
        "jobs": kwargs["jobs"],
        "report": str(report_path) if report_path is not None else None,
        "failures": failures,
        "exit_code": code,
    }
    from est_hw.cli.render import emit_json, emit_lines

    if as_json:
        emit_json(summary)
    else:
        shown = {k: v for k, v in summary.items() if k not in ("failures", "status")}
        emit_lines([f"{name}: {value}" for name, value in shown.items()])
    return code


def report_line(outcome: DeviceOutcome) -> dict[str, Any]:
    """The --report object of one device (every key always present)."""
    device = outcome.device
    names = outcome.names
    return {
        "device": device.name,
        "index": device.index,
        "group": device.group.number,
        "status": outcome.status,
        "token_label": device.token_label,
        "token_serial": device.token_serial,
        "slot": device.slot,
        "tcti": device.tcti,
        "key_label": names.key_label if names else None,
        "subject": names.subject if names else None,
        "serial": outcome.serial_number,
        "not_after": outcome.not_after.isoformat() if outcome.not_after else None,
        "resumed": outcome.resumed,
        "retry_after": outcome.retry_after,
        "error": outcome.error,
        "exit_code": outcome.exit_code,
        "timings": dict(outcome.timings),
        "started_at": outcome.started_at.isoformat() if outcome.started_at else None,
        "finished_at": outcome.finished_at.isoformat(),
        "worker": outcome.worker,
        "attempts": outcome.attempts,
    }


def _open_report(path: Path | None, append: bool) -> Any:
    import contextlib

    if path is None:
        return contextlib.nullcontext(None)
    try:
        return path.open("a" if append else "w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write the report {path}: {exc.strerror}") from None


def _write_line(report: IO[str], obj: dict[str, Any]) -> None:
    """One JSON line, on disk before the next device is reported (a killed run keeps it)."""
    import json
    import os

    report.write(json.dumps(obj, sort_keys=False) + "\n")
    report.flush()
    os.fsync(report.fileno())


def _dry_run(plan: Plan, devices: tuple[Device, ...], as_json: bool) -> int:
    from est_hw.cli.render import emit_json, emit_lines

    rows = []
    for device in devices:
        # the template variables, with the numbers as numbers (as in the report)
        row: dict[str, Any] = {"device": device.name, **device.variables(),
                               "index": device.index}  # fmt: skip
        if device.slot is not None:
            row["slot"] = device.slot
        try:
            names = plan.names_for(device.variables())
            row.update(key_label=names.key_label, subject=names.subject, san=list(names.sans))
        except EstHwError as exc:
            row["error"] = str(exc)
        rows.append(row)
    if as_json:
        emit_json({"status": "ok", "devices": rows})
    else:
        emit_lines(
            [
                f"{row['index']:>4} {row['device']}: "
                + (f"error: {row['error']}" if "error" in row else
                   f"key {row['key_label']!r} subject {row['subject']!r} san {row['san']}")
                for row in rows
            ]
        )  # fmt: skip
    return 0


class _Progress:
    """One status line on stderr, redrawn per device; failures as lines above it."""

    def __init__(self, total: int, jobs: int, *, enabled: bool) -> None:
        self.total = total
        self.jobs = jobs
        self.enabled = enabled
        self.started = time.monotonic()
        self.drawn = False

    def update(self, outcome: DeviceOutcome, counts: Counter[str]) -> None:
        if outcome.status in ("failed", "pending"):
            self._clear()
            click.echo(
                f"est-hw: {outcome.device.name}: {outcome.status}: {outcome.error}", err=True
            )
        if not self.enabled:
            return
        done = sum(counts.values())
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        left = self.total - done
        eta = f"{left / rate:.0f} s" if rate > 0 and left else "-"
        running = min(self.jobs, left)
        line = (
            f"provisioning {done}/{self.total}: {counts['issued']} issued, "
            f"{counts['skipped']} skipped, {counts['failed']} failed, {running} running; "
            f"{rate:.1f}/s, {elapsed:.0f} s elapsed, ETA {eta}"
        )
        sys.stderr.write("\r\x1b[K" + line)
        sys.stderr.flush()
        self.drawn = True

    def _clear(self) -> None:
        if self.drawn:
            sys.stderr.write("\r\x1b[K")
            self.drawn = False

    def finish(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self.drawn = False


ALL = (provision,)

"""Where secrets come from: env, a file, or a prompt on a TTY; never argv.

The value is wrapped in :class:`est_hw.keys.base.Secret` at once so it cannot be printed
by accident; messages name the source (``env:EST_HW_PIN``), never the value.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from est_hw.errors import UsageError
from est_hw.keys.base import Secret

PIN_ENV = "EST_HW_PIN"
PASSWORD_ENV = "EST_HW_PASSWORD"  # noqa: S105 (the name of a variable)


def read_secret_file(path: Path, what: str) -> Secret:
    """Read a secret from ``path``; one trailing newline is removed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise UsageError(f"cannot read the {what} file {path}: {reason}") from None
    if text.endswith("\n"):
        text = text[:-1]
    if text.endswith("\r"):
        text = text[:-1]
    if not text:
        raise UsageError(f"the {what} file {path} is empty")
    return Secret(text)


def from_source(source: str, what: str) -> Secret:
    """Resolve ``env:VAR`` or ``file:PATH``.

    :raises UsageError: for another form, an unset variable or an unreadable file.
    """
    kind, sep, ref = source.partition(":")
    if not sep or not ref or kind not in ("env", "file"):
        raise UsageError(f"invalid {what} source {source!r}: use env:VAR or file:PATH")
    if kind == "file":
        return read_secret_file(Path(ref), what)
    value = os.environ.get(ref)
    if not value:
        raise UsageError(f"the {what} source env:{ref} is not set")
    return Secret(value)


def _prompt(what: str) -> Secret | None:
    if not sys.stdin.isatty():
        return None
    return Secret(click.prompt(f"{what}", hide_input=True, err=True))


def resolve_pin(source: str | None, token: str | None = None) -> Secret:
    """The token PIN from ``--pin-source``, else env EST_HW_PIN, else a TTY prompt."""
    if source:
        return from_source(source, "PIN")
    value = os.environ.get(PIN_ENV)
    if value:
        return Secret(value)
    prompted = _prompt(f"PIN for token {token}" if token else "Token PIN")
    if prompted is None:
        raise UsageError(
            f"no PIN: set {PIN_ENV}, use --pin-source env:VAR|file:PATH, or run on a terminal"
        )
    return prompted


def resolve_password(password_file: Path | None, username: str | None) -> Secret | None:
    """The HTTP password from ``--password-file``, else env EST_HW_PASSWORD, else a prompt.

    Returns None when no username is given (no HTTP authentication).
    """
    if username is None:
        if password_file is not None:
            raise UsageError("--password-file needs --username")
        return None
    if password_file is not None:
        return read_secret_file(password_file, "password")
    value = os.environ.get(PASSWORD_ENV)
    if value:
        return Secret(value)
    prompted = _prompt(f"EST password for {username}")
    if prompted is None:
        raise UsageError(
            f"no password for {username}: use --password-file, set {PASSWORD_ENV}, "
            "or run on a terminal"
        )
    return prompted

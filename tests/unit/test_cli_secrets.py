"""Where PINs and passwords come from (never argv), and that they never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from est_hw.cli.secrets import from_source, resolve_password, resolve_pin
from est_hw.errors import UsageError
from est_hw.keys.base import Secret


def test_secret_hides_its_value() -> None:
    secret = Secret("0000-top")
    assert "0000-top" not in repr(secret)
    assert "0000-top" not in str(secret)
    assert "0000-top" not in f"{secret} {secret!r}"
    assert secret.reveal() == "0000-top"


def test_env_and_file_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_PIN", "4321")
    assert from_source("env:MY_PIN", "PIN").reveal() == "4321"
    pin_file = tmp_path / "pin"
    pin_file.write_text("5678\n")
    assert from_source(f"file:{pin_file}", "PIN").reveal() == "5678"
    crlf = tmp_path / "crlf"
    crlf.write_bytes(b"pw with spaces \r\n")
    assert from_source(f"file:{crlf}", "password").reveal() == "pw with spaces "


@pytest.mark.parametrize(
    ("source", "match"),
    [
        ("1234", "env:VAR or file:PATH"),
        ("pin:1234", "env:VAR or file:PATH"),
        ("env:", "env:VAR or file:PATH"),
        ("env:EST_HW_UNSET_FOR_TEST", "not set"),
        ("file:/nonexistent/pin", "cannot read"),
    ],
)
def test_bad_sources(source: str, match: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EST_HW_UNSET_FOR_TEST", raising=False)
    with pytest.raises(UsageError, match=match):
        from_source(source, "PIN")


def test_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(UsageError, match="empty"):
        from_source(f"file:{empty}", "PIN")


def test_pin_default_is_env_and_no_tty_means_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EST_HW_PIN", "1111")
    assert resolve_pin(None).reveal() == "1111"
    monkeypatch.delenv("EST_HW_PIN")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="no PIN"):
        resolve_pin(None)


def test_password_needs_username_and_comes_from_file_or_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("EST_HW_PASSWORD", raising=False)
    assert resolve_password(None, None) is None
    pw = tmp_path / "pw"
    pw.write_text("hunter2\n")
    with pytest.raises(UsageError, match="--username"):
        resolve_password(pw, None)
    password = resolve_password(pw, "line7")
    assert password is not None
    assert password.reveal() == "hunter2"
    monkeypatch.setenv("EST_HW_PASSWORD", "from-env")
    from_env = resolve_password(None, "line7")
    assert from_env is not None
    assert from_env.reveal() == "from-env"
    monkeypatch.delenv("EST_HW_PASSWORD")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(UsageError, match="no password"):
        resolve_password(None, "line7")

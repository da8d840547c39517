"""The CLI surface: help, key types, and that --help does not import heavy modules."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from est_hw.cli.enrollment import CHANNEL_BINDINGS, KEY_TYPES
from est_hw.cli.main import cli
from est_hw.keys.base import KeyType
from est_hw.provision.binding import ChannelBinding


def test_key_type_choices_match_the_backend_enum() -> None:
    assert tuple(k.value for k in KeyType) == KEY_TYPES
    assert tuple(b.value for b in ChannelBinding) == CHANNEL_BINDINGS


def test_help_lists_the_commands_and_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("cacerts", "csrattrs", "enroll", "reenroll", "renew", "show"):
        assert command in result.output
    assert "7 enrollment pending" in result.output


def test_there_is_no_password_or_pin_option() -> None:
    for command in ("enroll", "reenroll", "renew", "show", "cacerts"):
        result = CliRunner().invoke(cli, [command, "--help"])
        assert result.exit_code == 0
        assert "--password " not in result.output
        assert "--pin " not in result.output
        assert "--password-file" in result.output or command == "show"


def test_help_imports_no_heavy_module() -> None:
    code = (
        "import sys; from est_hw.cli.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('httpx', 'tlslite', 'pkcs11', 'cryptography.x509') "
        "if m in sys.modules]\nprint('HEAVY=' + ','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "HEAVY="

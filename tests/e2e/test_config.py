"""Configuration: a TOML file, EST_HW_* environment variables and flags (flags win over
the environment, which wins over the file); ``est-hw config show``; secrets refused in the
file; the variables that existed before keep working; ``est-hw --help`` stays light."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SoftHsmToken
from tests.e2e.conftest import Cli, StartServer


@pytest.fixture
def run(cli: Cli, tmp_path: Path) -> Cli:
    """The e2e CLI (fresh token, EST_HW_PIN, EST_HW_PKCS11_MODULE) with its own
    XDG_CONFIG_HOME, so no user config file leaks in."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    return Cli({**cli.env, "XDG_CONFIG_HOME": str(xdg)})


def write_config(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def show(run: Cli, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = run(*args, env=env)
    assert result.code == 0, result.stderr
    return result.json()["commands"]  # type: ignore[no-any-return]


def test_enroll_takes_everything_from_the_config_file(
    run: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    server, _ = est_server()  # writes ca-1.pem into tmp_path, next to the config file
    config = write_config(tmp_path / "config.toml", f"""
server = "{server.url}"
ca_file = "ca-1.pem"
token = "{softhsm_token.label}"

[enroll]
key_type = "ec-p384"
subject = "CN=from-config"
san = ["dns:from-config.example"]
json = true
""")  # fmt: skip
    result = run("--config", str(config), "enroll")
    assert result.code == 0, result.stderr
    issued = result.json()
    assert (issued["key_type"], issued["subject"]) == ("ec-p384", "CN=from-config")
    assert issued["token"] == softhsm_token.label


def test_flag_beats_env_beats_file(
    run: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    server, _ = est_server()
    config = write_config(tmp_path / "config.toml", f"""
[common]
server = "{server.url}"
ca_file = "ca-1.pem"
token = "{softhsm_token.label}"
timeout = 11
[enroll]
key_type = "ec-p384"
subject = "CN=file"
""")  # fmt: skip
    env = {"EST_HW_CONFIG": str(config), "EST_HW_KEY_TYPE": "rsa-2048",
           "EST_HW_ENROLL_KEY_TYPE": "ec-p256", "EST_HW_TIMEOUT": "12"}  # fmt: skip
    entries = show(run, "config", "show", "--json", "enroll", "--subject", "CN=flag", env=env)[
        "enroll"
    ]
    assert entries["subject"] == {"value": "CN=flag", "source": "flag", "from": None}
    assert entries["key_type"] == {
        "value": "ec-p256", "source": "env", "from": "EST_HW_ENROLL_KEY_TYPE"
    }  # fmt: skip
    assert entries["timeout"] == {"value": 12.0, "source": "env", "from": "EST_HW_TIMEOUT"}
    assert entries["token"] == {
        "value": softhsm_token.label, "source": "file", "from": "[common]"
    }  # fmt: skip
    assert entries["ca_file"]["value"] == str(tmp_path / "ca-1.pem")
    assert entries["channel_binding"] == {"value": "auto", "source": "default", "from": None}
    # and the command really runs that way: env (per command) over the file's ec-p384
    result = run("enroll", "--subject", "CN=flag", "--json", env=env)
    assert result.code == 0, result.stderr
    assert (result.json()["key_type"], result.json()["subject"]) == ("ec-p256", "CN=flag")


def test_default_locations_and_no_config(run: Cli, tmp_path: Path) -> None:
    xdg = Path(run.env["XDG_CONFIG_HOME"])
    write_config(xdg / "est-hw" / "config.toml", '[cacerts]\nserver = "https://xdg.example"\n')
    entries = show(run, "config", "show", "--json", "cacerts")["cacerts"]
    assert entries["server"] == {
        "value": "https://xdg.example", "source": "file", "from": "[cacerts]"
    }  # fmt: skip
    result = run("config", "show", "--json")
    assert result.json()["config_file"] == str(xdg / "est-hw" / "config.toml")
    none = run("--no-config", "config", "show", "--json")
    assert none.json()["config_file"] is None
    assert none.json()["commands"]["cacerts"]["server"]["source"] == "default"
    other = write_config(tmp_path / "other.toml", 'server = "https://other.example"\n')
    entries = show(run, "--config", str(other), "config", "show", "--json", "cacerts")["cacerts"]
    assert entries["server"]["value"] == "https://other.example"
    missing = run("--config", str(tmp_path / "missing.toml"), "config", "show")
    assert missing.code == 2
    assert "cannot read the config file" in missing.stderr


@pytest.mark.parametrize(
    "text",
    [
        'password = "hunter2-secret"\n',
        '[enroll]\npin = "hunter2-secret"\n',
        '[common]\nowner_auth = "hunter2-secret"\n',
        '[reenroll]\nuser_pin = "hunter2-secret"\n',
    ],
)
def test_secrets_in_the_config_file_are_refused(run: Cli, tmp_path: Path, text: str) -> None:
    config = write_config(tmp_path / "config.toml", text)
    result = run("--config", str(config), "show", "--json")
    assert result.code == 2
    assert "secret" in result.stderr
    assert "_source" in result.stderr or "password_file" in result.stderr
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert result.json()["exit_code"] == 2 if result.stdout else True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[enrol]\nsubject = 'CN=x'\n", "unknown table [enrol]"),
        ("[enroll]\nsubjet = 'CN=x'\n", "[enroll] has no option 'subjet'"),
        ("no_such_option = 1\n", "no command has an option 'no_such_option'"),
        ("[enroll]\nkey_type = 'ec-p999'\n", "[enroll] key_type"),
        ("[enroll]\ntimeout = 'soon'\n", "[enroll] timeout"),
        ("[enroll]\nsubject = ['CN=a', 'CN=b']\n", "expected a single value"),
        ("server = 'a'\n[common]\nserver = 'b'\n", "top level and in [common]"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_config_errors_name_file_table_and_option(
    run: Cli, tmp_path: Path, text: str, message: str
) -> None:
    config = write_config(tmp_path / "config.toml", text)
    result = run("--config", str(config), "config", "show")
    assert result.code == 2
    assert message in result.stderr, result.stderr
    assert str(config) in result.stderr


def test_existing_variables_keep_working_and_win_over_the_file(
    run: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    server, ca_file = est_server(users={"line7": "right-password"}, auth="basic")
    (tmp_path / "wrong-pin").write_text("0000\n")
    (tmp_path / "wrong-password").write_text("wrong-password\n")
    config = write_config(tmp_path / "config.toml", """
server = "https://file.invalid"
username = "nobody"
module = "/nonexistent/libpkcs11.so"
pin_source = "file:wrong-pin"
password_file = "wrong-password"
""")  # fmt: skip
    env = {"EST_HW_CONFIG": str(config), "EST_HW_SERVER": server.url,
           "EST_HW_USERNAME": "line7", "EST_HW_PASSWORD": "right-password"}  # fmt: skip
    # EST_HW_PKCS11_MODULE and EST_HW_PIN come from the cli fixture
    entries = show(run, "config", "show", "--json", "enroll", env=env)["enroll"]
    assert entries["server"] == {"value": server.url, "source": "env", "from": "EST_HW_SERVER"}
    assert entries["username"]["from"] == "EST_HW_USERNAME"
    assert entries["module"] == {
        "value": softhsm_token.module, "source": "env", "from": "EST_HW_PKCS11_MODULE"
    }  # fmt: skip
    assert entries["pin"] == {
        "value": "(secret, not shown)", "source": "env", "from": "EST_HW_PIN"
    }  # fmt: skip
    assert entries["password"]["from"] == "EST_HW_PASSWORD"
    result = run("enroll", "--ca-file", str(ca_file), "--token", softhsm_token.label,
                 "--subject", "CN=env-wins", "--json", env=env)  # fmt: skip
    assert result.code == 0, result.stderr
    assert result.json()["subject"] == "CN=env-wins"


def test_config_show_never_prints_secrets(run: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", """
[enroll]
key_uri = "pkcs11:token=dev;object=k;pin-value=1234-in-uri"
pin_source = "env:MY_PIN"
""")  # fmt: skip
    env = {"MY_PIN": "9876-in-env", "EST_HW_PIN": "", "EST_HW_PASSWORD": "pw-in-env",
           "EST_HW_SERVER": "https://user:pw-in-url@est.example"}  # fmt: skip
    for output in ("--json", "--all"):
        result = run("--config", str(config), "config", "show", output, env=env)
        assert result.code == 0, result.stderr
        for secret in ("1234-in-uri", "9876-in-env", "pw-in-env", "pw-in-url"):
            assert secret not in result.stdout + result.stderr
    entries = json.loads(run("--config", str(config), "config", "show", "--json", env=env).stdout)[
        "commands"
    ]["enroll"]
    assert entries["key_uri"]["value"] == "pkcs11:token=dev;object=k;pin-value=***"
    assert entries["pin"] == {"value": "(secret, not shown)", "source": "env", "from": "MY_PIN"}
    human = run("--config", str(config), "config", "show", "enroll", env=env).stdout
    assert "  pin_source = env:MY_PIN  (file [enroll])" in human.splitlines()


def test_provision_options_from_the_file(run: Cli, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", "[provision]\njobs = 3\nreport = 'r.jsonl'\n")
    entries = show(run, "--config", str(config), "config", "show", "--json", "provision")[
        "provision"
    ]
    assert entries["jobs"] == {"value": 3, "source": "file", "from": "[provision]"}
    assert entries["report"]["value"] == str(tmp_path / "r.jsonl")
    flagged = show(run, "--config", str(config), "config", "show", "--json", "provision",
                   "--jobs", "5")["provision"]  # fmt: skip
    assert flagged["jobs"] == {"value": 5, "source": "flag", "from": None}
    env = show(run, "--config", str(config), "config", "show", "--json", "provision",
               env={"EST_HW_JOBS": "6"})["provision"]  # fmt: skip
    assert env["jobs"] == {"value": 6, "source": "env", "from": "EST_HW_JOBS"}


def test_help_reads_no_config_and_imports_nothing_heavy(run: Cli, tmp_path: Path) -> None:
    broken = write_config(tmp_path / "broken.toml", "not toml [")
    result = run("--config", str(broken), "--help")
    assert result.code == 0
    assert "--config PATH" in result.stdout
    code = (
        "import sys, est_hw.cli.main; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'cryptography', 'httpx', 'httpcore', 'pkcs11', 'tlslite', 'tomllib'}))"
    )
    imported = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")},
    ).stdout.strip()  # fmt: skip
    assert imported == "[]"


def test_tpm_settings_of_the_config_file_do_not_break_pkcs11_commands(
    run: Cli, softhsm_token: SoftHsmToken, est_server: StartServer, tmp_path: Path
) -> None:
    """The reverse of tests/e2e/test_tpm.py's case: TPM settings in [common] are ignored by
    a PKCS#11 command, and clash only when given as flags."""
    server, _ = est_server()
    config = write_config(tmp_path / "config.toml", f"""
[common]
server = "{server.url}"
ca_file = "ca-1.pem"
token = "{softhsm_token.label}"
tcti = "swtpm:host=127.0.0.1,port=1"
key_auth_source = "env:NOT_SET"
state_dir = "/nonexistent"
""")  # fmt: skip
    result = run("--config", str(config), "enroll", "--subject", "CN=pkcs11", "--json")
    assert result.code == 0, result.stderr
    assert result.json()["token"] == softhsm_token.label
    clash = run("--config", str(config), "show", "--tcti", "swtpm:port=1")
    assert clash.code == 2
    assert "need --tpm" in clash.stderr


def test_config_show_says_a_password_without_a_username_is_unused(run: Cli) -> None:
    """No --username: no HTTP authentication, so no password is read or prompted for."""
    env = {"EST_HW_PASSWORD": ""}
    alone = show(run, "--no-config", "config", "show", "--json", "enroll", env=env)["enroll"]
    assert alone["password"] == {"value": None, "source": "unused", "from": "without --username"}
    named = show(run, "--no-config", "config", "show", "--json", "enroll", "--username", "u",
                 env=env)["enroll"]  # fmt: skip
    assert named["password"] == {"value": None, "source": "prompt", "from": None}

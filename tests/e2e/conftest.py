"""End-to-end fixtures: the est-hw CLI as a user runs it, a real test EST server over TLS,
and a real SoftHSM2 token."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from est_hw.testing.config import ServerConfig
from est_hw.testing.server import EstTestServer
from tests.conftest import SoftHsmToken

EST_HW = str(Path(sys.executable).with_name("est-hw"))


@dataclass(frozen=True)
class CliResult:
    """What one est-hw run did."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


@dataclass
class Cli:
    """Runs ``est-hw`` in a subprocess with a clean EST_HW_* environment."""

    env: dict[str, str]

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> CliResult:
        proc = subprocess.run(
            [EST_HW, *args],
            check=False,
            capture_output=True,
            text=True,
            env={**self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(softhsm_token: SoftHsmToken) -> Cli:
    """The CLI, pointed at the fresh token's module with its PIN in EST_HW_PIN."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EST_HW_")}
    env.update(
        SOFTHSM2_CONF=str(softhsm_token.conf),
        EST_HW_PIN=softhsm_token.pin,
        EST_HW_PKCS11_MODULE=softhsm_token.module,
    )
    return Cli(env)


StartServer = Callable[..., tuple[EstTestServer, Path]]


@pytest.fixture
def est_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start test EST servers (in a thread, real TLS on 127.0.0.1, random port).

    Returns ``(server, ca_file)``; every server started is stopped at teardown.
    """
    started: list[EstTestServer] = []

    def start(**config: Any) -> tuple[EstTestServer, Path]:
        server = EstTestServer(ServerConfig(**config))
        server.start()
        started.append(server)
        ca_file = tmp_path / f"ca-{len(started)}.pem"
        ca_file.write_bytes(server.ca.anchor_pem())
        return server, ca_file

    yield start
    for server in started:
        server.stop()

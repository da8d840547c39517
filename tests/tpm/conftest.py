"""A fresh swtpm per test, a backend on it, and tpm2-tools to look at it independently.

swtpm runs in the foreground (no ``--daemon``) on a random free port pair with a fresh
state directory, like tpm2-pytss's ``test/TSS2_BaseTest.py``; it is stopped with
``swtpm_ioctl -s`` and, failing that, by its PID.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pki import TwoTierCa, make_two_tier_ca

#: swtpm, tpm2-tools and tpm2-pytss are all needed; without them the TPM tests are not
#: collected (``make setup`` installs them).
HAVE_TPM = bool(
    importlib.util.find_spec("tpm2_pytss")
    and shutil.which("swtpm")
    and shutil.which("swtpm_ioctl")
    and shutil.which("tpm2_getcap")
)
if not HAVE_TPM:
    collect_ignore_glob = ["test_*.py"]
else:
    from est_hw.keys.tpm import TpmBackend, TpmSelector, open_tpm

# the tests never want ESYS's error log on stderr
os.environ.setdefault("TSS2_LOG", "all+none")


@dataclass(frozen=True)
class Swtpm:
    """A running swtpm: its TCTI string, its ports, its state and its process."""

    port: int
    state: Path
    process: subprocess.Popen[bytes]

    @property
    def tcti(self) -> str:
        return f"swtpm:port={self.port}"

    @property
    def env(self) -> dict[str, str]:
        """Environment for tpm2-tools and the tpm2 OpenSSL provider."""
        return {
            **os.environ,
            "TPM2TOOLS_TCTI": self.tcti,
            "TPM2OPENSSL_TCTI": self.tcti,
            "TSS2_LOG": "all+none",
        }

    def tool(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        """Run a tpm2-tools command (or openssl) against this swtpm."""
        return subprocess.run(args, env=self.env, capture_output=True, check=check, timeout=30)

    def handles(self, kind: str) -> list[int]:
        """``tpm2_getcap handles-<kind>``: transient, persistent or nv-index."""
        out = self.tool("tpm2_getcap", f"handles-{kind}").stdout.decode()
        return [int(line.strip("- \t"), 16) for line in out.splitlines() if line.strip()]

    def stop(self) -> None:
        if self.process.poll() is None:
            subprocess.run(
                ["swtpm_ioctl", "--tcp", f"127.0.0.1:{self.port + 1}", "-s"],
                capture_output=True,
                check=False,
                timeout=10,
            )
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()  # by PID: this Popen only
                self.process.wait(timeout=5)


def _free_port_pair() -> int:
    """A port N with N and N+1 free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port >= 65535:
            continue
        with socket.socket() as second:
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair")


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_swtpm(state: Path) -> Swtpm:
    """Start swtpm on a free port pair with ``state`` as its state dir; wait for both."""
    state.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = _free_port_pair()
        process = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port}", "--ctrl", f"type=tcp,port={port + 1}",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if _listening(port) and _listening(port + 1):
                return Swtpm(port, state, process)
            time.sleep(0.01)
        process.kill()
        process.wait()
    raise RuntimeError("swtpm did not start")


@pytest.fixture
def swtpm(tmp_path: Path) -> Iterator[Swtpm]:
    """A fresh swtpm (new state: empty TPM, dictionary-attack counter at zero)."""
    running = start_swtpm(tmp_path / "swtpm-state")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "est-hw-state"


@pytest.fixture
def selector(swtpm: Swtpm, state_dir: Path) -> TpmSelector:
    return TpmSelector(tcti=swtpm.tcti, state_dir=state_dir)


@pytest.fixture
def backend(selector: TpmSelector) -> Iterator[TpmBackend]:
    """An open backend on the fresh swtpm; closed after the test."""
    with open_tpm(selector) as opened:
        yield opened


@pytest.fixture(scope="session")
def throwaway_ca() -> TwoTierCa:
    return make_two_tier_ca()


def readpublic(swtpm: Swtpm, handle: int) -> dict[str, str]:
    """``tpm2_readpublic -c HANDLE``: its top-level ``name: value`` lines (and the
    ``value:`` of nested fields such as ``attributes``)."""
    out = swtpm.tool("tpm2_readpublic", "-c", f"0x{handle:08x}").stdout.decode()
    fields: dict[str, str] = {}
    current = ""
    for line in out.splitlines():
        if not line.startswith(" ") and ":" in line:
            current, _, value = line.partition(":")
            if value.strip():
                fields[current] = value.strip()
        elif line.strip().startswith("value:") and current:
            fields[current] = line.split(":", 1)[1].strip()
    return fields


def nvread(swtpm: Swtpm, index: int, size: int) -> bytes:
    """``tpm2_nvread -C o -s SIZE INDEX`` (owner auth, stdout)."""
    return swtpm.tool("tpm2_nvread", "-C", "o", "-s", str(size), f"0x{index:08x}").stdout

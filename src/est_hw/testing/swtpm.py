"""A private swtpm (TPM 2.0 simulator) for tests, the benchmark and demos.

Started on a free port pair of 127.0.0.1 with its own state directory (a fresh, empty
TPM), without ``--daemon`` so the process is ours to stop by PID; stopped with
``swtpm_ioctl -s`` (a clean shutdown), else killed.  FIELD-NOTES: swtpm has no resource
manager, so one client at a time.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


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
        """Shut the TPM down cleanly, else kill this process (by PID)."""
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
                self.process.kill()
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
    """Start swtpm with ``state`` as its state dir on a free port pair; wait for both."""
    state.mkdir(parents=True, exist_ok=True)
    for _ in range(5):
        port = _free_port_pair()
        process = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            if _listening(port) and _listening(port + 1):
                return Swtpm(port, state, process)
            time.sleep(0.01)
        if process.poll() is None:
            process.kill()
        process.wait()
    raise RuntimeError("swtpm did not start")

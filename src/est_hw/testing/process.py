"""Run the RFC 7030 test server as a separate process (tests, demo scripts).

A real process keeps the client honest: nothing is shared with the test but the socket
and the files in ``workdir``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess", "start_server_process"]

READY_TIMEOUT = 10.0


class ServerProcess:
    """A running ``python -m est_hw.testing.server``; stop it with :meth:`stop`."""

    def __init__(
        self, popen: subprocess.Popen[bytes], port: int, ca_file: Path, log_file: Path
    ) -> None:
        self._popen = popen
        self.port = port
        #: the root CA certificate (PEM): the client's explicit trust anchor
        self.ca_file = ca_file
        #: the server's stderr (one line per request)
        self.log_file = log_file

    @property
    def pid(self) -> int:
        return self._popen.pid

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def running(self) -> bool:
        return self._popen.poll() is None

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM this process (by its PID), wait, SIGKILL if it hangs; the exit code."""
        if self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(timeout)
        return self._popen.returncode

    def log(self) -> str:
        """What the server has logged so far."""
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_server_process(
    args: Sequence[str], workdir: Path, *, timeout: float = READY_TIMEOUT
) -> ServerProcess:
    """Start the server with ``args`` (see ``--help``) and wait until it listens.

    ``workdir`` receives ``ready`` (the port), ``ca.pem`` (the root, unless ``args`` names
    another --ca-out) and ``server.log`` (stderr).  Raises RuntimeError, with the log, if
    the server exits or is not ready within ``timeout`` seconds.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / "ready"
    ready.unlink(missing_ok=True)
    args = list(args)
    ca_file = workdir / "ca.pem"
    if "--ca-out" in args:
        ca_file = Path(args[args.index("--ca-out") + 1])
    else:
        args += ["--ca-out", str(ca_file)]
    log_file = workdir / "server.log"
    command = [
        sys.executable, "-m", "est_hw.testing.server",
        "--port", "0", "--ready-file", str(ready), *args,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_file.open("wb") as log:
        popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists():
            text = ready.read_text().strip()
            if text:
                return ServerProcess(popen, int(text), ca_file, log_file)
        if popen.poll() is not None:
            break
        time.sleep(0.02)
    process = ServerProcess(popen, 0, ca_file, log_file)
    code = process.stop()
    raise RuntimeError(
        f"EST test server did not start (exit {code}); its log:\n{process.log()[-4000:]}"
    )

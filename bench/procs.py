"""Run a child process and measure its wall time and peak RSS (``wait4``)."""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

#: Proxy variables are dropped from the children's environment: est-hw honours
#: HTTPS_PROXY, and the benchmark talks to 127.0.0.1 only.
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


@dataclass(frozen=True)
class ChildRun:
    """One finished child: exit code, output, wall seconds and peak RSS in KiB."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    wall_s: float
    maxrss_kib: int
    #: seconds from start to the first byte on stdout (unbuffered children only)
    first_output_s: float | None = None

    def check(self) -> ChildRun:
        """Raise with the child's stderr if it failed."""
        if self.returncode != 0:
            raise RuntimeError(
                f"{' '.join(self.argv)} exited {self.returncode}:\n"
                f"{self.stdout[-2000:]}\n{self.stderr[-2000:]}"
            )
        return self


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ without proxy settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _PROXY_VARS}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra or {})
    return env


def run_child(argv: Sequence[str], env: Mapping[str, str], *, timeout: float = 120.0) -> ChildRun:
    """Start ``argv``, wait for it with ``os.wait4`` and return what it did.

    The wall time runs from just before ``fork`` to the child's exit; ``maxrss`` is that
    child's own peak resident set (not the maximum over all children so far).  When the
    child writes unbuffered (PYTHONUNBUFFERED=1), ``first_output_s`` tells when its answer
    came out, which splits its wall time into "until the answer" and "exiting".
    """
    with tempfile.TemporaryFile() as err:
        chunks: list[bytes] = []
        first_output: list[float] = []
        start = time.perf_counter()
        popen = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=dict(env)
        )
        assert popen.stdout is not None
        reader = threading.Thread(target=_drain, args=(popen.stdout, chunks, first_output))
        reader.start()
        # A blocking wait4 (no polling that would steal CPU from the child); a timer
        # kills this child only, by its PID, if it hangs.
        timer = threading.Timer(timeout, popen.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(popen.pid, 0)
            wall = time.perf_counter() - start
        finally:
            timer.cancel()
            reader.join()
            popen.stdout.close()
        popen.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return ChildRun(
            tuple(argv),
            popen.returncode,
            b"".join(chunks).decode(errors="replace"),
            err.read().decode(errors="replace"),
            wall,
            int(usage.ru_maxrss),
            first_output[0] - start if first_output else None,
        )


def _drain(pipe: IO[bytes], chunks: list[bytes], first_output: list[float]) -> None:
    """Read ``pipe`` to its end, noting when the first bytes arrived."""
    while chunk := os.read(pipe.fileno(), 65536):
        if not first_output:
            first_output.append(time.perf_counter())
        chunks.append(chunk)


def venv_python() -> str:
    """The interpreter running the benchmark (the project's .venv under ``make bench``)."""
    import sys

    return sys.executable


def venv_script(name: str) -> str:
    """A console script beside the interpreter (``.venv/bin/est-hw``)."""
    import sys

    path = Path(sys.executable).parent / name
    if not path.exists():
        raise RuntimeError(f"{path} not found: run `make setup` first")
    return str(path)

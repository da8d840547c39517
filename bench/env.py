"""The benchmark's world: a temp dir, SoftHSM2 token dirs, the test server, swtpm,
and a description of the machine."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOFTHSM_MODULE = os.environ.get("EST_HW_BENCH_PKCS11_MODULE", "/usr/lib/softhsm/libsofthsm2.so")
#: throwaway PINs of throwaway tokens (the same as tests/conftest.py and make demo)
USER_PIN = "1234"
SO_PIN = "12345678"


@dataclass(frozen=True)
class TokenDir:
    """A private SoftHSM2 token directory (its own softhsm2.conf) and the token labels
    initialised in it."""

    conf: Path
    labels: tuple[str, ...]

    def env(self) -> dict[str, str]:
        return {"SOFTHSM2_CONF": str(self.conf), "EST_HW_PIN": USER_PIN}


def make_token_dir(base: Path, labels: list[str]) -> TokenDir:
    """A fresh token dir under ``base`` with one empty token per label."""
    (base / "tokens").mkdir(parents=True)
    template = (REPO / "softhsm" / "softhsm2.conf.in").read_text()
    conf = base / "softhsm2.conf"
    conf.write_text(template.replace("@TOKENDIR@", str(base / "tokens")))
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    for label in labels:
        subprocess.run(
            ["softhsm2-util", "--init-token", "--free", "--label", label,
             "--so-pin", SO_PIN, "--pin", USER_PIN],
            check=True, capture_output=True, env=env,
        )  # fmt: skip
    return TokenDir(conf, tuple(labels))


def token_storage(on_disk: bool) -> tuple[Path, str]:
    """A fresh directory for token dirs and TPM state, and what it is ("tmpfs" or "disk").

    By default a tmpfs (/dev/shm): SoftHSM2 writes every object with fsync, and on a shared
    disk that costs 10-200 ms per object depending on what else the machine does, which
    would drown est-hw's own time in the host's I/O noise.  ``on_disk`` keeps them in the
    temp dir instead, to see SoftHSM2 as it runs from a disk.
    """
    shm = Path("/dev/shm")  # noqa: S108 (only as the parent of a mkdtemp dir)
    if not on_disk and shm.is_dir() and os.access(shm, os.W_OK):
        return Path(tempfile.mkdtemp(prefix="est-hw-bench-tokens-", dir=shm)), "tmpfs"
    return Path(tempfile.mkdtemp(prefix="est-hw-bench-tokens-")), "disk"


class TokenFactory:
    """Hands out fresh token dirs under one parent, numbered, so every measured
    enrollment meets an empty token (as a device on a factory line does)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._next = 0

    def new(self, count: int = 1, prefix: str = "bench") -> TokenDir:
        self._next += 1
        number = self._next
        labels = [f"{prefix}-{number}-{i}" for i in range(count)]
        return make_token_dir(self.root / f"hsm-{number}", labels)


# --- swtpm ----------------------------------------------------------------------------


def have_swtpm() -> bool:
    try:
        import tpm2_pytss  # noqa: F401
    except ImportError:
        return False
    return bool(shutil.which("swtpm") and shutil.which("swtpm_ioctl"))


# --- the machine ----------------------------------------------------------------------


def _first_line(argv: list[str]) -> str | None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (done.stdout or done.stderr).strip()
    return text.splitlines()[0] if text else None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total_mib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git_state() -> dict[str, object]:
    head = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO), "status", "--porcelain", "--", "src"])
    return {"commit": head, "src_modified": dirty is not None}


def machine_info() -> dict[str, object]:
    """Where the numbers come from: CPU, cores, memory, OS and the versions that matter."""
    return {
        "cpu_model": _cpu_model(),
        "nproc": len(os.sched_getaffinity(0)),
        "mem_total_mib": _mem_total_mib(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "versions": {
            "est-hw": _version("est-hw"),
            "cryptography": _version("cryptography"),
            "python-pkcs11": _version("python-pkcs11"),
            "tlslite-ng": _version("tlslite-ng"),
            "httpx": _version("httpx"),
            "click": _version("click"),
            "tpm2-pytss": _version("tpm2-pytss"),
            "softhsm": _first_line(["softhsm2-util", "--version"]),
            "swtpm": _first_line(["swtpm", "--version"]) if shutil.which("swtpm") else None,
            "openssl": _openssl_version(),
        },
        "git": _git_state(),
    }


def _openssl_version() -> str:
    import ssl

    return ssl.OPENSSL_VERSION

"""A fresh swtpm per test, a backend on it, and tpm2-tools to look at it independently.

swtpm runs in the foreground (no ``--daemon``) on a random free port pair with a fresh
state directory, like tpm2-pytss's ``test/TSS2_BaseTest.py``; it is stopped with
``swtpm_ioctl -s`` and, failing that, by its PID.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from est_hw.testing.swtpm import Swtpm, start_swtpm
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

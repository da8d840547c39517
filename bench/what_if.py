"""What the code changes proposed in docs/performance.md would save, measured.

    .venv/bin/python -m bench.what_if [--repeats N]

Each line is a median over fresh processes (no est-hw command is run):

- the exit of a process that has imported what ``est-hw enroll`` imports, as is and
  with ``gc.freeze()`` before it exits (the final garbage collections over every object
  of those modules are what makes the exit slow);
- ``import tlslite`` (its ``__init__`` imports tlslite.api, which imports every
  integration: asyncio, xmlrpc, smtplib, imaplib, poplib, urllib.request) against
  importing only the submodules est_hw.tls uses;
- ``import logging`` (imported by est_hw.cli.main for every command, --help included).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

_TIMED = (
    "import time\nstart = time.perf_counter()\n{body}\nprint((time.perf_counter() - start) * 1000)"
)
_EXIT = "import sys, time\n{body}\nprint(repr(time.perf_counter()))"
ENROLL_IMPORTS = "import est_hw.cli.main, est_hw.cli.render, est_hw.keys.pkcs11, est_hw.provision"
TLSLITE_PARTS = """
import importlib.util, sys, types
spec = importlib.util.find_spec("tlslite")
package = types.ModuleType("tlslite")
package.__path__ = list(spec.submodule_search_locations)
package.__spec__ = spec
sys.modules["tlslite"] = package
from tlslite.constants import CipherSuite
from tlslite.errors import TLSError
from tlslite.handshakesettings import HandshakeSettings
from tlslite.messages import CertificateRequest, Finished
from tlslite.tlsconnection import TLSConnection
from tlslite.utils.rsakey import RSAKey
from tlslite.x509 import X509
from tlslite.x509certchain import X509CertChain
"""


def _python(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout


def timed_ms(body: str, repeats: int) -> float:
    """Median ms of ``body`` in a fresh interpreter."""
    return statistics.median(
        float(_python(_TIMED.format(body=body)).split()[-1]) for _ in range(repeats)
    )


def exit_ms(body: str, repeats: int) -> float:
    """Median ms from the last statement of a fresh interpreter to its exit."""
    samples = []
    for _ in range(repeats):
        printed = float(_python(_EXIT.format(body=body)).split()[-1])
        samples.append((time.perf_counter() - printed) * 1000)
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.what_if", description=__doc__)
    parser.add_argument("--repeats", type=int, default=11)
    n = parser.parse_args(argv).repeats
    rows = [
        ("exit after the enroll imports", exit_ms(ENROLL_IMPORTS, n)),
        (
            "  the same with gc.freeze() first",
            exit_ms(ENROLL_IMPORTS + "\nimport gc; gc.freeze()", n),
        ),
        ("import tlslite (the package)", timed_ms("import tlslite", n)),
        ("  only the submodules est_hw.tls uses", timed_ms(TLSLITE_PARTS, n)),
        ("import logging", timed_ms("import logging", n)),
    ]
    print(f"what-if (median of {n} fresh processes, ms)")
    for name, ms in rows:
        print(f"  {name:<42} {ms:7.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

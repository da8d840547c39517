"""Crash points for the crash-safety tests.

``EST_HW_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
``point`` (e.g. ``after-keygen``), exactly as a power cut or ``kill -9`` would, so the
tests can prove that the next run finishes the enrollment with one key and one
certificate.  Unset (always, outside those tests), :func:`point` does nothing.
"""

from __future__ import annotations

import os
import signal

ENV = "EST_HW_CRASH_AT"

#: The points the enrollment flows pass, in order.
POINTS = (
    "before-keygen",
    "after-keygen",
    "before-send",
    "after-answer",
    "after-store",
    "before-retire",
)


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if ``EST_HW_CRASH_AT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

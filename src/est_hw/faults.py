"""Crash points for the crash-safety tests.

``EST_HW_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
``point`` (e.g. ``after-keygen``), exactly as a power cut or ``kill -9`` would, so the
tests can prove that the next run finishes the enrollment with one key and one
certificate.  Unset (always, outside those tests), :func:`point` does nothing.

In a worker process of ``est-hw provision --jobs N`` the point kills the ``est-hw``
process first (:func:`kill_parent_too`), then the worker, so that the whole run dies as
one; the other workers follow their parent (``PR_SET_PDEATHSIG``).  ``<point>@worker``
fires only in such a worker, so a test can make the crash start there rather than in
est-hw's own job.
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

#: The process that :func:`point` kills before this one (a provisioning worker's parent).
_parent: dict[str, int] = {}


def kill_parent_too(parent: int) -> None:
    """Make :func:`point` kill ``parent`` (this process's parent) before this process."""
    _parent["pid"] = parent


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if ``EST_HW_CRASH_AT`` names this point."""
    wanted = os.environ.get(ENV)
    if wanted == name or (wanted == f"{name}@worker" and "pid" in _parent):
        # Only while it is still our parent: once it is gone, the pid may be another's.
        parent = _parent.get("pid")
        if parent is not None and os.getppid() == parent:
            os.kill(parent, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

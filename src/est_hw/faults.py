"""Crash points for the crash-safety tests.

``EST_HW_CRASH_AT=<point>`` makes the process kill itself with SIGKILL when it reaches
``point`` (e.g. ``after-keygen``), exactly as a power cut or ``kill -9`` would, so the
tests can prove that the next run finishes the enrollment with one key and one
certificate.  Unset (always, outside those tests), :func:`point` does nothing.

In a worker process of ``est-hw provision --jobs N`` the point kills the ``est-hw``
process first (:func:`kill_parent_too`), then the worker, so that the whole run dies as
one; the other workers follow their parent (``PR_SET_PDEATHSIG``).  ``<point>@worker``
fires only in such a worker, so a test can make the crash start there rather than in
est-hw's own job.  ``<point>@worker:<device>`` kills only the worker (est-hw lives on),
and only while it provisions the device of that name (:func:`working_on`): a token
whose library crashes its process every time.
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
#: The device a provisioning worker is working on (:func:`working_on`).
_device: dict[str, str] = {}


def kill_parent_too(parent: int) -> None:
    """Make :func:`point` kill ``parent`` (this process's parent) before this process."""
    _parent["pid"] = parent


def working_on(device: str) -> None:
    """Note the device this worker process provisions now (for ``<point>@worker:<device>``)."""
    _device["name"] = device


def point(name: str) -> None:
    """Die here (SIGKILL, no cleanup) if ``EST_HW_CRASH_AT`` names this point."""
    wanted = os.environ.get(ENV)
    if wanted is None:
        return
    if "pid" in _parent and wanted == f"{name}@worker:{_device.get('name')}":
        os.kill(os.getpid(), signal.SIGKILL)  # this worker alone
    if wanted == name or (wanted == f"{name}@worker" and "pid" in _parent):
        # Only while it is still our parent: once it is gone, the pid may be another's.
        parent = _parent.get("pid")
        if parent is not None and os.getppid() == parent:
            os.kill(parent, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

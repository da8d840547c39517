"""Polling a pending enrollment (RFC 7030 section 4.2.3: HTTP 202 + Retry-After)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from est_hw.errors import EnrollmentPendingError

T = TypeVar("T")

#: Never retry sooner than this, whatever Retry-After says (0 would busy-loop).
MIN_RETRY_SECONDS = 1


@dataclass(frozen=True)
class WaitPolicy:
    """``--wait``: retry after each 202 until ``max_wait`` seconds have passed.

    :param progress: told ``(seconds, attempt)`` before each wait (the CLI shows it on a
        TTY).
    """

    max_wait: float
    progress: Callable[[int, int], None] = field(default=lambda seconds, attempt: None)
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic


def until_issued(
    attempt: Callable[[], T],
    policy: WaitPolicy | None,
    on_pending: Callable[[int], None],
) -> T:
    """Call ``attempt`` until it does not raise :class:`EnrollmentPendingError`.

    ``on_pending(retry_after)`` runs after every 202 (the journal records it).  Without
    a policy, or when the server asks to wait beyond ``max_wait``, the pending error is
    raised for the caller (exit 7).
    """
    deadline = policy.clock() + policy.max_wait if policy else 0.0
    number = 0
    while True:
        number += 1
        try:
            return attempt()
        except EnrollmentPendingError as pending:
            on_pending(pending.retry_after)
            if policy is None:
                raise
            delay = max(pending.retry_after, MIN_RETRY_SECONDS)
            if policy.clock() + delay > deadline:
                raise EnrollmentPendingError(
                    f"still pending: the server asks to retry in {pending.retry_after} s, "
                    f"beyond --max-wait",
                    retry_after=pending.retry_after,
                ) from None
            policy.progress(delay, number)
            policy.sleep(delay)

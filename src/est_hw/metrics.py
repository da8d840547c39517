"""Time per phase and counts of the expensive things, for ``--timings`` and bench/.

A :func:`recording` context collects what the code inside it reports through
:func:`phase` and :func:`count`; outside one, both cost a context-variable lookup.
Recording is per thread of control (a ``ContextVar``), so concurrent provisioning jobs
each record their own.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

#: Counters: "tls_handshakes", "http_requests", "token_signatures".
_current: ContextVar[Metrics | None] = ContextVar("est_hw_metrics", default=None)


@dataclass
class Metrics:
    """Seconds per phase (summed when a phase repeats) and event counts."""

    phases: dict[str, float] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)

    def as_json(self) -> dict[str, object]:
        """Milliseconds per phase, the total, and the counts."""
        return {
            "total_ms": round((time.perf_counter() - self.started) * 1000, 2),
            "phases_ms": {name: round(sec * 1000, 2) for name, sec in self.phases.items()},
            "counts": dict(self.counts),
        }


@contextmanager
def recording() -> Iterator[Metrics]:
    """Collect the phases and counts of the code run inside."""
    metrics = Metrics()
    token = _current.set(metrics)
    try:
        yield metrics
    finally:
        _current.reset(token)


@contextmanager
def phase(name: str) -> Iterator[None]:
    """Time the block as phase ``name`` (nested phases are each counted in full)."""
    metrics = _current.get()
    if metrics is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        metrics.phases[name] = metrics.phases.get(name, 0.0) + time.perf_counter() - start


def count(name: str, amount: int = 1) -> None:
    """Add ``amount`` to counter ``name``."""
    metrics = _current.get()
    if metrics is not None:
        metrics.counts[name] += amount

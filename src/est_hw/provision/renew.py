"""When a certificate is due for renewal, and the random delay that spreads a fleet.

``--before 30d`` renews when at most 30 days are left; ``--before 25%`` when at most a
quarter of the lifetime is left; the default renews in the last third of the lifetime.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass

from cryptography import x509

from est_hw.errors import UsageError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


def parse_duration(text: str, *, option: str) -> datetime.timedelta:
    """``90s``, ``10m``, ``12h``, ``30d``, ``2w`` -> timedelta.

    :raises UsageError: for anything else.
    """
    match = _DURATION.match(text.lower())
    if not match:
        raise UsageError(f"invalid {option} {text!r}: use a number and s, m, h, d or w")
    return datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


@dataclass(frozen=True)
class RenewalWindow:
    """How close to expiry a certificate must be to be renewed.

    Exactly one of ``remaining`` (a time left) and ``fraction`` (a share of the
    certificate's lifetime left) is set.
    """

    remaining: datetime.timedelta | None = None
    fraction: float | None = 1 / 3

    @classmethod
    def parse(cls, text: str | None) -> RenewalWindow:
        """``None`` (last third), ``25%`` or a duration such as ``30d``."""
        if text is None:
            return cls()
        match = _PERCENT.match(text)
        if match:
            percent = float(match.group(1))
            if not 0 < percent <= 100:
                raise UsageError(f"invalid --before {text!r}: a percentage in (0, 100]")
            return cls(remaining=None, fraction=percent / 100)
        return cls(remaining=parse_duration(text, option="--before"), fraction=None)

    def due_at(self, cert: x509.Certificate) -> datetime.datetime:
        """The moment from which ``cert`` is due for renewal."""
        not_after = cert.not_valid_after_utc
        if self.remaining is not None:
            return not_after - self.remaining
        lifetime = not_after - cert.not_valid_before_utc
        return not_after - lifetime * (self.fraction or 0)

    def is_due(self, cert: x509.Certificate, now: datetime.datetime) -> bool:
        """True when ``now`` is at or after :meth:`due_at`."""
        return now >= self.due_at(cert)

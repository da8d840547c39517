"""The enrollment journal: what a run has started, kept in the key store itself.

Before a key is generated its planned id is recorded; the CSR and, after an HTTP 202
(RFC 7030 section 4.2.3), the time to retry follow.  A later run with the same key label
finds the record and resumes: the same key, the same CSR, never a second key.  The record
is removed when the certificate is stored, or when the enrollment failed for good and its
key was deleted again.
"""

from __future__ import annotations

import base64
import datetime
import json
from dataclasses import asdict, dataclass, replace

from est_hw import metrics
from est_hw.errors import TokenError
from est_hw.keys.base import KeyBackend

_PREFIX = "est-hw/pending/"


@dataclass(frozen=True)
class PendingEnrollment:
    """One enrollment in progress.

    :param operation: ``simpleenroll`` or ``simplereenroll``.
    :param server: the EST endpoint (URL with label) it was sent to.
    :param key_id: the id of the key being enrolled (planned before it exists).
    :param csr: the DER CSR once signed (resent unchanged on resume).
    :param retry_at: when the server said to retry (after a 202), ISO 8601 UTC.
    :param old_key_id: with rekey, the key to delete once the new certificate is stored.
    """

    operation: str
    server: str
    key_id: bytes
    key_label: str
    key_type: str
    csr: bytes | None = None
    retry_at: str | None = None
    old_key_id: bytes | None = None

    def with_csr(self, csr: bytes) -> PendingEnrollment:
        return replace(self, csr=csr)

    def with_retry_after(self, seconds: int) -> PendingEnrollment:
        """Record when to retry; a wait past the year 9999 is recorded as that end."""
        now = datetime.datetime.now(datetime.UTC)
        latest = datetime.datetime.max.replace(tzinfo=datetime.UTC)
        room = (latest - now).total_seconds()
        retry_at = latest if seconds >= room else now + datetime.timedelta(seconds=seconds)
        return replace(self, retry_at=retry_at.isoformat())

    def to_bytes(self) -> bytes:
        fields = asdict(self)
        for name in ("key_id", "csr", "old_key_id"):
            value = fields[name]
            fields[name] = base64.b64encode(value).decode() if value is not None else None
        return json.dumps({"version": 1, **fields}, sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PendingEnrollment:
        """Parse a record; :class:`TokenError` when it is not one est-hw wrote."""
        try:
            fields = json.loads(data)
            if fields.pop("version") != 1:
                raise ValueError("unknown version")
            for name in ("key_id", "csr", "old_key_id"):
                if fields.get(name) is not None:
                    fields[name] = base64.b64decode(fields[name], validate=True)
            return cls(**fields)
        except (ValueError, TypeError, KeyError) as exc:
            raise TokenError(f"unreadable enrollment record on the token: {exc}") from None


class Journal:
    """Pending-enrollment records of one key store, one per key label."""

    def __init__(self, backend: KeyBackend) -> None:
        self._backend = backend

    # Each call is token work, timed as the ``journal`` phase of --timings.

    def load(self, key_label: str) -> PendingEnrollment | None:
        with metrics.phase("journal"):
            data = self._backend.get_record(_PREFIX + key_label)
        return PendingEnrollment.from_bytes(data) if data is not None else None

    def save(self, entry: PendingEnrollment) -> PendingEnrollment:
        with metrics.phase("journal"):
            self._backend.put_record(_PREFIX + entry.key_label, entry.to_bytes())
        return entry

    def clear(self, key_label: str) -> None:
        with metrics.phase("journal"):
            self._backend.delete_record(_PREFIX + key_label)

"""S3 Object Lock for ``S3Storage``: the retain-until date of each write, reading it, extending it.

With ``[offbox] object_lock`` set, every object sbx writes (all but the writer lock's files,
which must stay deletable) carries ``ObjectLockMode`` and ``ObjectLockRetainUntilDate`` = now +
the lock period + :data:`RENEW_SLACK`. The period covers the retention policy
(``sbx.repository.retention.lock_days``). An object a new snapshot reuses is extended when its
date is less than a period away, to the same now + period + slack: so each reused object is
re-locked at most once every :data:`RENEW_SLACK`, and every snapshot's objects stay locked for
at least the period from the snapshot's copy. Dates are read with HeadObject (which returns them
to callers allowed ``s3:GetObjectRetention``); moto and AWS agree on all three calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tasks.clients.s3.connect import S3Options

#: how far beyond the period a lock is written, so that reused objects are re-locked rarely
RENEW_SLACK = timedelta(days=7)
#: keys whose objects are never locked: the writer lock is replaced and deleted by design
UNLOCKED_PREFIX = "locks/"


def lock_arguments(options: S3Options, key: str) -> dict[str, Any]:
    """The PutObject / CreateMultipartUpload arguments that lock ``key`` (none when unlocked)."""
    if options.object_lock is None or key.startswith(UNLOCKED_PREFIX):
        return {}
    return {
        "ObjectLockMode": options.object_lock,
        "ObjectLockRetainUntilDate": _target(options) + RENEW_SLACK,
    }


def retain_until(head: Mapping[str, Any]) -> datetime | None:
    """The retain-until date in a HeadObject answer (None: never locked)."""
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None


def extension(options: S3Options, key: str, until: datetime | None) -> dict[str, Any] | None:
    """The PutObjectRetention ``Retention`` that re-locks ``key``, locked ``until``, for
    period + slack from now; None when it is not locked by sbx or locked long enough."""
    if options.object_lock is None or key.startswith(UNLOCKED_PREFIX):
        return None
    if until is not None and until >= _target(options):
        return None
    return {"Mode": options.object_lock, "RetainUntilDate": _target(options) + RENEW_SLACK}


def _target(options: S3Options) -> datetime:
    """The earliest date a lock written or checked now must reach."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=options.lock_days)

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

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tasks.clients.s3.storage import S3Storage

#: how far beyond the period a lock is written, so that reused objects are re-locked rarely
RENEW_SLACK = timedelta(days=7)
#: keys whose objects are never locked: the writer lock is replaced and deleted by design
UNLOCKED_PREFIX = "locks/"


def lock_arguments(storage: S3Storage, key: str) -> dict[str, Any]:
    """The PutObject / CreateMultipartUpload arguments that lock ``key`` (none when unlocked)."""
    options = storage.options
    if options.object_lock is None or key.startswith(UNLOCKED_PREFIX):
        return {}
    return {
        "ObjectLockMode": options.object_lock,
        "ObjectLockRetainUntilDate": _target(storage) + RENEW_SLACK,
    }


def retained_until(storage: S3Storage, key: str) -> datetime | None:
    """The retain-until date S3 keeps for ``key`` (None: never locked); ObjectMissing if absent."""
    head = storage._head(key)
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None


def extend_retention(storage: S3Storage, key: str) -> bool:
    """Move ``key``'s lock to now + period + slack when it ends within the period."""
    options = storage.options
    if options.object_lock is None or key.startswith(UNLOCKED_PREFIX):
        return False
    until = retained_until(storage, key)
    if until is not None and until >= _target(storage):
        return False
    retention = {"Mode": options.object_lock, "RetainUntilDate": _target(storage) + RENEW_SLACK}
    call: Callable[..., Any] = storage.client.put_object_retention
    storage._call(
        "lock", key, call, Bucket=storage.bucket, Key=storage._name(key), Retention=retention
    )
    return True


def _target(storage: S3Storage) -> datetime:
    """The earliest date a lock written or checked now must reach."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(days=storage.options.lock_days)

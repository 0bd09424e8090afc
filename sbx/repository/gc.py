"""Pruning snapshots and collecting unreferenced objects (run under the writer lock).

Prune deletes the manifests a :class:`PrunePlan` removes, then collects garbage: every object no
remaining manifest references, and in-flight writes that killed processes left behind. If any
manifest cannot be read, collection stops before deleting anything: an object it might
reference is not garbage until we know. Prune then still removes what its plan removes (the plan
kept the unreadable snapshot and did not count it as a copy of anything) and reports the
collection as skipped, rather than failing after the deletes and blocking every later prune.

On a storage with S3 Object Lock (:class:`RetainingStorage`), a manifest or object whose
retain-until date is in the future is never deleted (not even asked to be: S3 would hide a locked
object behind a delete marker); the reports list what was left, and a later prune removes it.

A dry run is the same code against :class:`DryRunStorage`, which reads through to the real
storage and only records deletes (restic's approach), so both report the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import BinaryIO

from pydantic import BaseModel, ConfigDict, Field

from sbx.errors import ManifestInvalid, ObjectMissing, PolicyRefused, UnsupportedFormat
from sbx.repository.catalog import load_manifest, snapshot_ids
from sbx.repository.format import object_key, snapshot_key
from sbx.repository.objects import ObjectStore
from sbx.repository.retention import PrunePlan
from sbx.repository.storage import RetainingStorage, Storage, retained_until

log = logging.getLogger(__name__)

#: in-flight writes younger than this may belong to a live process (another repository user)
TMP_GRACE_S = 3600.0


class GcReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    dry_run: bool
    snapshots: int = Field(description="Snapshots whose objects were kept.")
    objects_total: int
    objects_deleted: int
    bytes_freed: int
    tmp_deleted: int
    tmp_bytes_freed: int
    duration_s: float
    skipped: str | None = Field(
        default=None, description="Why no object was collected (a manifest that cannot be read)."
    )
    objects_locked: int = Field(
        default=0, description="Unreferenced objects left because Object Lock still holds them."
    )
    locked_until: datetime | None = Field(
        default=None, description="The latest date one of those stays locked."
    )


class PruneReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    dry_run: bool
    removed: list[str]
    kept: dict[str, list[str]]
    locked: dict[str, datetime] = Field(
        default_factory=dict,
        description="Snapshots the plan drops but Object Lock still holds -> locked until; a "
        "later prune removes them (docs/repository.md, 'Object Lock').",
    )
    manifest_bytes_freed: int
    gc: GcReport


class DryRunStorage:
    """Reads through to ``inner``; deletes are only recorded and hidden from later reads.

    Lock keys pass through for writing, so a dry run holds the lock like a real one and sees the
    same consistent state.
    """

    def __init__(self, inner: Storage) -> None:
        self.inner = inner
        self.location = inner.location
        self.deleted: set[str] = set()

    def init(self) -> None:
        self.inner.init()

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        self._lock_only(key)
        self.inner.put(key, data)

    def get(self, key: str) -> bytes:
        self._visible(key)
        return self.inner.get(key)

    def open(self, key: str) -> BinaryIO:
        self._visible(key)
        return self.inner.open(key)

    def exists(self, key: str) -> bool:
        return key not in self.deleted and self.inner.exists(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        return (key for key in self.inner.list(prefix) if key not in self.deleted)

    def delete(self, key: str) -> None:
        self.deleted.add(key)

    def size(self, key: str) -> int:
        self._visible(key)
        return self.inner.size(key)

    def replace(self, key: str, data: bytes) -> None:
        self._lock_only(key)
        self.inner.replace(key, data)

    def rename(self, src: str, dst: str) -> None:
        self._lock_only(src)
        self.inner.rename(src, dst)

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        return self.inner.purge_tmp(older_than_s, dry_run=True)

    def retained_until(self, key: str) -> datetime | None:
        if isinstance(self.inner, RetainingStorage):
            return self.inner.retained_until(key)
        return None

    def extend_retention(self, key: str) -> bool:
        return False  # a dry run writes nothing

    def _visible(self, key: str) -> None:
        if key in self.deleted:
            raise ObjectMissing(self.location, key)

    @staticmethod
    def _lock_only(key: str) -> None:
        if not key.startswith("locks/"):
            raise RuntimeError(f"a dry run must not write {key}")


def prune_snapshots(storage: Storage, plan: PrunePlan, *, dry_run: bool) -> PruneReport:
    """Delete the manifests ``plan`` removes (that still exist), then collect garbage."""
    current = snapshot_ids(storage)
    doomed = set(plan.remove)
    if current and doomed.issuperset(current):
        raise PolicyRefused(
            f"The prune plan would delete every snapshot of {storage.location}; refused. "
            "Plan again with a policy that keeps at least one ('sbx prune --dry-run')."
        )
    if current and current[-1] in doomed:
        raise PolicyRefused(
            f"The prune plan would delete the newest snapshot {current[-1]}; refused. "
            "Plan again ('sbx prune --dry-run'): the newest snapshot is always kept."
        )
    removed = [snapshot_id for snapshot_id in current if snapshot_id in doomed]
    freed = 0
    locked: dict[str, datetime] = {}
    now = datetime.now(UTC)
    for snapshot_id in removed:
        key = snapshot_key(snapshot_id)
        try:
            until = retained_until(storage, key, now)
            if until is not None:  # Object Lock: a later prune removes it
                locked[snapshot_id] = until
                continue
            freed += storage.size(key)
        except ObjectMissing:
            continue  # removed by a previous, interrupted prune
        storage.delete(key)
    removed = [snapshot_id for snapshot_id in removed if snapshot_id not in locked]
    for snapshot_id, until in locked.items():
        log.warning(
            "left snapshot %s of %s: locked until %s",
            snapshot_id,
            storage.location,
            until.isoformat(timespec="seconds"),
        )
    log.info(
        "%s %d snapshots of %s: %s",
        "would delete" if dry_run else "deleted",
        len(removed),
        storage.location,
        ", ".join(removed) or "none",
    )
    return PruneReport(
        dry_run=dry_run,
        removed=removed,
        kept={k: v for k, v in plan.keep.items() if k in current},
        locked=locked,
        manifest_bytes_freed=freed,
        gc=_collect_unless_unreadable(storage, dry_run=dry_run),
    )


def _collect_unless_unreadable(storage: Storage, *, dry_run: bool) -> GcReport:
    started = time.monotonic()
    try:
        return collect_garbage(storage, dry_run=dry_run)
    except (ManifestInvalid, UnsupportedFormat) as exc:
        # nothing was collected: collect_garbage reads every manifest before deleting anything
        log.warning("not collecting objects in %s: %s", storage.location, exc)
        return GcReport(
            dry_run=dry_run,
            snapshots=len(snapshot_ids(storage)),
            objects_total=0,
            objects_deleted=0,
            bytes_freed=0,
            tmp_deleted=0,
            tmp_bytes_freed=0,
            duration_s=time.monotonic() - started,
            skipped=_why_not_collected(exc),
        )


def collect_garbage(
    storage: Storage, *, dry_run: bool, tmp_older_than_s: float = TMP_GRACE_S
) -> GcReport:
    """Delete objects no manifest references, and stale in-flight writes."""
    started = time.monotonic()
    ids = snapshot_ids(storage)
    referenced: set[str] = set()
    for snapshot_id in ids:
        # raises on a manifest that does not load: then nothing is deleted
        referenced |= load_manifest(storage, snapshot_id).object_ids()
    objects = ObjectStore(storage)
    total = deleted = freed = locked = 0
    latest: datetime | None = None
    now = datetime.now(UTC)
    for object_id in list(objects.ids()):
        total += 1
        if object_id in referenced:
            continue
        key = object_key(object_id)
        try:
            until = retained_until(storage, key, now)
            if until is not None:  # Object Lock: collected by a prune after that date
                locked, latest = locked + 1, max(latest or until, until)
                continue
            size = storage.size(key)
        except ObjectMissing:
            continue
        storage.delete(key)
        deleted, freed = deleted + 1, freed + size
    if locked:
        log.warning(
            "left %d unreferenced objects of %s: Object Lock holds them until %s at the latest",
            locked,
            storage.location,
            latest.isoformat(timespec="seconds") if latest else "?",
        )
    tmp_count, tmp_bytes = storage.purge_tmp(tmp_older_than_s)
    log.info(
        "%s %d of %d objects (%d bytes) and %d stale in-flight writes in %s",
        "would delete" if dry_run else "deleted",
        deleted,
        total,
        freed,
        tmp_count,
        storage.location,
    )
    return GcReport(
        dry_run=dry_run,
        snapshots=len(ids),
        objects_total=total,
        objects_deleted=deleted,
        bytes_freed=freed,
        tmp_deleted=tmp_count,
        tmp_bytes_freed=tmp_bytes,
        duration_s=time.monotonic() - started,
        objects_locked=locked,
        locked_until=latest,
    )


def _why_not_collected(exc: ManifestInvalid | UnsupportedFormat) -> str:
    what = f"{exc.where}: {exc.problem}" if isinstance(exc, ManifestInvalid) else str(exc)
    return (
        f"No unreferenced object was collected: a manifest cannot be read ({what}), and its "
        "snapshot may use any of them. Run 'sbx verify --all' to see the damage; once that "
        "manifest is repaired (e.g. copied back from the off-box copy) or removed, 'sbx prune' "
        "collects them."
    )

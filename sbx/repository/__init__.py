"""The sbx repository engine (format v1, docs/repository.md): what flows and tasks call.

Pure Python over a :class:`~sbx.repository.storage.Storage`; no Docker, no Prefect. Modules:

    format.py     layout, constants, manifest models, parsing
    objects.py    object encoding, ids, the object store, the plaintext cache
    walk.py       walking a source tree (include/exclude)
    parts.py      PartWriter: entries, packs, chunks, the stat cache
    writer.py     SnapshotWriter: lock, parts, manifest written last
    lock.py       the one-writer lock
    catalog.py    listing and loading snapshots
    safety.py     is a manifest safe to restore
    restore.py    staged, verified restore
    verify.py     re-read and re-hash
    retention.py  the pure prune policy
    gc.py         prune and garbage collection (and their dry run)

Typical use::

    repo = Repository.open_or_init(config.repository.location)
    with repo.writer(command="sbx backup") as writer:
        writer.begin_snapshot(previous=repo.latest_snapshot(), tags={"trigger": "schedule"})
        with writer.part("models", "immutable") as part:
            part.add_tree(stack / "data/models", "data/models", sha256=True)
        manifest = writer.commit(box={"compose_sha256": "..."})
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from random import Random

from sbx.errors import (
    ConfigError,
    KeyExists,
    ManifestInvalid,
    NotARepository,
    ObjectMissing,
    SnapshotNotFound,
    UnsupportedFormat,
)
from sbx.repository.catalog import (
    SnapshotSummary,
    UnreadableSnapshot,
    load_manifest,
    load_summaries,
    load_summary,
    snapshot_ids,
)
from sbx.repository.drills import newest_drill_passed
from sbx.repository.format import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PACK_SIZE,
    DEFAULT_SMALL_FILE_LIMIT,
    REPOSITORY_FILE,
    Entry,
    Extent,
    PartRecord,
    RepositoryInfo,
    SnapshotManifest,
    Stats,
    dump_model,
    parse_repository_info,
)
from sbx.repository.gc import DryRunStorage, GcReport, PruneReport, collect_garbage
from sbx.repository.gc import prune_snapshots as _prune
from sbx.repository.locations import local_storage
from sbx.repository.lock import WriterLock
from sbx.repository.objects import ObjectStore
from sbx.repository.parts import PartWriter
from sbx.repository.restore import RestoreReport, restore_snapshot
from sbx.repository.retention import Candidate, PrunePlan, RetentionPolicy, plan_prune
from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage
from sbx.repository.verify import Damage, VerifyReport, verify_snapshots
from sbx.repository.writer import SnapshotWriter

log = logging.getLogger(__name__)

__all__ = [
    "Damage",
    "Entry",
    "Extent",
    "GcReport",
    "PartRecord",
    "PartWriter",
    "PrunePlan",
    "PruneReport",
    "Repository",
    "RepositoryInfo",
    "RestoreReport",
    "RetentionPolicy",
    "SnapshotManifest",
    "SnapshotSummary",
    "SnapshotWriter",
    "Stats",
    "UnreadableSnapshot",
    "VerifyReport",
    "plan_prune",
]


class Repository:
    """One repository: open it, write snapshots, list, restore, verify, prune."""

    def __init__(
        self, storage: Storage, info: RepositoryInfo, *, lock_stale_after_s: float = 60.0
    ) -> None:
        self.storage = storage
        self.info = info
        self.lock_stale_after_s = lock_stale_after_s
        self.objects = ObjectStore(storage)

    @property
    def location(self) -> str:
        return self.storage.location

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(
        cls, location: str | Path | Storage, *, lock_stale_after_s: float = 60.0
    ) -> Repository:
        """Open an existing repository; :class:`NotARepository` when there is none."""
        storage = _storage_for(location)
        try:
            raw = storage.get(REPOSITORY_FILE)
        except ObjectMissing:
            raise NotARepository(storage.location) from None
        info = parse_repository_info(raw, f"{storage.location}/{REPOSITORY_FILE}")
        return cls(storage, info, lock_stale_after_s=lock_stale_after_s)

    @classmethod
    def open_or_init(
        cls,
        location: str | Path | Storage,
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        small_file_limit: int = DEFAULT_SMALL_FILE_LIMIT,
        pack_size: int = DEFAULT_PACK_SIZE,
        lock_stale_after_s: float = 60.0,
    ) -> Repository:
        """Open the repository, creating it only where the location is missing or empty."""
        storage = _storage_for(location)
        if storage.exists(REPOSITORY_FILE):
            return cls.open(storage, lock_stale_after_s=lock_stale_after_s)
        if not _is_empty(storage):
            raise NotARepository(storage.location, not_empty=True)
        storage.init()
        try:
            info = RepositoryInfo(
                id=str(uuid.uuid4()),
                created_at=datetime.now(UTC),
                chunk_size=chunk_size,
                small_file_limit=small_file_limit,
                pack_size=pack_size,
            )
        except ValueError as exc:
            raise ConfigError(f"Cannot create a repository in {storage.location}: {exc}") from exc
        # KeyExists: another process created it at the same moment; use theirs
        with contextlib.suppress(KeyExists):
            storage.put(REPOSITORY_FILE, dump_model(info))
        return cls.open(storage, lock_stale_after_s=lock_stale_after_s)

    # -- snapshots ---------------------------------------------------------------------------

    def list_snapshots(self) -> list[str]:
        """Ids of the complete snapshots, oldest first."""
        return snapshot_ids(self.storage)

    def load_snapshot(self, snapshot_id: str) -> SnapshotManifest:
        """The manifest of ``snapshot_id`` or ``"latest"``; :class:`SnapshotNotFound`."""
        return load_manifest(self.storage, snapshot_id)

    def snapshot_summary(self, snapshot_id: str) -> SnapshotSummary:
        """What a listing shows of ``snapshot_id``: its manifest without the file entries."""
        return load_summary(self.storage, snapshot_id)

    def snapshot_summaries(self) -> list[SnapshotSummary | UnreadableSnapshot]:
        """Every snapshot as a listing shows it, oldest first; damaged manifests included."""
        return load_summaries(self.storage)

    def latest_snapshot(self) -> SnapshotManifest | None:
        """The newest snapshot whose manifest loads (the base of the next backup), or None.

        A damaged newer manifest is passed over with a warning: it must not block backups,
        and the next one then simply reads the files it cannot reuse.
        """
        for snapshot_id in reversed(self.list_snapshots()):
            try:
                return self.load_snapshot(snapshot_id)
            except (ManifestInvalid, UnsupportedFormat) as exc:
                log.warning("not using snapshot %s as a base: %s", snapshot_id, exc)
            except SnapshotNotFound:
                continue  # pruned meanwhile
        return None

    def writer(self, *, command: str = "sbx backup", wait_s: float = 0.0) -> SnapshotWriter:
        """A snapshot writer; entering it takes the writer lock (waiting up to ``wait_s``)."""
        return SnapshotWriter(
            self.storage,
            self.info,
            command=command,
            stale_after_s=self.lock_stale_after_s,
            wait_s=wait_s,
        )

    def lock(self, *, command: str) -> WriterLock:
        """The writer lock (use ``with``; ``acquire(wait_s)`` to wait for a holder)."""
        return WriterLock(self.storage, command=command, stale_after_s=self.lock_stale_after_s)

    # -- reading -----------------------------------------------------------------------------

    def restore(
        self,
        snapshot: str | SnapshotManifest,
        target: Path,
        parts: list[str] | None = None,
        *,
        force: bool = False,
    ) -> RestoreReport:
        """Restore a snapshot (its id, ``latest``, or its manifest already loaded: a large one
        is not held twice) into ``target`` (missing or empty unless ``force``); verified,
        staged, nothing written at the target on any failure."""
        manifest = (
            snapshot if isinstance(snapshot, SnapshotManifest) else self.load_snapshot(snapshot)
        )
        return restore_snapshot(
            self.objects,
            manifest,
            target,
            parts,
            force=force,
            small_file_limit=self.info.small_file_limit,
        )

    def verify(
        self,
        snapshot_id: str | None = None,
        *,
        sample: float | None = None,
        rng: Random | None = None,
    ) -> VerifyReport:
        """Re-read and re-hash one snapshot (or ``latest``), or all when ``snapshot_id`` is None.

        A manifest that does not load is reported as damage, not raised.
        """
        if sample is not None and not 0 < sample <= 1:
            raise ConfigError(f"verify sample is {sample}; expected a fraction in (0, 1].")
        ids = [snapshot_id] if snapshot_id is not None else self.list_snapshots()

        def snapshots() -> Iterator[SnapshotManifest | Damage]:
            for one in ids:
                try:
                    yield self.load_snapshot(one)
                except (ManifestInvalid, UnsupportedFormat) as exc:
                    yield Damage(snapshot_id=one, reason=exc.message)
                except SnapshotNotFound:  # pruned meanwhile: --all checks what is there
                    if snapshot_id is not None:
                        raise

        return verify_snapshots(
            self.objects,
            snapshots,
            sample=sample,
            rng=rng,
            small_file_limit=self.info.small_file_limit,
        )

    # -- pruning -----------------------------------------------------------------------------

    def plan_prune(self, policy: RetentionPolicy, protected: Iterable[str] = ()) -> PrunePlan:
        """What ``policy`` keeps and removes now, per part (snapshot times come from their ids,
        which a damaged manifest still has). The newest snapshot that passed a restore drill is
        always among ``protected`` (invariant 6), whoever plans."""
        drilled = newest_drill_passed(self.storage, self.list_snapshots())
        protected = [*protected, drilled] if drilled else list(protected)
        candidates = []
        for listed in self.snapshot_summaries():
            created = datetime.strptime(listed.id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            if isinstance(listed, UnreadableSnapshot):
                candidates.append(
                    Candidate(id=listed.id, created_at=created, unreadable=listed.reason)
                )
                continue
            # a copy only of the parts it holds complete: skipped, failed and incomplete ones
            # (a directory vanished while it was read) do not count
            complete = frozenset(
                p.name for p in listed.parts if p.status == "captured" and not p.incomplete
            )
            candidates.append(Candidate(id=listed.id, created_at=created, parts=complete))
        return plan_prune(candidates, policy, protected)

    def prune(
        self,
        plan: PrunePlan,
        *,
        dry_run: bool = False,
        command: str = "sbx prune",
        wait_s: float = 0,
    ) -> PruneReport:
        """Delete the snapshots ``plan`` removes, then unreferenced objects, under the lock."""
        lock = self.lock(command=command)
        lock.acquire(wait_s)
        try:
            storage = DryRunStorage(self.storage) if dry_run else self.storage
            return _prune(storage, plan, dry_run=dry_run)
        finally:
            lock.release()

    def collect_garbage(
        self, *, dry_run: bool = False, command: str = "sbx prune", wait_s: float = 0
    ) -> GcReport:
        """Delete objects no snapshot references (and stale in-flight writes), under the lock."""
        lock = self.lock(command=command)
        lock.acquire(wait_s)
        try:
            storage = DryRunStorage(self.storage) if dry_run else self.storage
            return collect_garbage(storage, dry_run=dry_run)
        finally:
            lock.release()


def _storage_for(location: str | Path | Storage) -> Storage:
    return local_storage(location)


def _is_empty(storage: Storage) -> bool:
    if isinstance(storage, LocalStorage):
        root = storage.root
        if not root.exists():
            return True
        if not root.is_dir():
            return False
        # an empty tmp/ is what an init interrupted before sbx-repository.json leaves behind
        return all(
            child.name == "tmp" and child.is_dir() and not any(child.iterdir())
            for child in root.iterdir()
        )
    return next(iter(storage.list("")), None) is None

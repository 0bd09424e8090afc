"""Writing snapshots: the writer lock, the parts, and the manifest written last.

Objects are stored as parts are added; the manifest is stored only by :meth:`commit`, after every
pack is flushed, and that one atomic put is what makes the snapshot exist (design invariant 1).
If anything fails before that, no manifest is written: the snapshot list is unchanged and the
objects already stored stay as orphans until ``collect_garbage`` (they are reused if the next
backup needs them) — except when the repository's disk is full: then the objects this run
stored are removed again, so a failed backup does not leave the disk full.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import socket
import tempfile
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

from sbx.errors import ConfigError, RepositoryError, SbxError
from sbx.repository.content import WriteContext
from sbx.repository.format import (
    Entry,
    Extent,
    PartRecord,
    RepositoryInfo,
    SnapshotManifest,
    Stats,
    new_snapshot_id,
    object_key,
    snapshot_key,
)
from sbx.repository.lock import WriterLock
from sbx.repository.manifest_json import write_manifest
from sbx.repository.objects import ObjectStore, Uploader, out_of_space
from sbx.repository.parts import PartWriter
from sbx.repository.storage import Storage
from sbx.stopping import note_undone

log = logging.getLogger(__name__)
_SPOOL_BYTES = 4 << 20  # ~10,000 entries


def sbx_version() -> str:
    try:
        return importlib.metadata.version("sbx")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class _Snapshot:
    """The snapshot being written: its id, context and closed parts."""

    def __init__(self, ctx: WriteContext, tags: Mapping[str, str], stack_dir: str) -> None:
        self.created_at = datetime.now(UTC)
        self.id = new_snapshot_id(self.created_at)
        self.started = time.monotonic()
        self.ctx = ctx
        self.tags = dict(tags)
        self.stack_dir = stack_dir
        self.parts: list[PartRecord] = []
        self.open_part: PartWriter | None = None


class SnapshotWriter:
    """Writes snapshots into one repository while holding its writer lock.

    Use as a context manager (``with repo.writer(command=...) as writer``); per snapshot:
    :meth:`begin_snapshot`, then :meth:`part` for each part, then :meth:`commit`.
    """

    def __init__(
        self,
        storage: Storage,
        info: RepositoryInfo,
        *,
        command: str,
        stale_after_s: float = 60.0,
        wait_s: float = 0.0,
    ) -> None:
        self.storage = storage
        self.info = info
        self.objects = ObjectStore(storage)
        self._lock = WriterLock(storage, command=command, stale_after_s=stale_after_s)
        self._wait_s = wait_s
        self._snapshot: _Snapshot | None = None
        self._uploader: Uploader | None = None

    def __enter__(self) -> SnapshotWriter:
        self._lock.acquire(self._wait_s)
        try:
            self.objects.load_index()
        except BaseException:
            self._lock.release()
            raise
        # compression and storage overlap with reading: one worker per core, up to 4
        self._uploader = Uploader(self.objects, workers=max(1, min(4, os.cpu_count() or 1)))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        aborted = self._snapshot is not None
        given_up = self._snapshot.id if self._snapshot is not None else None
        try:
            if aborted:
                self.abort()
                # listed on the line of a command stopped by SIGTERM
                note_undone(f"snapshot {given_up} given up (no manifest)")
        finally:
            try:
                uploader = self._uploader
                if uploader is not None:
                    self._uploader = None
                    uploader.close()
                    if aborted and (
                        uploader.out_of_space or (exc is not None and out_of_space(exc))
                    ):
                        self._remove_stored(uploader.stored_ids)
            finally:
                self._lock.release()

    def begin_snapshot(
        self,
        previous: SnapshotManifest | None = None,
        tags: Mapping[str, str] | None = None,
        *,
        stack_dir: str | Path = "",
    ) -> str:
        """Start a snapshot; files unchanged since ``previous`` are reused without reading.

        Returns the new snapshot's id.
        """
        if not self._lock.held or self._uploader is None:
            raise RepositoryError(
                "The snapshot writer is used outside its 'with' block (the writer lock is not "
                "held); this is a bug in sbx, please report it."
            )
        if self._snapshot is not None:
            raise RepositoryError(
                f"Snapshot {self._snapshot.id} is still being written; commit or abort it first "
                "(a bug in sbx, please report it)."
            )
        files: dict[str, Entry] = {}
        small: dict[str, Extent] = {}
        for part in previous.parts if previous is not None else []:
            for entry in part.entries:
                if entry.type != "file":
                    continue
                if entry.stat_key is not None:
                    files[entry.path] = entry
                if len(entry.extents) == 1 and entry.content_size < self.info.small_file_limit:
                    small[entry.hash or ""] = entry.extents[0]
        self.objects.reuse.learn_packs(small.values())
        ctx = WriteContext(self.info, self.objects, self._uploader, files, small)
        self._snapshot = _Snapshot(ctx, tags or {}, str(stack_dir))
        return self._snapshot.id

    def part(self, name: str, method: str) -> PartWriter:
        """Open the next part (closing the one before); use it as a context manager."""
        snap = self._current()
        self._close_open_part(snap)
        if any(part.name == name for part in snap.parts):
            raise ConfigError(f"Part {name!r} is captured twice in snapshot {snap.id}.")
        snap.open_part = PartWriter(snap.ctx, name, method)
        return snap.open_part

    def commit(self, box: Mapping[str, Any] | None = None) -> SnapshotManifest:
        """Flush what is buffered, then store the manifest: from now on the snapshot exists."""
        snap = self._current()
        self._close_open_part(snap)
        totals = Stats()
        for part in snap.parts:
            totals = totals.plus(part.stats)
        manifest = SnapshotManifest(
            id=snap.id,
            created_at=snap.created_at,
            finished_at=datetime.now(UTC),
            host=socket.gethostname(),
            sbx_version=sbx_version(),
            stack_dir=snap.stack_dir,
            tags=snap.tags,
            box=dict(box or {}),
            parts=snap.parts,
            stats=totals.model_copy(update={"duration_s": time.monotonic() - snap.started}),
        )
        # refuse to publish if a prune may have run meanwhile (our lock was taken over)
        self._lock.check()
        # spooled: a large manifest's text goes through a temporary file, not memory
        with tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES) as spool:
            text = cast(BinaryIO, spool)  # typeshed does not call it one; it is
            write_manifest(manifest, text)
            text.seek(0)
            self.storage.put(snapshot_key(manifest.id), text)
        self._snapshot = None
        if self._uploader is not None:  # referenced now: never removed by a later abort
            self._uploader.stored_ids.clear()
        log.info("snapshot %s committed to %s", manifest.id, self.storage.location)
        return manifest

    def abort(self) -> None:
        """Give up the snapshot being written: no manifest; stored objects wait for GC."""
        if self._snapshot is not None:
            log.warning(
                "snapshot %s aborted; its objects stay until the next garbage collection",
                self._snapshot.id,
            )
        self._snapshot = None

    def _remove_stored(self, object_ids: list[str]) -> None:
        """Give the space back after a disk-full failure: the objects this run stored.

        Usually an aborted snapshot's objects stay for the next backup to reuse; on a full disk
        that would leave the disk full (and the box's other writers failing) until a prune.
        They are new in this run and we hold the lock, so no manifest refers to them.
        """
        removed = 0
        for object_id in object_ids:
            try:
                self.storage.delete(object_key(object_id))
            except SbxError as exc:  # keep going: every object removed frees space
                log.warning("could not remove object %s of the failed backup: %s", object_id, exc)
                continue
            self.objects.forget(object_id)
            removed += 1
        log.warning(
            "the disk of %s is full: removed the %d objects this failed backup had stored",
            self.storage.location,
            removed,
        )

    def _current(self) -> _Snapshot:
        if self._snapshot is None:
            raise RepositoryError(
                "No snapshot is being written: call begin_snapshot() first (a bug in sbx, "
                "please report it)."
            )
        return self._snapshot

    @staticmethod
    def _close_open_part(snap: _Snapshot) -> None:
        if snap.open_part is not None:
            snap.parts.append(snap.open_part.close())
            snap.open_part = None

"""The copy engine: make a remote repository hold everything the local one holds.

One listing of the remote, then every local key it lacks is sent: content objects in parallel
on a thread pool, snapshot manifests last and only once every object they reference is there
(invariant 1: a snapshot appears remotely only when it is whole). Lock files are never copied.
Nothing is ever overwritten (the storage's put is write-once), so a copy that was interrupted
resumes by sending only what the remote still lacks, and copying twice is a no-op.

The remote's writer lock is held while copying, so a remote prune never collects objects that a
copy counts on. The local repository is not locked: a local prune may remove a key while it is
copied; such a key is skipped (counted), and a manifest whose objects vanished is not sent.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sbx.errors import CopyIncomplete, ObjectMissing, SbxError, is_retryable
from sbx.repository.format import (
    OBJECTS_PREFIX,
    REPOSITORY_FILE,
    SNAPSHOTS_PREFIX,
    object_key,
)
from sbx.repository.lock import WriterLock
from sbx.repository.manifest_json import parse_manifest
from sbx.repository.storage import RetainingStorage, Storage

log = logging.getLogger(__name__)

#: how many times one key is tried before the copy gives up on it (transient errors only)
PUT_ATTEMPTS = 4
#: objects read and sent at once; with 8 MiB objects this bounds memory to ~2 × 8 × 8 MiB
DEFAULT_WORKERS = 8

Progress = Callable[[int, int], None]  # (keys done, keys to send)


class CopyReport(BaseModel):
    """What one copy did; counts are of repository keys, bytes are of the local (stored) form."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    source: str
    target: str
    local_keys: int
    remote_keys_before: int
    objects_sent: int
    manifests_sent: list[str]
    bytes_sent: int
    vanished: int
    duration_s: float
    locks_extended: int = 0

    @property
    def mib_per_s(self) -> float:
        return self.bytes_sent / (1 << 20) / self.duration_s if self.duration_s > 0 else 0.0


def replicate(
    source: Storage,
    target: Storage,
    *,
    workers: int = DEFAULT_WORKERS,
    lock_stale_after_s: float = 60.0,
    progress: Progress | None = None,
    retry_delay_s: float = 0.5,
) -> CopyReport:
    """Send every key of ``source`` that ``target`` lacks (see the module docstring).

    Raises :class:`CopyIncomplete` when anything could not be sent; what was sent stays, so the
    next call sends only the rest.
    """
    started = time.monotonic()
    with WriterLock(target, command="sbx copy", stale_after_s=lock_stale_after_s):
        local = [k for k in source.list("") if k.startswith((OBJECTS_PREFIX, SNAPSHOTS_PREFIX))]
        remote = set(target.list(OBJECTS_PREFIX)) | set(target.list(SNAPSHOTS_PREFIX))
        objects = sorted(k for k in local if k.startswith(OBJECTS_PREFIX) and k not in remote)
        manifests = sorted(k for k in local if k.startswith(SNAPSHOTS_PREFIX) and k not in remote)
        total = len(objects) + len(manifests)
        sender = _Sender(source, target, retry_delay_s=retry_delay_s)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, total)

        # content first, in parallel; a manifest only after its objects (invariant 1)
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="sbx-copy") as pool:
            pending: set[Future[None]] = set()
            for key in objects:
                if len(pending) >= 2 * workers:  # bounded window: memory, and early failure
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in finished:
                        future.result()  # anything but an SbxError is a bug: let it out
                        tick()
                pending.add(pool.submit(sender.send, key))
            for future in wait(pending).done:
                future.result()
                tick()
        present = remote | sender.sent
        sent_manifests = []
        for key in manifests:
            if sender.failed:
                break  # content failed: sending manifests now could publish a partial snapshot
            if sender.send_manifest(key, present):
                sent_manifests.append(key.removeprefix(SNAPSHOTS_PREFIX).removesuffix(".json"))
            tick()
        extended = _extend_locks(target, sender, workers) if sent_manifests else 0
    if sender.failed:
        first_key, first_error = sender.failed[0]
        raise CopyIncomplete(
            target.location,
            len(sender.failed),
            f"{first_key}: {first_error}",
            retryable=all(is_retryable(exc) for _, exc in sender.failed),
        )
    return CopyReport(
        source=source.location,
        target=target.location,
        local_keys=len(local),
        remote_keys_before=len(remote),
        objects_sent=len(sender.sent) - len(sent_manifests),
        manifests_sent=sent_manifests,
        bytes_sent=sender.bytes_sent,
        vanished=sender.vanished,
        duration_s=round(time.monotonic() - started, 3),
        locks_extended=extended,
    )


def _extend_locks(target: Storage, sender: _Sender, workers: int) -> int:
    """Object Lock: extend the lock of every object the sent snapshots reuse (and of the
    repository file), so that none expires while a kept snapshot still needs it."""
    if not isinstance(target, RetainingStorage):
        return 0
    reused = [*sorted(sender.reused - sender.sent), REPOSITORY_FILE]
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="sbx-lock") as pool:
        return sum(pool.map(target.extend_retention, reused))


class _Sender:
    """Sends one key per call, from several threads; the tallies are updated under a lock."""

    def __init__(self, source: Storage, target: Storage, *, retry_delay_s: float) -> None:
        self.source = source
        self.target = target
        self.retry_delay_s = retry_delay_s
        self.sent: set[str] = set()
        self.failed: list[tuple[str, SbxError]] = []
        self.bytes_sent = 0
        self.vanished = 0
        self.reused: set[str] = set()  # objects that sent manifests reference
        self._lock = threading.Lock()

    def send(self, key: str) -> None:
        try:
            data = self.source.get(key)
        except ObjectMissing:
            with self._lock:
                self.vanished += 1  # pruned locally meanwhile
            return
        except SbxError as exc:
            with self._lock:
                self.failed.append((key, exc))
            return
        for attempt in range(1, PUT_ATTEMPTS + 1):
            try:
                self.target.put(key, data)
            except SbxError as exc:
                if is_retryable(exc) and attempt < PUT_ATTEMPTS:
                    log.info("retrying %s after: %s", key, exc)
                    time.sleep(self.retry_delay_s * 2 ** (attempt - 1))
                    continue
                with self._lock:
                    self.failed.append((key, exc))
                return
            break
        with self._lock:
            self.sent.add(key)
            self.bytes_sent += len(data)

    def send_manifest(self, key: str, present: set[str]) -> bool:
        try:
            raw = self.source.get(key)
        except ObjectMissing:
            self.vanished += 1
            return False
        manifest = parse_manifest(raw, f"{key} in {self.source.location}")
        needed = {
            object_key(extent.object)
            for part in manifest.parts
            for entry in part.entries
            for extent in entry.extents
        }
        missing = sorted(needed - present)
        if missing:
            if self.source.exists(key):
                problem = SbxError(
                    f"snapshot {manifest.id} refers to {len(missing)} object(s) missing from "
                    f"{self.source.location} (first {missing[0]}); not sent. Run "
                    "'sbx verify --all' on the local repository"
                )
                self.failed.append((key, problem))
            else:
                self.vanished += 1
            return False
        self.send(key)
        if key in self.sent:
            self.reused |= needed
        return key in self.sent

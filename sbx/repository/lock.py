"""The one-writer lock of a repository (design invariant 7): ``locks/writer.json``.

Created with the storage's exclusive ``put`` (O_EXCL semantics: it fails when the key exists).
It records who holds it (pid, host, boot id, command, start) and a ``heartbeat_at`` that a daemon
thread refreshes every ``stale_after_s / 4`` seconds, so a crashed run cannot hold it forever:

- same host and boot, holder's pid gone      -> stale at once
- same host, other boot id (host rebooted)   -> stale at once
- heartbeat older than ``stale_after_s``     -> stale (any host; assumes clocks roughly agree)

A stale lock is moved aside with the storage's atomic ``rename`` and the exclusive create is
retried, so of two processes taking over the same stale lock only one wins. A holder whose lock
was taken over (it stopped heartbeating) notices on its next heartbeat; :meth:`WriterLock.check`
then raises, and the writer refuses to commit a snapshot a concurrent prune may have gutted.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import UTC, datetime
from types import TracebackType

from pydantic import BaseModel, ConfigDict, ValidationError

from sbx.errors import KeyExists, ObjectMissing, RepositoryError, RepositoryLocked
from sbx.processes import boot_id, pid_alive
from sbx.repository.format import LOCK_KEY
from sbx.repository.storage import Storage
from sbx.stopping import note_undone

log = logging.getLogger(__name__)


class LockInfo(BaseModel):
    """The content of ``locks/writer.json``."""

    model_config = ConfigDict(frozen=True)

    pid: int
    host: str
    boot_id: str
    command: str
    started_at: datetime
    heartbeat_at: datetime
    token: str


class WriterLock:
    """Holds a repository's writer lock while entered; see the module docstring."""

    def __init__(self, storage: Storage, *, command: str, stale_after_s: float = 60.0) -> None:
        self.storage = storage
        self.command = command
        self.stale_after_s = stale_after_s
        self._info: LockInfo | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False

    @property
    def held(self) -> bool:
        return self._info is not None and not self._lost

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_s`` for a live holder; :class:`RepositoryLocked`."""
        deadline = time.monotonic() + wait_s
        poll_s = min(1.0, max(self.stale_after_s / 8, 0.01))
        while True:
            now = datetime.now(UTC)
            mine = LockInfo(
                pid=os.getpid(),
                host=socket.gethostname(),
                boot_id=boot_id(),
                command=self.command,
                started_at=now,
                heartbeat_at=now,
                token=uuid.uuid4().hex,
            )
            try:
                self.storage.put(LOCK_KEY, mine.model_dump_json().encode())
            except KeyExists:
                pass
            else:
                self._info, self._lost = mine, False
                self._start_heartbeat()
                return
            try:
                raw = self.storage.get(LOCK_KEY)
            except ObjectMissing:
                continue  # released between our create and our read: try again
            holder = _parse(raw)
            reason = self._stale_reason(holder)
            if reason is not None:
                self._take_over(raw, holder, reason)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                assert holder is not None  # an unparseable lock is always stale
                raise RepositoryLocked(
                    self.storage.location,
                    holder.pid,
                    holder.host,
                    holder.started_at.isoformat(timespec="seconds"),
                    holder.command,
                    self.stale_after_s,
                )
            time.sleep(min(poll_s, remaining))

    def release(self) -> None:
        """Stop heartbeating and remove the lock if it is still ours."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._info is not None and self._still_mine():
            self.storage.delete(LOCK_KEY)
            note_undone(f"unlocked {self.storage.location}")  # listed when a stop is in flight
        self._info = None

    def check(self) -> None:
        """Raise when the lock was taken over while we held it (we stalled past stale time)."""
        if self._info is None or self._lost or not self._still_mine():
            self._lost = True
            raise RepositoryError(
                f"The writer lock of {self.storage.location} was taken over by another process "
                f"while this one held it (no heartbeat for {self.stale_after_s:g} s); nothing "
                "was committed. Run the command again."
            )

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    # -- internals -----------------------------------------------------------------------------

    def _stale_reason(self, holder: LockInfo | None) -> str | None:
        if holder is None:
            return "its content is unreadable"
        same_host = holder.host == socket.gethostname()
        mine = boot_id()
        if same_host and holder.boot_id and mine != "unknown":
            if holder.boot_id != mine:
                return "the host rebooted since it was taken"
            if not pid_alive(holder.pid):
                return f"its process (pid {holder.pid}) is gone"
        age = (datetime.now(UTC) - holder.heartbeat_at).total_seconds()
        if age > self.stale_after_s:
            return f"no heartbeat for {age:.0f} s (stale after {self.stale_after_s:g} s)"
        return None

    def _take_over(self, raw: bytes, holder: LockInfo | None, reason: str) -> None:
        aside = f"locks/stale-{uuid.uuid4().hex}.json"
        try:
            self.storage.rename(LOCK_KEY, aside)
        except ObjectMissing:
            return  # another process moved it first; retry the exclusive create
        moved = self.storage.get(aside)
        if moved != raw:
            # the holder heartbeated (or a new holder appeared) between our read and the move:
            # that lock is alive, give it back
            try:
                self.storage.rename(aside, LOCK_KEY)
            except KeyExists:
                log.warning("lock of %s changed hands during a takeover", self.storage.location)
            return
        self.storage.delete(aside)
        who = f"pid {holder.pid} on {holder.host} ({holder.command})" if holder else "unknown"
        log.warning(
            "took over the stale writer lock of %s held by %s: %s",
            self.storage.location,
            who,
            reason,
        )

    def _still_mine(self) -> bool:
        try:
            holder = _parse(self.storage.get(LOCK_KEY))
        except ObjectMissing:
            return False
        return holder is not None and self._info is not None and holder.token == self._info.token

    def _start_heartbeat(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._heartbeat, name="sbx-lock-heartbeat", daemon=True
        )
        self._thread.start()

    def _heartbeat(self) -> None:
        interval = self.stale_after_s / 4
        while not self._stop.wait(interval):
            info = self._info
            if info is None:
                return
            try:
                if not self._still_mine():
                    self._lost = True
                    log.error("writer lock of %s was taken over", self.storage.location)
                    return
                fresh = info.model_copy(update={"heartbeat_at": datetime.now(UTC)})
                self.storage.replace(LOCK_KEY, fresh.model_dump_json().encode())
                self._info = fresh
            except Exception:  # a failed heartbeat must not kill the thread: try again later
                log.warning("heartbeat of the writer lock failed", exc_info=True)


def _parse(raw: bytes) -> LockInfo | None:
    try:
        return LockInfo.model_validate_json(raw)
    except ValidationError:
        return None

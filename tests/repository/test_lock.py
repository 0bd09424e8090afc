"""The one-writer lock: fail fast or wait, take over dead and silent holders, never steal."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from sbx.errors import RepositoryError, RepositoryLocked
from sbx.repository import Repository
from sbx.repository.format import LOCK_KEY
from sbx.repository.lock import WriterLock, boot_id
from sbx.repository.storage import Storage
from sbx.repository.storage.memory import MemoryStorage


def _foreign_lock(
    storage: Storage, *, pid: int, host: str, boot: str, heartbeat_age_s: float = 0
) -> None:
    now = datetime.now(UTC)
    storage.put(
        LOCK_KEY,
        json.dumps(
            {
                "pid": pid,
                "host": host,
                "boot_id": boot,
                "command": "sbx backup (other)",
                "started_at": (now - timedelta(hours=1)).isoformat(),
                "heartbeat_at": (now - timedelta(seconds=heartbeat_age_s)).isoformat(),
                "token": "theirs",
            }
        ).encode(),
    )


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()  # reaped: the pid is free now
    return child.pid


def test_second_writer_fails_fast_with_who_holds_it(repo: Repository) -> None:
    with repo.writer(command="sbx backup --part models"):
        started = time.monotonic()
        with pytest.raises(RepositoryLocked) as caught, repo.writer(command="sbx prune"):
            pass
        assert time.monotonic() - started < 1
    message = str(caught.value)
    assert f"locked by pid {os.getpid()} on host {socket.gethostname()} since " in message
    assert "(sbx backup --part models); wait for it to finish" in message
    assert "the lock is taken over after 60 s" in message
    assert caught.value.retryable
    with repo.writer(command="after"):  # released on exit
        pass
    assert not repo.storage.exists(LOCK_KEY)


def test_second_writer_waits_for_the_first(repo: Repository) -> None:
    first = repo.lock(command="first")
    first.acquire()
    releaser = threading.Timer(0.3, first.release)
    releaser.start()
    started = time.monotonic()
    with repo.writer(command="second", wait_s=5):
        waited = time.monotonic() - started
    releaser.join()
    assert 0.2 < waited < 3


def test_lock_of_a_dead_process_is_taken_over_at_once(
    repo: Repository, caplog: pytest.LogCaptureFixture
) -> None:
    if not boot_id():
        pytest.skip("no boot id on this system")
    _foreign_lock(repo.storage, pid=_dead_pid(), host=socket.gethostname(), boot=boot_id())
    with caplog.at_level(logging.WARNING), repo.writer(command="mine"):
        pass
    assert "took over the stale writer lock" in caplog.text and "is gone" in caplog.text
    assert list(repo.storage.list("locks/")) == []


def test_lock_from_before_a_reboot_is_taken_over_at_once() -> None:
    storage = MemoryStorage()
    _foreign_lock(storage, pid=os.getpid(), host=socket.gethostname(), boot="an-older-boot")
    if not boot_id():
        pytest.skip("no boot id on this system")
    with WriterLock(storage, command="mine", stale_after_s=600):
        pass


def test_silent_lock_of_another_host_is_taken_over_after_stale_time() -> None:
    storage = MemoryStorage()
    _foreign_lock(storage, pid=1, host="elsewhere", boot="x", heartbeat_age_s=0)
    lock = WriterLock(storage, command="mine", stale_after_s=0.5)
    with pytest.raises(RepositoryLocked, match="host elsewhere"):
        lock.acquire(wait_s=0)
    started = time.monotonic()
    lock.acquire(wait_s=5)
    assert 0.4 < time.monotonic() - started < 3
    lock.release()
    _foreign_lock(storage, pid=1, host="elsewhere", boot="x", heartbeat_age_s=10)
    with WriterLock(storage, command="mine", stale_after_s=0.5):  # old heartbeat: at once
        pass


def test_heartbeat_keeps_a_live_lock_fresh() -> None:
    storage = MemoryStorage()
    with WriterLock(storage, command="long backup", stale_after_s=0.4):
        time.sleep(1.0)  # well past stale time: only the heartbeat keeps it
        with pytest.raises(RepositoryLocked, match="long backup"):
            WriterLock(storage, command="other", stale_after_s=0.4).acquire(wait_s=0)


def test_a_taken_over_lock_is_never_released_by_its_old_holder() -> None:
    storage = MemoryStorage()
    lock = WriterLock(storage, command="stalled", stale_after_s=600)
    lock.acquire()
    storage.delete(LOCK_KEY)  # as if another process judged it stale and took it
    _foreign_lock(storage, pid=1, host="elsewhere", boot="x")
    with pytest.raises(RepositoryError, match="taken over"):
        lock.check()
    lock.release()
    assert b"theirs" in storage.get(LOCK_KEY)


def test_writer_does_not_commit_after_losing_the_lock(repo: Repository) -> None:
    with repo.writer(command="stalled") as writer:
        writer.begin_snapshot()
        with writer.part("notes", "copy") as part:
            part.add_bytes("notes/a.md", b"a")
        repo.storage.delete(LOCK_KEY)
        _foreign_lock(repo.storage, pid=1, host="elsewhere", boot="x")
        with pytest.raises(RepositoryError, match="nothing was committed"):
            writer.commit()
    assert repo.list_snapshots() == []

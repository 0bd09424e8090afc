"""The storage contract, run for the local-directory backend and the in-memory test backend,
plus what only the local backend promises (files under its root, tmp/ handling)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sbx.errors import StorageError
from sbx.repository.storage import Storage
from sbx.repository.storage.contract import StorageContract
from sbx.repository.storage.local import LocalStorage
from sbx.repository.storage.memory import MemoryStorage


class TestLocalStorage(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Iterator[Storage]:
        backend = LocalStorage(tmp_path / "repo")
        backend.init()
        yield backend


class TestMemoryStorage(StorageContract):
    @pytest.fixture
    def storage(self) -> Iterator[Storage]:
        yield MemoryStorage()


def test_local_layout_and_no_leftover_tmp(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "new" / "repo")
    storage.init()
    storage.put("objects/ab/abc", b"data")
    assert (tmp_path / "new/repo/objects/ab/abc").read_bytes() == b"data"
    assert list((tmp_path / "new/repo/tmp").iterdir()) == []
    assert list(storage.list("")) == ["objects/ab/abc"]


def test_local_purge_tmp_removes_only_old_leftovers(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.init()
    old, young = tmp_path / "tmp/123-old", tmp_path / "tmp/123-young"
    old.write_bytes(b"x" * 100)
    young.write_bytes(b"y" * 10)
    past = time.time() - 7200
    os.utime(old, (past, past))
    assert list(storage.list("")) == []  # in-flight writes are never listed
    assert storage.purge_tmp(3600, dry_run=True) == (1, 100)
    assert old.exists()
    assert storage.purge_tmp(3600) == (1, 100)
    assert not old.exists() and young.exists()


def test_local_put_recreates_a_missing_tmp_dir(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.init()
    (tmp_path / "tmp").rmdir()
    storage.put("a", b"1")
    assert storage.get("a") == b"1"


def test_local_permission_error_is_permanent(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.init()
    tmp = tmp_path / "tmp"
    # root ignores file modes; an immutable directory (chattr +i) refuses root as well
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(tmp)], check=True)
        undo = ["chattr", "-i", str(tmp)]
    else:
        tmp.chmod(0o500)
        undo = ["chmod", "700", str(tmp)]
    try:
        with pytest.raises(StorageError) as caught:
            storage.put("a", b"1")
        assert not caught.value.retryable
        assert "permission" in str(caught.value).lower()
    finally:
        subprocess.run(undo, check=True)


def test_local_full_disk_is_permanent_and_says_what_to_do(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this machine")
    storage = LocalStorage(tmp_path)
    storage.init()
    (tmp_path / "tmp").rmdir()
    (tmp_path / "tmp").mkdir()
    # a tmp file name that is /dev/full: writes to it fail with ENOSPC
    real_open = os.open

    def full_open(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if str(path).startswith(str(tmp_path / "tmp")):
            return real_open("/dev/full", os.O_WRONLY)
        return real_open(path, flags, mode)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", full_open)
        with pytest.raises(StorageError) as caught:
            storage.put("objects/ab/x", b"x" * 100_000)
    assert not caught.value.retryable
    assert "ENOSPC" in str(caught.value) and "sbx prune" in str(caught.value)
    assert not storage.exists("objects/ab/x")


@pytest.mark.parametrize("location", ["", "  ", "ftp://host/backups", "sftp://box/x"])
def test_open_storage_refuses_what_is_no_repository_location(location: str) -> None:
    from sbx.errors import ConfigError
    from tasks.repository import open_storage

    with pytest.raises(ConfigError, match="neither a directory nor s3://"):
        open_storage(location)

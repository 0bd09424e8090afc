"""The contract every Storage backend passes (restic's shared backend suite, our version).

Use it by subclassing with a ``storage`` fixture that yields a fresh, initialised backend::

    class TestS3Storage(StorageContract):
        @pytest.fixture
        def storage(self, s3_server) -> Iterator[Storage]:
            ...

The tests only use the protocol, so they say what a repository may rely on: atomic write-once
puts, ObjectMissing for absent keys, idempotent deletes, prefix listing without in-flight
writes, key validation, and the lock-only replace/rename.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator

import pytest

from sbx.errors import InvalidKey, KeyExists, ObjectMissing, StorageError
from sbx.repository.storage import Storage

BAD_KEYS = ["", "/abs", "a/../b", "..", "a//b", "./a", "a/.", "a/", "tmp/x", "a\\b", "a\0b"]


class _SlowStream(io.RawIOBase):
    """A stream that hands out its first half, then blocks until released."""

    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0
        self.half_read = threading.Event()
        self.release = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.pos >= len(self.data) // 2:
            self.half_read.set()
            assert self.release.wait(10)
        n = min(len(buffer), len(self.data) - self.pos, len(self.data) // 2 or 1)
        buffer[:n] = self.data[self.pos : self.pos + n]
        self.pos += n
        return n


class _BrokenStream(io.RawIOBase):
    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        raise OSError(5, "injected read error")


class StorageContract:
    """Subclasses provide the ``storage`` fixture."""

    @pytest.fixture
    def storage(self) -> Iterator[Storage]:  # pragma: no cover - overridden
        raise NotImplementedError
        yield

    def test_is_a_storage(self, storage: Storage) -> None:
        assert isinstance(storage, Storage)
        assert storage.location

    def test_put_then_get_bytes_and_stream(self, storage: Storage) -> None:
        storage.put("objects/ab/one", b"hello")
        big = bytes(range(256)) * 12_000  # 3 MiB, more than one copy block
        storage.put("objects/cd/two", io.BytesIO(big))
        assert storage.get("objects/ab/one") == b"hello"
        assert storage.get("objects/cd/two") == big
        with storage.open("objects/cd/two") as stream:
            assert stream.read() == big
        assert storage.size("objects/cd/two") == len(big)
        assert storage.exists("objects/ab/one")
        assert not storage.exists("objects/ab/three")

    def test_empty_object(self, storage: Storage) -> None:
        storage.put("snapshots/empty", b"")
        assert storage.get("snapshots/empty") == b""
        assert storage.size("snapshots/empty") == 0

    def test_put_never_overwrites(self, storage: Storage) -> None:
        storage.put("k/one", b"first")
        storage.put("k/one", b"first")  # same content: a no-op
        storage.put("k/one", io.BytesIO(b"first"))
        with pytest.raises(KeyExists) as caught:
            storage.put("k/one", b"other")
        assert not caught.value.retryable
        with pytest.raises(KeyExists):
            storage.put("k/one", io.BytesIO(b"other content"))
        assert storage.get("k/one") == b"first"

    def test_missing_keys_are_permanent_errors(self, storage: Storage) -> None:
        for call in (storage.get, storage.open, storage.size):
            with pytest.raises(ObjectMissing) as caught:
                call("objects/zz/none")
            assert not caught.value.retryable
            assert "objects/zz/none" in str(caught.value)

    def test_delete_is_idempotent(self, storage: Storage) -> None:
        storage.put("snapshots/a.json", b"{}")
        storage.delete("snapshots/a.json")
        storage.delete("snapshots/a.json")
        storage.delete("never/was")
        assert not storage.exists("snapshots/a.json")
        assert list(storage.list("snapshots/")) == []
        storage.put("snapshots/a.json", b"{}")  # a deleted key can be written again
        assert storage.get("snapshots/a.json") == b"{}"

    def test_list_by_prefix(self, storage: Storage) -> None:
        keys = ["objects/ab/ab1", "objects/ab/ab2", "objects/cd/cd1", "snapshots/s1.json", "top"]
        for key in keys:
            storage.put(key, key.encode())
        assert sorted(storage.list("")) == sorted(keys)
        assert sorted(storage.list("objects/")) == keys[:3]
        assert sorted(storage.list("objects/ab/")) == keys[:2]
        assert sorted(storage.list("objects/a")) == keys[:2]
        assert sorted(storage.list("snap")) == ["snapshots/s1.json"]
        assert list(storage.list("nothing/")) == []
        assert list(storage.list("objects/ab/ab1x")) == []

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_invalid_keys_are_refused(self, storage: Storage, key: str) -> None:
        with pytest.raises(InvalidKey) as caught:
            storage.put(key, b"x")
        assert not caught.value.retryable
        with pytest.raises(InvalidKey):
            storage.get(key)
        with pytest.raises(InvalidKey):
            storage.exists(key)
        with pytest.raises(InvalidKey):
            storage.delete(key)

    def test_list_refuses_traversal(self, storage: Storage) -> None:
        for prefix in ("/etc", "../", "a/../"):
            with pytest.raises(InvalidKey):
                list(storage.list(prefix))

    def test_in_flight_put_is_invisible(self, storage: Storage) -> None:
        stream = _SlowStream(b"x" * 4096)
        writer = threading.Thread(target=storage.put, args=("objects/ab/slow", stream))
        writer.start()
        try:
            assert stream.half_read.wait(10)
            assert not storage.exists("objects/ab/slow")
            assert list(storage.list("")) == []
            with pytest.raises(ObjectMissing):
                storage.get("objects/ab/slow")
        finally:
            stream.release.set()
            writer.join(10)
        assert storage.get("objects/ab/slow") == b"x" * 4096

    def test_failed_put_leaves_nothing(self, storage: Storage) -> None:
        with pytest.raises((StorageError, OSError)):
            storage.put("objects/ab/broken", _BrokenStream())  # type: ignore[arg-type]
        assert not storage.exists("objects/ab/broken")
        assert list(storage.list("")) == []

    def test_concurrent_puts_of_the_same_object(self, storage: Storage) -> None:
        data = b"same content" * 1000
        errors: list[BaseException] = []

        def put() -> None:
            try:
                storage.put("objects/ab/shared", data)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=put) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert errors == []
        assert storage.get("objects/ab/shared") == data

    def test_replace_and_rename_for_the_lock(self, storage: Storage) -> None:
        storage.put("locks/writer.json", b"one")
        storage.replace("locks/writer.json", b"two")
        assert storage.get("locks/writer.json") == b"two"
        storage.rename("locks/writer.json", "locks/stale-1.json")
        assert not storage.exists("locks/writer.json")
        assert storage.get("locks/stale-1.json") == b"two"
        with pytest.raises(ObjectMissing):
            storage.rename("locks/writer.json", "locks/stale-2.json")
        storage.put("locks/writer.json", b"three")
        with pytest.raises(KeyExists):
            storage.rename("locks/writer.json", "locks/stale-1.json")
        assert storage.get("locks/writer.json") == b"three"

    def test_purge_tmp_on_a_clean_storage(self, storage: Storage) -> None:
        storage.put("objects/ab/x", b"x")
        assert storage.purge_tmp(0, dry_run=True) == (0, 0)
        assert storage.purge_tmp(0) == (0, 0)
        assert storage.get("objects/ab/x") == b"x"

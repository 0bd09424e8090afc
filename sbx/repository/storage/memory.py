"""An in-memory :class:`~sbx.repository.storage.Storage` for tests; passes the contract suite.

Objects live in a dict guarded by a lock; ``put`` publishes the whole object at once, like the
real backends. ``fail_after`` makes every put after the first N raise a retryable
:class:`StorageError`, to exercise failure paths at the protocol layer.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from typing import BinaryIO

from sbx.errors import KeyExists, ObjectMissing, StorageError
from sbx.repository.storage import check_key, check_prefix


class MemoryStorage:
    def __init__(self, location: str = "memory://test") -> None:
        self.location = location
        self.objects: dict[str, bytes] = {}
        self.tmp: dict[str, tuple[float, int]] = {}  # in-flight writes: name -> (started, size)
        self.puts = 0
        self.fail_after: int | None = None
        self._lock = threading.Lock()

    def init(self) -> None:
        pass

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        check_key(key)
        content = bytes(data) if isinstance(data, bytes | bytearray) else data.read()
        with self._lock:
            if self.fail_after is not None and self.puts >= self.fail_after:
                raise StorageError(f"injected failure storing {key}", key=key, retryable=True)
            self.puts += 1
            existing = self.objects.get(key)
            if existing is not None:
                if existing != content:
                    raise KeyExists(self.location, key)
                return
            self.objects[key] = content

    def get(self, key: str) -> bytes:
        check_key(key)
        with self._lock:
            try:
                return self.objects[key]
            except KeyError:
                raise ObjectMissing(self.location, key) from None

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def exists(self, key: str) -> bool:
        check_key(key)
        with self._lock:
            return key in self.objects

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        with self._lock:
            keys = [key for key in self.objects if key.startswith(prefix)]
        return iter(keys)

    def delete(self, key: str) -> None:
        check_key(key)
        with self._lock:
            self.objects.pop(key, None)

    def size(self, key: str) -> int:
        return len(self.get(key))

    def replace(self, key: str, data: bytes) -> None:
        check_key(key)
        with self._lock:
            self.objects[key] = bytes(data)

    def rename(self, src: str, dst: str) -> None:
        check_key(src)
        check_key(dst)
        with self._lock:
            if dst in self.objects:
                raise KeyExists(self.location, dst)
            try:
                self.objects[dst] = self.objects.pop(src)
            except KeyError:
                raise ObjectMissing(self.location, src) from None

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        cutoff = time.time() - older_than_s
        with self._lock:
            stale = {name: size for name, (at, size) in self.tmp.items() if at <= cutoff}
            if not dry_run:
                for name in stale:
                    del self.tmp[name]
        return len(stale), sum(stale.values())

"""Content objects: the one place that stores and loads them (their encoding: codec.py).

An object is ``magic/version byte (0xB1) + codec byte (0 raw, 1 zstd) + payload``. Its id is the
blake3 hex digest of its *plaintext*, so deduplication works across compression choices, and a
load re-hashes the plaintext: any damaged byte surfaces as :class:`CorruptObject` naming the
object, never as wrong data.
"""

from __future__ import annotations

import errno
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository.codec import (
    CODEC_RAW,
    CODEC_ZSTD,
    COMPRESS_MAX_RATIO,
    MAX_PLAINTEXT,
    OBJECT_MAGIC,
    SAMPLE_MIN,
    SAMPLE_SLICE,
    SAMPLE_SLICES,
    ZSTD_CHUNK_LEVEL,
    ZSTD_LEVEL,
    decode_object,
    encode_object,
    encode_with_sampling,
    hash_bytes,
)
from sbx.repository.format import OBJECT_ID_RE, OBJECTS_PREFIX, object_key
from sbx.repository.object_check import ReuseCheck
from sbx.repository.storage import Storage


@dataclass(frozen=True)
class Stored:
    """The outcome of :meth:`ObjectStore.put`."""

    object_id: str
    new: bool
    stored_size: int


class ObjectStore:
    """Stores and loads objects of one repository; remembers which ids exist.

    The index of existing ids is loaded once (one listing) by :meth:`load_index`, so a backup
    asks the storage nothing per chunk; without it, :meth:`has` asks the storage.
    """

    def __init__(self, storage: Storage, *, check_reused: bool | None = None) -> None:
        self.storage = storage
        self.reuse = ReuseCheck(storage, check_reused)
        self._known: set[str] | None = None
        self._lock = threading.Lock()
        #: objects stored raw because their sample did not compress (never compressed whole)
        self.sampled_raw = 0

    def load_index(self) -> None:
        self._known = set(self.ids())

    def ids(self) -> Iterator[str]:
        """Every object id stored (names that are not object ids are ignored)."""
        for key in self.storage.list(OBJECTS_PREFIX):
            name = key.rpartition("/")[2]
            if OBJECT_ID_RE.match(name) and key == object_key(name):
                yield name

    def has(self, object_id: str) -> bool:
        if self._known is not None:
            return object_id in self._known
        return self.storage.exists(object_key(object_id))

    def usable(self, object_id: str, need: int, *, exact: bool = False) -> bool:
        """Whether ``object_id`` exists and its size and header say it holds ``need`` bytes."""
        return self.has(object_id) and self.reuse.holds(object_id, need, exact=exact)

    def put(
        self,
        plaintext: bytes | memoryview,
        object_id: str | None = None,
        *,
        sample: bool = False,
        rewrite: bool = False,
    ) -> Stored:
        """Store ``plaintext`` unless an object with its id exists (then nothing is written).

        ``sample``: compress by a sample (:func:`encode_object`); ``rewrite``: it is damaged.
        """
        object_id = object_id or hash_bytes(plaintext)
        if self.has(object_id) and not rewrite:
            return Stored(object_id, new=False, stored_size=0)
        encoded, sampled_raw = encode_with_sampling(plaintext, sample)
        if rewrite:  # write-once storage: the damaged object goes first (we hold the lock)
            self.storage.delete(object_key(object_id))
        self.storage.put(object_key(object_id), encoded)
        self.reuse.stored(object_id, len(plaintext))
        with self._lock:
            if self._known is not None:
                self._known.add(object_id)
            self.sampled_raw += sampled_raw
        return Stored(object_id, new=True, stored_size=len(encoded))

    def get(self, object_id: str) -> bytes:
        """The verified plaintext; :class:`ObjectMissing` or :class:`CorruptObject` otherwise."""
        stored = self.storage.get(object_key(object_id))
        return decode_object(object_id, stored, self.storage.location)

    def forget(self, object_id: str) -> None:
        if self._known is not None:
            with self._lock:
                self._known.discard(object_id)


class PlaintextCache:
    """Loads each object once for a known sequence of uses (restore, verify).

    ``uses`` counts how often each object will be asked for; a loaded object stays cached while
    uses remain and the cache holds less than ``budget`` bytes, so a pack shared by hundreds of
    small files, or the one all-zero chunk of a sparse file, is read and checked once.
    Failures are remembered too: a damaged object is reported for every use without re-reading.

    With ``order`` (the object ids in the order they will be asked for) and ``workers``, objects
    are read, decoded and checked against their ids on worker threads up to ``window`` objects
    ahead of the caller, so reading overlaps with whatever the caller does with the plaintext.
    A prefetched object counts as loaded (or failed) only when the caller gets it; asking in
    another order, or skipping, is allowed (a skipped object is read on its own when asked).
    Use it as a context manager, or :meth:`close` it, to stop the workers.
    """

    def __init__(
        self,
        objects: ObjectStore,
        uses: dict[str, int],
        budget: int = 256 << 20,
        *,
        order: list[str] | None = None,
        workers: int = 0,
        window: int = 0,
    ) -> None:
        self.objects = objects
        self._uses = uses
        self._budget = budget
        self._held = 0
        self._cache: dict[str, bytes] = {}
        self.failed: dict[str, Exception] = {}
        self.seen: set[str] = set()  # loaded or failed at least once
        self.loaded = 0
        self.loaded_bytes = 0
        self._order = order if workers > 0 else None
        self._next = 0  # the next position in ``order`` to consider prefetching
        self._window = window or 2 * workers
        self._ahead: dict[str, Future[bytes]] = {}
        self._pool = (
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbx-read")
            if self._order
            else None
        )

    def get(self, object_id: str) -> bytes:
        if object_id in self.failed:
            raise self.failed[object_id]
        left = self._uses.get(object_id, 1) - 1
        self._uses[object_id] = left
        data = self._cache.get(object_id)
        if data is None:
            data = self._load(object_id)
            if left > 0 and self._held + len(data) <= self._budget:
                self._cache[object_id] = data
                self._held += len(data)
        elif left <= 0:
            del self._cache[object_id]
            self._held -= len(data)
        return data

    def check(self, object_id: str) -> None:
        """Load ``object_id`` unless it was loaded before (to verify it), without caching it."""
        if object_id in self.failed:
            raise self.failed[object_id]
        if object_id not in self.seen:
            self._load(object_id)

    def close(self) -> None:
        """Stop prefetching: queued reads are dropped, running ones finish."""
        for future in self._ahead.values():
            future.cancel()
        self._ahead.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __enter__(self) -> PlaintextCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _load(self, object_id: str) -> bytes:
        self._prefetch()
        future = self._ahead.pop(object_id, None)
        self._prefetch()  # keep the workers busy while this one is waited for
        self.seen.add(object_id)
        try:
            data = future.result() if future is not None else self.objects.get(object_id)
        except (CorruptObject, ObjectMissing) as exc:
            self.failed[object_id] = exc
            raise
        self.loaded += 1
        self.loaded_bytes += len(data)
        return data

    def _prefetch(self) -> None:
        order, pool = self._order, self._pool
        if order is None or pool is None:
            return
        while len(self._ahead) < self._window and self._next < len(order):
            object_id = order[self._next]
            self._next += 1
            if object_id in self._ahead or object_id in self._cache or object_id in self.failed:
                continue  # on its way, or served from the cache
            self._ahead[object_id] = pool.submit(self.objects.get, object_id)


class Uploader:
    """Encodes and stores new objects on worker threads while the caller reads and hashes.

    Whether an object is new is decided in the caller's thread (so statistics are exact and an
    object is never written twice, even when two chunks with the same id are in flight); the
    zstd and storage work, which release the GIL, run on ``workers`` threads. At most
    ``window`` objects wait at once, which bounds memory: a backup holds about ``window`` x 2
    chunks in flight (plaintext and compressed) besides the one being read.
    """

    def __init__(self, objects: ObjectStore, *, workers: int = 2, window: int = 4) -> None:
        self.objects = objects
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbx-store")
        self._window = window
        self._pending: deque[Future[int]] = deque()
        self._in_flight: set[str] = set()
        self.stored_bytes = 0
        #: ids of the objects this uploader stored (new ones), in the order they were stored
        self.stored_ids: list[str] = []
        #: a store failed because the repository's disk is full (see :func:`out_of_space`)
        self.out_of_space = False

    def has(self, object_id: str) -> bool:
        """True when the object is stored or queued to be."""
        return object_id in self._in_flight or self.objects.has(object_id)

    def reusable(self, object_id: str, need: int, *, exact: bool = False) -> bool:
        """True when the object is queued, or stored and sound (:meth:`ObjectStore.usable`)."""
        return object_id in self._in_flight or self.objects.usable(object_id, need, exact=exact)

    def submit(self, object_id: str, plaintext: bytes, *, sample: bool = False) -> bool:
        """Queue ``plaintext`` for storing; False (and nothing queued) when it exists already.

        A damaged existing object (size or header) is stored again. ``sample``: decide
        compression from a sample first (file chunks; not packs).
        """
        rewrite = self.objects.has(object_id)
        if object_id in self._in_flight or (
            rewrite and self.objects.usable(object_id, len(plaintext), exact=True)
        ):
            return False
        while len(self._pending) >= self._window:
            self._collect(self._pending.popleft())
        self._in_flight.add(object_id)
        self._pending.append(self._pool.submit(self._store, object_id, plaintext, sample, rewrite))
        return True

    def wait(self) -> None:
        """Block until everything queued is stored; re-raises the first failure."""
        while self._pending:
            self._collect(self._pending.popleft())

    def close(self) -> None:
        """Stop: queued work not yet started is dropped (its objects are orphans for GC)."""
        for future in self._pending:
            future.cancel()
        self._pool.shutdown(wait=True)
        self._pending.clear()

    def _store(self, object_id: str, plaintext: bytes, sample: bool, rewrite: bool) -> int:
        try:
            stored = self.objects.put(plaintext, object_id, sample=sample, rewrite=rewrite)
        except Exception as exc:
            self.out_of_space = self.out_of_space or out_of_space(exc)
            raise
        if stored.new:
            self.stored_ids.append(object_id)  # list.append is atomic: workers share it
        return stored.stored_size

    def _collect(self, future: Future[int]) -> None:
        self.stored_bytes += future.result()


def out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` (or an error it was raised from) is a full disk or an exceeded quota."""
    seen: BaseException | None = exc
    for _ in range(8):  # a chain of causes is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# the encoding is imported from here by the rest of the engine and the tests
__all__ = [
    "CODEC_RAW",
    "CODEC_ZSTD",
    "COMPRESS_MAX_RATIO",
    "MAX_PLAINTEXT",
    "OBJECT_MAGIC",
    "SAMPLE_MIN",
    "SAMPLE_SLICE",
    "SAMPLE_SLICES",
    "ZSTD_CHUNK_LEVEL",
    "ZSTD_LEVEL",
    "ObjectStore",
    "PlaintextCache",
    "Stored",
    "Uploader",
    "decode_object",
    "encode_object",
    "hash_bytes",
    "out_of_space",
]

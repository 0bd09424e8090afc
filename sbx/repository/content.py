"""Storing file contents for one part: chunks of big files, the pack of small ones.

A file is read ``chunk_size`` bytes at a time. If the first read ends below
``small_file_limit`` (so the whole file is in hand), its bytes go into the pack buffer, unless a
file with the same content hash already lives in a pack (then its extent is reused). Otherwise
every chunk is its own object. Objects are hashed here and handed to the :class:`Uploader`,
which stores the new ones on worker threads; memory stays at one chunk being read, the pack
buffer, and the uploader's window.

Sparse files: before each chunk after the first, ``SEEK_DATA`` asks the file system where the
next data is. A chunk that lies wholly in a hole is the all-zero chunk of its length (one object,
:func:`~sbx.repository.fastcopy.zero_id`) and is skipped with a seek instead of read, so a 20 GiB
file that is mostly hole costs its data, not 20 GiB of reads and hashing. The manifest is the
same as if the zeros had been read.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO

from blake3 import blake3

from sbx.repository.fastcopy import zero_id
from sbx.repository.format import Entry, Extent, RepositoryInfo, extents_hash
from sbx.repository.objects import ObjectStore, Uploader, hash_bytes

PENDING = ""  # object id of extents in the pack being filled; set when the pack is stored

#: SHA-256 (models' SHA256SUMS) runs beside blake3 on a second core: both release the GIL
_SHA_POOL = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sbx-sha256")


class _Sha256:
    """SHA-256 of a file's chunks, fed in order on the pool, at most one chunk behind."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._last: Future[None] | None = None

    def update(self, block: bytes) -> None:
        if self._last is not None:
            self._last.result()  # keeps the order and holds at most one chunk in flight
        self._last = _SHA_POOL.submit(self._hash.update, block)

    def hexdigest(self) -> str:
        if self._last is not None:
            self._last.result()
        return self._hash.hexdigest()


@dataclass
class Counts:
    """The mutable side of :class:`~sbx.repository.format.Stats`, for one part."""

    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    skipped: int = 0
    bytes: int = 0
    new_bytes: int = 0
    reused_bytes: int = 0
    new_objects: int = 0
    stored_bytes: int = 0
    files_read: int = 0


@dataclass
class WriteContext:
    """What every part of one snapshot shares."""

    info: RepositoryInfo
    objects: ObjectStore
    uploader: Uploader
    previous: dict[str, Entry]  # file entries of the previous snapshot, by path
    small_index: dict[str, Extent]  # content hash -> extent, for small files seen so far
    paths: dict[str, str] = field(default_factory=dict)  # path -> part, across the snapshot


@dataclass(frozen=True)
class Content:
    """What storing one file's bytes produced."""

    extents: list[Extent]
    hash: str
    sha256: str | None
    read: int
    pending: bool  # its extent points into the unflushed pack


class ContentWriter:
    """Stores the file contents of one part (see the module docstring)."""

    def __init__(
        self,
        info: RepositoryInfo,
        objects: ObjectStore,
        uploader: Uploader,
        small_index: dict[str, Extent],
        counts: Counts,
    ) -> None:
        self.info = info
        self.objects = objects
        self.uploader = uploader
        self.small_index = small_index  # content hash -> extent, shared by the snapshot
        self.counts = counts
        self._pack = bytearray()
        self._pack_new = 0
        self._pending_hashes: list[str] = []

    @property
    def pack_full(self) -> bool:
        return len(self._pack) >= self.info.pack_size

    def store(self, source: BinaryIO | io.RawIOBase, sha256: bool) -> Content:
        """Read ``source`` to its end and store its bytes.

        A small file's hash is blake3 of its bytes; a chunked file's is :func:`extents_hash`
        (each chunk is hashed once, for its object id).
        """
        sha = _Sha256() if sha256 else None
        block = read_exact(source, self.info.chunk_size)
        read = len(block)
        if read < self.info.small_file_limit:  # the whole file is in `block`: EOF reached
            if sha is not None:
                sha.update(block)
            content_hash = blake3(block).hexdigest()
            extents, pending = self._store_small(block, content_hash)
        else:
            extents, pending = [], False
            fd = _seekable_fd(source)
            while block:
                if sha is not None:
                    sha.update(block)
                extents.append(self._store_chunk(block))
                if fd is not None:  # chunks in a hole: the zero chunk, skipped with a seek
                    while hole := hole_ahead(fd, read, self.info.chunk_size):
                        if sha is not None:
                            sha.update(_zeros(hole))
                        extents.append(self._store_zero_chunk(hole))
                        read += hole
                        os.lseek(fd, read, os.SEEK_SET)
                block = read_exact(source, self.info.chunk_size)
                read += len(block)
            content_hash = extents_hash(extents)
        self.counts.files += 1
        self.counts.bytes += read
        digest = sha.hexdigest() if sha is not None else None
        return Content(extents, content_hash, digest, read, pending)

    def flush_pack(self) -> str | None:
        """Hand the pack to the uploader; returns its id (None when the pack was empty)."""
        if not self._pack:
            return None
        data = bytes(self._pack)
        object_id = hash_bytes(data)
        if self.uploader.submit(object_id, data):
            self.counts.new_objects += 1
        else:  # the same pack exists already: its bytes were not new after all
            self.counts.new_bytes -= self._pack_new
            self.counts.reused_bytes += self._pack_new
        for content_hash in self._pending_hashes:
            extent = self.small_index[content_hash]
            self.small_index[content_hash] = Extent(object_id, extent.offset, extent.length)
        self._pending_hashes = []
        self._pack, self._pack_new = bytearray(), 0
        return object_id

    def discard_pack(self) -> None:
        """Drop the unstored pack (its part failed) and forget the extents pointing into it."""
        for content_hash in self._pending_hashes:
            self.small_index.pop(content_hash, None)
        self._pending_hashes = []
        self.counts.new_bytes -= self._pack_new
        self._pack, self._pack_new = bytearray(), 0

    def _store_chunk(self, block: bytes) -> Extent:
        object_id = hash_bytes(block)
        if self.uploader.submit(object_id, block, sample=True):
            self.counts.new_bytes += len(block)
            self.counts.new_objects += 1
        else:
            self.counts.reused_bytes += len(block)
        return Extent(object_id, 0, len(block))

    def _store_zero_chunk(self, length: int) -> Extent:
        object_id = zero_id(length)
        if self.uploader.reusable(object_id, length, exact=True):
            self.counts.reused_bytes += length
            return Extent(object_id, 0, length)
        return self._store_chunk(_zeros(length))

    def _store_small(self, data: bytes, content_hash: str) -> tuple[list[Extent], bool]:
        if not data:
            return [], False
        hit = self.small_index.get(content_hash)
        if hit is not None and (
            hit.object == PENDING or self.uploader.reusable(hit.object, hit.offset + hit.length)
        ):
            self.counts.reused_bytes += len(data)
            return [hit], hit.object == PENDING
        extent = Extent(PENDING, len(self._pack), len(data))
        self._pack += data
        self._pack_new += len(data)
        self.counts.new_bytes += len(data)
        self.small_index[content_hash] = extent
        self._pending_hashes.append(content_hash)
        return [extent], True


def read_exact(source: BinaryIO | io.RawIOBase, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at end of file (raw reads may return short)."""
    block = source.read(size) or b""
    if len(block) == size or not block:
        return block
    parts = [block]
    got = len(block)
    while got < size:
        more = source.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def hole_ahead(fd: int, position: int, chunk_size: int) -> int:
    """The length of the chunk at ``position`` of ``fd`` when it lies wholly in a hole, else 0.

    The chunk is ``chunk_size`` bytes, or what is left of the file (0 at its end). The file's
    offset is left at ``position``. File systems without hole support report data everywhere.
    """
    size = os.fstat(fd).st_size
    length = min(chunk_size, size - position)
    if length <= 0:
        return 0
    try:
        data = os.lseek(fd, position, os.SEEK_DATA)
    except OSError as exc:
        if exc.errno != errno.ENXIO:  # ENXIO: no data after position, a hole up to the end
            os.lseek(fd, position, os.SEEK_SET)
            return 0
        data = size
    os.lseek(fd, position, os.SEEK_SET)
    return length if data >= position + length else 0


def _seekable_fd(source: BinaryIO | io.RawIOBase) -> int | None:
    """The descriptor of an unbuffered file (where a seek on the fd is the reader's position)."""
    if not isinstance(source, io.FileIO) or not hasattr(os, "SEEK_DATA"):
        return None
    return source.fileno()


@functools.lru_cache(maxsize=2)  # the chunk size, and one file's last chunk
def _zeros(length: int) -> bytes:
    return bytes(length)


def fstat_of(source: BinaryIO | io.RawIOBase) -> os.stat_result | None:
    try:
        return os.fstat(source.fileno())
    except (OSError, io.UnsupportedOperation):
        return None  # in-memory data: nothing can change under us

"""Restore's fast path for large files of a local repository: kernel copies, checked after.

A chunked file whose every extent is a whole raw (uncompressed) object of a repository on a
local disk is restored without bringing its bytes into Python: ``copy_file_range`` copies each
object's payload into the staging file (page cache to page cache, or a reflink where the file
system shares blocks), then the staging file's bytes are hashed through a short-lived ``mmap``
and must match each object's id. What is checked is what was written, so the guarantee is the
same as the general path's (every object checked against its id), with one copy of the data
instead of three (read into a buffer, slice off the header, write) and no large Python buffers:
on a box under memory pressure, allocating pages is what restore time is made of.

Where the kernel cannot copy between the two files (the repository and the target on different
file systems: ``EXDEV`` on older kernels, ``EOPNOTSUPP``, ``ENOSYS``, ``EINVAL``), the rest of
the object is copied with plain reads and writes; the check after is the same.

An extent whose object is the all-zero block of its length is not read at all: it becomes a hole,
as in the general path. Files are written on a small thread pool (both the copy and blake3
release the GIL), each created by the caller first so hard links to it can follow at once.
"""

from __future__ import annotations

import errno
import mmap
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import cache
from pathlib import Path

from blake3 import blake3

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository.format import Entry, object_key
from sbx.repository.objects import CODEC_RAW, OBJECT_MAGIC
from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage

_HEADER = 2
# copy_file_range cannot do this pair of files (cross-device, unsupported): copy by hand
_NO_KERNEL_COPY = frozenset({errno.EXDEV, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL})
_BLOCK = 1 << 20
_PAGE = mmap.ALLOCATIONGRANULARITY


@cache
def zero_id(length: int) -> str:
    """The object id of ``length`` zero bytes (a sparse file's hole chunk)."""
    return blake3(bytes(length)).hexdigest()


class FastCopier:
    """Writes eligible files of a local repository with kernel copies on ``workers`` threads."""

    def __init__(self, storage: Storage, workers: int) -> None:
        self.local = storage if isinstance(storage, LocalStorage) else None
        self.location = storage.location
        self._raw: dict[str, bool] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbx-copy")
        self._pending: list[tuple[Future[int], int]] = []

    def eligible(self, entry: Entry) -> bool:
        """True when every extent of ``entry`` is a whole raw object (or a zero block)."""
        if self.local is None or not entry.extents:
            return False
        return all(
            extent.offset == 0
            and (
                extent.object == zero_id(extent.length)
                or self._is_raw(extent.object, extent.length)
            )
            for extent in entry.extents
        )

    def fill(self, fd: int, entry: Entry) -> int:
        """Write ``entry``'s bytes into the open, empty staging file ``fd`` (opened for reading
        and writing), check them, and return the file's size. The caller closes ``fd``."""
        position = 0
        for extent in entry.extents:
            if extent.object != zero_id(extent.length):
                self._copy(extent.object, fd, position, extent.length)
            position += extent.length
        os.ftruncate(fd, position)  # materialises a trailing hole
        position = 0
        for extent in entry.extents:
            if extent.object != zero_id(extent.length):
                _check(fd, position, extent.length, extent.object, self.location)
            position += extent.length
        return position

    def run(self, job: Callable[[], int], fd: int) -> None:
        """Run ``job`` (which returns bytes written and closes ``fd``) on the pool; errors
        surface from :meth:`wait`. Should the job be cancelled, ``fd`` is closed here."""
        self._pending.append((self._pool.submit(job), fd))

    def wait(self) -> int:
        """Wait for every job; the bytes they wrote, or the first failure raised."""
        written = 0
        while self._pending:
            future, _ = self._pending[0]
            written += future.result()  # on failure the rest stay pending, for close()
            self._pending.pop(0)
        return written

    def close(self) -> None:
        """Stop: queued jobs are dropped (their files closed), running ones finish."""
        for future, fd in self._pending:
            if future.cancel():
                os.close(fd)
        self._pending.clear()
        self._pool.shutdown(wait=True)

    def __enter__(self) -> FastCopier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _path(self, object_id: str) -> Path:
        assert self.local is not None
        return self.local.path(object_key(object_id))

    def _is_raw(self, object_id: str, length: int) -> bool:
        raw = self._raw.get(object_id)
        if raw is None:
            try:
                with self._path(object_id).open("rb") as stored:
                    header = stored.read(_HEADER)
                    size = os.fstat(stored.fileno()).st_size
            except OSError:
                raw = False  # missing or unreadable: the general path names it properly
            else:
                raw = header == bytes((OBJECT_MAGIC, CODEC_RAW)) and size == length + _HEADER
            self._raw[object_id] = raw
        return raw

    def _copy(self, object_id: str, fd: int, position: int, length: int) -> None:
        try:
            source = os.open(self._path(object_id), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise ObjectMissing(self.location, object_key(object_id)) from None
        try:
            done = 0
            kernel = True
            while done < length:
                if kernel:
                    try:
                        copied = os.copy_file_range(
                            source, fd, length - done, _HEADER + done, position + done
                        )
                    except OSError as exc:
                        if exc.errno not in _NO_KERNEL_COPY:
                            raise
                        kernel = False
                        continue
                else:
                    copied = _copy_block(source, fd, min(_BLOCK, length - done),
                                         _HEADER + done, position + done)  # fmt: skip
                if copied == 0:  # the object is shorter than its header said a moment ago
                    raise CorruptObject(
                        self.location, object_id, f"it ended after {done} of {length} bytes"
                    )
                done += copied
        finally:
            os.close(source)


def _copy_block(source: int, fd: int, count: int, src_offset: int, dst_offset: int) -> int:
    """Copy up to ``count`` bytes with pread/pwrite; the number copied (0 at the end)."""
    data = os.pread(source, count, src_offset)
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, dst_offset)
        view = view[written:]
        dst_offset += written
    return len(data)


def _check(fd: int, position: int, length: int, object_id: str, where: str) -> None:
    """The ``length`` bytes written at ``position`` must hash to ``object_id``."""
    start = position - position % _PAGE
    skip = position - start
    with (
        mmap.mmap(fd, skip + length, prot=mmap.PROT_READ, offset=start) as view,
        memoryview(view) as whole,
        whole[skip:] as written,
    ):
        seen = blake3(written).hexdigest()
    if seen != object_id:
        raise CorruptObject(where, object_id, f"its content hashes to {seen}")

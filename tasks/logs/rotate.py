"""One rotation of one live log file: copy whole lines out, verify the copy, cut them from the head.

The copy ``[start, end)`` is written (compressed) next to the log, fsynced and read back before a
byte of the live file is touched; only then is the head cut, with the method the directory's
filesystem supports (see ``fs.py``):

``collapse-range``  The cut must be block-aligned. ``end`` is the end of the line that straddles
                    the last block boundary below the last complete line, so the rotated file
                    holds whole lines; the live file keeps the ``end - cut`` bytes of that line's
                    tail, blanked with spaces (one whitespace-only line, shorter than one line).
                    The next rotation skips that padding (``start``).
``punch-hole``      The cut is exact (``end`` = after the last complete line); the head becomes a
                    hole, the file's size stays, and the next rotation starts at ``end``.
``copytruncate``    logrotate's method, only when configured: copy to EOF, re-check the size,
                    truncate. Lines appended between that last check and the truncate are LOST.

Lines must be appended with O_APPEND (what ``open(path, "a")`` and Docker's bind-mounted logs of
Python, Go and shell writers do): a writer with its own offset keeps writing at the old offset
after any cut, leaving a run of zeros (a hole) before its next line — as with logrotate.
"""

from __future__ import annotations

import gzip
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

import blake3
import zstandard

from sbx.errors import CutRefused
from tasks.logs.fs import (
    COLLAPSE_RANGE,
    COPYTRUNCATE,
    PUNCH_HOLE,
    collapse_head,
    punch_head,
)

Compression = Literal["zstd", "gzip", "none"]
EXTENSIONS: dict[str, str] = {"zstd": ".zst", "gzip": ".gz", "none": ""}
CHUNK = 1 << 20


@dataclass(frozen=True)
class Cut:
    """What one rotation took out of a live file."""

    copied: int  # bytes of log lines now in the rotated file
    compressed: int  # size of the rotated file
    removed: int  # bytes cut from the head (collapse) or punched (hole)
    next_start: int  # where the log's lines begin in the live file now (padding / hole end)
    size_after: int  # the live file's size right after the cut


def last_line_end(fd: int, start: int, size: int) -> int | None:
    """Offset just after the last newline in ``[start, size)``; None without a complete line."""
    pos = size
    while pos > start:
        low = max(start, pos - CHUNK)
        index = os.pread(fd, pos - low, low).rfind(b"\n")
        if index >= 0:
            return low + index + 1
        pos = low
    return None


def first_line_end(fd: int, offset: int, limit: int) -> int:
    """Offset just after the first newline at or after ``offset`` (one exists before ``limit``)."""
    pos = offset
    while pos < limit:
        data = os.pread(fd, min(CHUNK, limit - pos), pos)
        index = data.find(b"\n")
        if index >= 0:
            return pos + index + 1
        pos += len(data)
    raise CutRefused(f"no newline between {offset} and {limit}: the file changed under us")


def plan_cut(fd: int, method: str, start: int, block: int) -> tuple[int, int] | None:
    """(end of the copy, bytes to cut) for a lossless method; None when nothing can go yet."""
    line_end = last_line_end(fd, start, os.fstat(fd).st_size)
    if line_end is None:
        return None
    if method == PUNCH_HOLE:
        return line_end, line_end
    # strictly below the file's size: collapsing up to EOF is refused by the kernel
    cut = ((line_end - 1) // block) * block
    if cut <= start:
        return None  # less than one block of complete lines: wait for more
    return first_line_end(fd, cut - 1, line_end), cut


def rotate_fd(fd: int, method: str, start: int, block: int, target: Path, compression: str) -> Cut:
    """Rotate the open live file ``fd`` into ``target``. Raises CutRefused when nothing can go."""
    if method == COPYTRUNCATE:
        return _copytruncate(fd, start, target, compression)
    planned = plan_cut(fd, method, start, block)
    if planned is None:
        raise CutRefused("no complete line to rotate yet")
    end, cut = planned
    compressed = write_verified_copy(fd, start, end, target, compression)
    if os.fstat(fd).st_size < end:
        raise CutRefused("the file shrank while it was copied (another rotation?)")
    if method == COLLAPSE_RANGE:
        collapse_head(fd, cut)
        pad = end - cut
        if pad > 1:
            # the straddling line's tail was copied: blank it, keeping its newline
            os.pwrite(fd, b" " * (pad - 1), 0)
        next_start = pad
    else:
        punch_head(fd, end)
        next_start = end
    os.fsync(fd)
    return Cut(end - start, compressed, cut, next_start, os.fstat(fd).st_size)


def _copytruncate(fd: int, start: int, target: Path, compression: str) -> Cut:
    # raw copy to EOF, catch up until the size stops moving, truncate: the window between the
    # last size check and the truncate is logrotate's, and loses what lands in it
    raw = target.with_name(f".{target.name}.raw-{os.getpid()}")
    try:
        with raw.open("wb") as out:
            pos = start
            while True:
                data = os.pread(fd, CHUNK, pos)
                if data:
                    out.write(data)
                    pos += len(data)
                elif os.fstat(fd).st_size <= pos:
                    os.ftruncate(fd, 0)
                    break
            out.flush()
            os.fsync(out.fileno())
        with raw.open("rb") as copy:
            compressed = write_verified_copy(copy.fileno(), 0, pos - start, target, compression)
    finally:
        raw.unlink(missing_ok=True)
    return Cut(pos - start, compressed, pos, 0, os.fstat(fd).st_size)


def write_verified_copy(fd: int, start: int, end: int, target: Path, compression: str) -> int:
    """Copy ``[start, end)`` of ``fd`` into ``target`` (compressed), durable and read back.

    Returns the rotated file's size. ``target`` appears (atomic rename) only once its content
    decompresses to exactly the bytes read.
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    digest = blake3.blake3()
    try:
        with tmp.open("xb") as raw:
            with _compressor(raw, compression) as out:
                pos = start
                while pos < end:
                    data = os.pread(fd, min(CHUNK, end - pos), pos)
                    if not data:
                        raise CutRefused(f"the file ends at {pos}, before {end}")
                    digest.update(data)
                    out.write(data)
                    pos += len(data)
            raw.flush()
            os.fsync(raw.fileno())
        if read_rotated(tmp, compression) != (end - start, digest.hexdigest()):
            raise CutRefused(f"the rotated copy {tmp} does not read back as the bytes copied")
        tmp.rename(target)
        dir_fd = os.open(target.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        tmp.unlink(missing_ok=True)
    return target.stat().st_size


def read_rotated(path: Path, compression: str) -> tuple[int, str]:
    """(length, blake3) of a rotated file's decompressed content."""
    digest = blake3.blake3()
    length = 0
    with _reader(path, compression) as stream:
        while data := stream.read(CHUNK):
            digest.update(data)
            length += len(data)
    return length, digest.hexdigest()


def open_rotated(path: Path) -> IO[bytes]:
    """A rotated file's content, decompressed as its extension says (for readers and tests)."""
    for compression, ext in EXTENSIONS.items():
        if ext and path.name.endswith(ext):
            return _reader(path, compression)
    return path.open("rb")


def _reader(path: Path, compression: str) -> IO[bytes]:
    if compression == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(path.open("rb"), closefd=True)
    if compression == "gzip":
        return cast(IO[bytes], gzip.open(path, "rb"))
    return path.open("rb")


def _compressor(raw: IO[bytes], compression: str) -> AbstractContextManager[Any]:
    """A writer into ``raw`` that finishes the stream on exit but leaves ``raw`` open."""
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3, write_checksum=True).stream_writer(
            raw, closefd=False
        )
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, compresslevel=6)  # gzip(1)'s
    return nullcontext(raw)

"""Cutting the head off a live log file in place: fallocate(2) through ctypes, and probes.

A writer container keeps its file descriptor open, so a log cannot be renamed away; it has to be
shortened in place. ``ftruncate`` (logrotate's copytruncate) drops whatever was appended between
the copy and the truncate. Two fallocate modes remove bytes from the head instead, atomically
with respect to writers (the kernel holds the inode lock, so an O_APPEND write lands either
before the cut — and was copied — or after it, at the new end of file):

``collapse-range``  FALLOC_FL_COLLAPSE_RANGE (ext4, xfs): removes whole blocks from the head; the
                    file shrinks and later bytes move down. Granularity: the filesystem block.
``punch-hole``      FALLOC_FL_PUNCH_HOLE (ext4, xfs, btrfs, tmpfs, ...): frees the head's blocks
                    and reads them back as zeros; the size (and the writers' end) stays the same.

Which of them a directory's filesystem has is probed on a scratch file, never on a live log.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
from collections.abc import Callable
from pathlib import Path

FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_COLLAPSE_RANGE = 0x08

COLLAPSE_RANGE = "collapse-range"
PUNCH_HOLE = "punch-hole"
COPYTRUNCATE = "copytruncate"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
_libc.fallocate.restype = ctypes.c_int

# what "this filesystem cannot do that" looks like, as opposed to a real I/O failure
UNSUPPORTED = (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL)


def fallocate(fd: int, mode: int, offset: int, length: int) -> None:
    """fallocate(2); raises OSError with the kernel's errno."""
    if _libc.fallocate(fd, mode, offset, length) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def collapse_head(fd: int, length: int) -> None:
    """Remove the first ``length`` bytes (a multiple of the block size, < the file size)."""
    fallocate(fd, FALLOC_FL_COLLAPSE_RANGE, 0, length)


def punch_head(fd: int, length: int) -> None:
    """Free the first ``length`` bytes; they read back as zeros, the size does not change."""
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, length)


def block_size(directory: Path) -> int:
    return os.statvfs(directory).f_bsize


def probe_methods(directory: Path) -> list[str]:
    """The lossless cut methods this directory's filesystem supports, best first."""
    bs = block_size(directory)
    found: list[str] = []
    scratch = directory / f".sbx-fallocate-probe-{os.getpid()}"
    fd = os.open(scratch, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        scratch.unlink()  # the probe never shows up in the directory for long
        os.write(fd, b"a" * bs + b"b" * bs + b"c")
        if _try(collapse_head, fd, bs) and os.fstat(fd).st_size == bs + 1:
            found.append(COLLAPSE_RANGE)  # and the 'b' block is now the head
        if _try(punch_head, fd, bs) and os.pread(fd, 1, 0) == b"\0":
            found.append(PUNCH_HOLE)
    finally:
        os.close(fd)
    return found


def _try(cut: Callable[[int, int], None], fd: int, length: int) -> bool:
    try:
        cut(fd, length)
    except OSError as exc:
        if exc.errno not in UNSUPPORTED:
            raise
        return False
    return True


def filesystem_type(path: Path) -> str:
    """The filesystem type of the mount holding ``path`` (from /proc/self/mountinfo)."""
    target = str(path.resolve())
    best, kind = "", "unknown"
    try:
        lines = Path("/proc/self/mountinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return kind
    for line in lines:
        left, _, right = line.partition(" - ")
        fields = left.split()
        if len(fields) < 5 or not right:
            continue
        mount = fields[4].encode().decode("unicode_escape")  # \040 for spaces
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, right.split()[0]
    return kind

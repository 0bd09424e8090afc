"""Writing sbx's own state so that a crash or a full disk leaves the file as it was.

- :func:`append_durably`: a log line is appended whole or not at all (a crash loses at most the
  line being written; a full disk none of what was there, and no torn fragment is left);
- :func:`write_atomic`: a file is replaced whole through a temporary beside it, which a failed
  write removes again;
- :func:`is_no_space`: whether an OSError is the disk (or quota) being full.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from sbx.errors import NoSpace

NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


def is_no_space(exc: BaseException) -> bool:
    """True for ENOSPC / EDQUOT (raised directly, or as the cause of another error)."""
    seen: BaseException | None = exc
    for _ in range(8):  # a short chain: an engine error wrapping the OSError
        if seen is None:
            return False
        if isinstance(seen, OSError) and seen.errno in NO_SPACE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def write_state(path: Path, data: str | bytes, outcome: str, *, fsync: bool = True) -> None:
    """:func:`write_atomic` of a file of sbx's own state; a full disk is said as
    :class:`NoSpace` naming ``path`` and ``outcome`` (what the refusal left as it was)."""
    try:
        write_atomic(path, data, fsync=fsync)
    except OSError as exc:
        if not is_no_space(exc):
            raise
        raise NoSpace(path, outcome) from exc


def append_durably(path: Path, line: bytes) -> None:
    """Append ``line`` with one ``write`` (O_APPEND) and ``fsync`` it before returning.

    When the file ends in a line a crash cut short, ``line`` starts on a line of its own, so the
    torn fragment stays one unreadable line instead of swallowing the next record. A write the
    disk could take only part of (ENOSPC mid-line: a short write) is cut off again and raised
    as ENOSPC, so a full disk never leaves half a line for the next reader.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n" and not line.startswith(b"\n"):
            line = b"\n" + line
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, size)  # frees what the short write took: needs no new space
            raise
    finally:
        os.close(fd)


def write_atomic(path: Path, data: str | bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` whole: a temporary beside it, then ``rename``.

    On any failure (a full disk above all) the temporary is removed and ``path`` is untouched.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as handle:
            handle.write(raw)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def hold_room(path: Path, nbytes: int) -> None:
    """Write ``nbytes`` of real blocks to ``path`` (no sparse file): room a later small write
    takes by removing it. Raises OSError, with nothing left behind, when the room is not there."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with path.open("wb") as handle:
            handle.write(b"\0" * nbytes)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        raise

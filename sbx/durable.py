"""Appending to a log file so that a crash loses at most the line being written."""

from __future__ import annotations

import os
from pathlib import Path


def append_durably(path: Path, line: bytes) -> None:
    """Append ``line`` with one ``write`` (O_APPEND) and ``fsync`` it before returning.

    When the file ends in a line a crash cut short, ``line`` starts on a line of its own, so the
    torn fragment stays one unreadable line instead of swallowing the next record.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n" and not line.startswith(b"\n"):
            line = b"\n" + line
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)

"""Helpers of the environment-fault tests (faults-env): a small tmpfs, the CLI, a files stack.

The CLI runs in a subprocess against the session's Prefect test server, as an operator runs it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from bed.stack import create_mount_sources

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"
SBX = [sys.executable, "-m", "sbx"]


def run_cli(
    prefect_api: str, *args: str, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``sbx ARGS`` in a subprocess using the test Prefect server (never a temporary one)."""
    full = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    full.update(PREFECT_API_URL=prefect_api, COLUMNS="200", **(env or {}))
    done = subprocess.run(
        [*SBX, *args], capture_output=True, text=True, env=full, timeout=timeout, check=False
    )
    assert "Starting temporary server" not in done.stderr, done.stderr
    return done


def files_stack(dest: Path) -> Path:
    """The example stack's files, no containers (``dest``'s name must be a unique project)."""
    shutil.copytree(
        EXAMPLE,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("open-webui", "qdrant", ".sbx", "*.log", "images"),
    )
    return create_mount_sources(dest)


@contextmanager
def tmpfs(where: Path, size_mib: int) -> Iterator[Path]:
    """A tmpfs of ``size_mib`` mounted at ``where`` (we run as root, CI too); unmounted after."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("the disk-full fault needs root and mount(8) to make a small tmpfs")
        pytest.skip("the disk-full fault needs root and mount(8) to make a small tmpfs")
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(where)],
        check=True,
        capture_output=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def used_bytes(path: Path) -> int:
    """Bytes in use on the file system holding ``path`` (what ``df`` shows as Used)."""
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path: Path, leave_free: int) -> None:
    """Write ``path`` until only about ``leave_free`` bytes are free on its file system."""
    block = b"\0" * (1 << 20)
    with path.open("wb") as out:
        while free_bytes(path.parent) > leave_free + len(block):
            out.write(block)
            out.flush()


def fill_to_brim(path: Path) -> None:
    """Write ``path`` until its file system takes no byte more (``fill``, then 4 KiB writes
    until ENOSPC): any later write that needs a new block fails."""
    fill(path, 0)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)

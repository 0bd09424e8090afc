"""Shared by the flow tests: comparing trees, running the sbx CLI, seeding the stack's data."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

SBX = [sys.executable, "-m", "sbx"]


def describe_tree(root: Path, rels: list[str]) -> dict[str, tuple[object, ...]]:
    """path -> (type, mode, mtime_ns, content or link target, inode group) for every node."""
    nodes: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for rel in rels:
        top = root / rel
        if not (top.exists() or top.is_symlink()):
            continue
        for path in (
            [top, *sorted(top.rglob("*"))] if top.is_dir() and not top.is_symlink() else [top]
        ):
            st = path.lstat()
            key = str(path.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                nodes[key] = ("link", os.readlink(path), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                nodes[key] = ("dir", stat.S_IMODE(st.st_mode), st.st_mtime_ns)
            else:
                first = inodes.setdefault(st.st_ino, key) if st.st_nlink > 1 else key
                nodes[key] = (
                    "file",
                    stat.S_IMODE(st.st_mode),
                    st.st_mtime_ns,
                    path.read_bytes(),
                    first,
                )
    return nodes


def sbx(
    *args: str, env: dict[str, str], timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SBX, *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd
    )


def cli_env(prefect_api: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The test's environment for a CLI subprocess, pointed at the test's Prefect server."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(PREFECT_API_URL=prefect_api, COLUMNS="200", **(extra or {}))
    return env


def max_chat_id(db: Path) -> int:
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(id), 0) FROM chat").fetchone()[0])
    finally:
        conn.close()


def decorate_stack(stack: Path) -> None:
    """Add what a real tree has and a naive copy loses: empty dirs, links, odd modes and times."""
    notes = stack / "notes"
    (notes / "empty" / "deeper").mkdir(parents=True)
    (notes / "dangling").symlink_to("does-not-exist.md")
    (notes / "shared.md").write_text("one inode, two names\n")
    os.link(notes / "shared.md", notes / "shared-hardlink.md")
    secret = stack / "env" / "secrets.env"
    secret.write_text("API_TOKEN=not-a-real-token\n")
    secret.chmod(0o600)
    script = stack / "agents" / "run.sh"
    script.write_text("#!/bin/sh\necho agent\n")
    script.chmod(0o750)
    os.utime(notes / "shared.md", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    os.utime(notes / "empty", ns=(1_500_000_000_000_000_001, 1_500_000_000_000_000_001))

"""Is a process that left a lock or a marker still there? (pid liveness within one boot)."""

from __future__ import annotations

import os
from pathlib import Path


def boot_id() -> str:
    """This boot's id: a pid recorded before a reboot says nothing about the process now."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie child of ours (which is reaped here)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True  # not our child: it exists
    return done == 0

"""Copying a restored tree onto another file system, as coreutils ``cp -a`` does.

An in-place restore swaps by renaming, which only works within one file system; a source on its
own disk (an outside bind mount such as ``/srv/models``) gets its staged copy carried beside it
first (tasks/restore/carry.py). ``cp -a`` keeps what the restore wrote: modes, owners, times,
symlinks, hard links within the tree, extended attributes and ACLs, holes of sparse files —
hand-written Python would have to redo all of that, and cp is on every box.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from sbx.errors import RestoreRefused


def copy_tree(source: Path, dest: Path) -> None:
    """Copy ``source`` (a file, link or directory) to the not yet existing ``dest``.

    A failed copy (no room, no permission) removes what it wrote and raises
    :class:`RestoreRefused`: the live data has not been touched yet.
    """
    cp = shutil.which("cp")
    if cp is None:
        raise RestoreRefused(
            f"{dest.parent} is on another file system than the staged restore and copying there "
            "needs coreutils' cp, which is not on PATH. Install coreutils, or restore with "
            "--to DIR. Nothing was changed."
        )
    done = subprocess.run(
        [cp, "-a", "--no-target-directory", str(source), str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(dest, ignore_errors=True)
        dest.unlink(missing_ok=True)
        reason = (done.stderr.strip().splitlines() or ["cp failed"])[-1]
        raise RestoreRefused(
            f"Copying the restored {dest.name} onto the file system of {dest.parent} failed "
            f"({reason}). Nothing was changed: free space there, or restore with --to DIR."
        )

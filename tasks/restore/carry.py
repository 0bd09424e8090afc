"""Outside sources on another file system than the stack, in an in-place restore.

The snapshot is staged (and verified) under ``<stack>/.sbx/restore-<id>/``, and the swap only
renames, which cannot cross file systems. A source on its own disk (``/srv/models`` beside a
stack on ``/opt``) gets its staged copy carried first, with ``cp -a``, to
``<source's parent>/.sbx-restores/incoming-<id>/<name>`` — beside the live path, while the
services still run — and the swap renames that copy into place, atomically and journaled like
every other path. It needs the source's size free on that file system for as long as the
restore runs; a copy that fails leaves the live data as it was.

A source that is itself a mount point cannot be renamed at all and stays refused
(in_place.check_swappable).
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.clients.tree_copy import copy_tree
from tasks.restore.in_place import SwapPlan
from tasks.restore.kept import OTHER_FS

INCOMING = "incoming"


def on_another_file_system(staged: Path, live: Path) -> bool:
    return (
        (staged.exists() or staged.is_symlink())
        and live.parent.is_dir()
        and staged.lstat().st_dev != live.parent.stat().st_dev
    )


def incoming_dir(live: Path, staging: Path) -> Path:
    return live.parent / OTHER_FS / f"{INCOMING}-{staging.name}"


@task(name="carry-restored-sources-across", cache_policy=NO_CACHE)
def carry_across(plan: SwapPlan, staging: Path) -> SwapPlan:
    """The plan with each outside source on another file system staged beside it instead."""
    outside: dict[str, str] = {}
    try:
        for stored, live_path in plan.outside.items():
            live, staged = Path(live_path), staging / stored
            if not on_another_file_system(staged, live):
                outside[stored] = live_path
                continue
            dest = incoming_dir(live, staging) / live.name
            _remove(dest)  # a killed earlier attempt may have left one
            dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            copy_tree(staged, dest)
            outside[str(dest)] = live_path  # absolute: staging / it is it
    except BaseException:
        remove_carried(plan.model_copy(update={"outside": outside}))
        raise
    return plan.model_copy(update={"outside": outside})


def remove_carried(plan: SwapPlan) -> None:
    """Remove what :func:`carry_across` copied and the swap did not take (a failure before or
    in the swap; after a swap the directories are empty), and each ``.sbx-restores`` it made
    empty."""
    for folder in plan.carried_dirs():
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)

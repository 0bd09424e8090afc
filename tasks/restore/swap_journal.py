"""Renaming several live paths as one step: all of them or none, even across a SIGKILL.

An in-place restore swaps each affected path in two renames (live aside, staged in). Each
rename is atomic, the sequence is not: a process killed between two renames leaves some paths
restored and some not, or a live path missing. So before the first rename a journal listing
every move is written to ``<stack>/.sbx/swap.json`` (atomically, synced), and removed after the
last one:

- SIGTERM / SIGINT are held back for the renames (they take milliseconds), so a terminated run
  finishes the swap and then stops with every path on the same side;
- an exception in the middle undoes the moves already made before it propagates;
- after a SIGKILL, :func:`recover_interrupted_swap` — called by the next sbx command before it
  starts anything a killed run left stopped — undoes the moves that were made, newest first, so
  the stack holds its previous data again, whole. The staged copy is then removed.

A move counts as made when its destination exists and its source does not; undone in reverse
order, that holds even when a later move reused an earlier move's source (``live`` → aside, then
staged → ``live``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from sbx.durable import write_state
from sbx.errors import RestoreRefused
from sbx.processes import boot_id, pid_alive
from sbx.repository.metadata import make_parents_like
from tasks.services import signals_deferred

JOURNAL = Path(".sbx") / "swap.json"
log = logging.getLogger("sbx.restore")


class SwapJournal(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    what: str  # e.g. "restore of 20261127T... in place": said when a later command undoes it
    pid: int
    boot_id: str
    started_at: float
    moves: list[tuple[str, str]]  # (source, destination), absolute paths, in order
    discard: list[str]  # removed once the moves are undone (the staged copy)


def _exists(path: Path) -> bool:
    return path.exists() or path.is_symlink()


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_journal(path: Path, journal: SwapJournal) -> None:
    """Before the first rename: a full disk refuses here, nothing moved, no temporary left."""
    write_state(path, journal.model_dump_json(), f"nothing was moved for the {journal.what}")
    _sync_dir(path.parent)


def _undo(moves: list[tuple[str, str]]) -> int:
    undone = 0
    for source, dest in reversed(moves):
        src, dst = Path(source), Path(dest)
        if _exists(dst) and not _exists(src):
            src.parent.mkdir(parents=True, exist_ok=True)
            dst.rename(src)
            undone += 1
    return undone


def swap_paths(
    stack_dir: Path, moves: list[tuple[Path, Path]], what: str, discard: list[Path]
) -> None:
    """Make every move (rename) or none; see the module docstring.

    ``discard``: removed by a recovery once it has undone the moves (the staged copy).
    """
    path = stack_dir / JOURNAL
    _same_file_system(stack_dir, moves)
    pairs = [(str(src), str(dst)) for src, dst in moves]
    journal = SwapJournal(
        what=what,
        pid=os.getpid(),
        boot_id=boot_id(),
        started_at=time.time(),
        moves=pairs,
        discard=[str(p) for p in discard],
    )
    _write_journal(path, journal)
    with signals_deferred():
        try:
            for src, dst in moves:
                # not mkdir: a live 'data' missing (disaster recovery) came back root, 0755
                make_parents_like(dst.parent, src.parent)
                src.rename(dst)
        except BaseException:
            _undo(pairs)
            path.unlink(missing_ok=True)
            raise
        path.unlink()
        _sync_dir(path.parent)


def _device(path: Path, *, follow: bool) -> int:
    """The file system ``path`` is on (its nearest existing ancestor's, when it is missing).

    A rename moves the last component itself (``follow=False``: a link stays a link) and
    creates in the directory its parent path leads to, through links (``follow=True``).
    """
    for candidate in (path, *path.parents):
        try:
            return (candidate.stat() if follow else candidate.lstat()).st_dev
        except FileNotFoundError:
            follow = True  # an ancestor of a missing path: where the path would be made
            continue
    return -1


def _same_file_system(stack_dir: Path, moves: list[tuple[Path, Path]]) -> None:
    """Refuse, before the first rename, a move across file systems: a swap renames (all or
    nothing, in an instant) and never copies, so a part on its own mount cannot be swapped."""
    sbx_dir = _device(stack_dir / ".sbx", follow=True)
    for src, dst in moves:
        if _device(src, follow=False) != _device(dst.parent, follow=True):
            outside = src if _device(src, follow=False) != sbx_dir else dst
            raise RestoreRefused(
                f"{outside} is on another file system than {stack_dir / '.sbx'} (a mount), and "
                "an in-place restore swaps by renaming, never by copying. Nothing was changed. "
                "Restore that part with 'sbx restore ID --to DIR' on its file system and move "
                "it into place with the service stopped."
            )


def recover_interrupted_swap(stack_dir: Path) -> str | None:
    """Undo the swap a killed sbx run left half done; what was undone, or None.

    A journal whose writer still runs (same boot, pid alive) is left alone: that run finishes
    its swap itself.
    """
    path = stack_dir / JOURNAL
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    journal = SwapJournal.model_validate_json(raw)  # written atomically: whole or absent
    if journal.boot_id == boot_id() and pid_alive(journal.pid):
        return None
    undone = _undo(journal.moves)
    for leftover in journal.discard:
        shutil.rmtree(leftover, ignore_errors=True)
    path.unlink(missing_ok=True)
    message = (
        f"undid {undone} of {len(journal.moves)} renames of an interrupted {journal.what} "
        f"(pid {journal.pid} was killed mid-swap): the previous data is back in place"
    )
    log.warning(message)
    return message

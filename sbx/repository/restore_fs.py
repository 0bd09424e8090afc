"""Where restore writes: directory handles that never follow a link, and the move into place.

Every write of a restore names its file relative to a directory file descriptor, and every
directory is opened one component at a time with ``O_NOFOLLOW | O_DIRECTORY``. A symlink is
data, restored verbatim whatever it points at; because no later open follows one, a link that
the snapshot restored (or that already sat in the target) cannot redirect a write out of the
target: the open fails instead (docs/repository.md, "Restore safety model").

Staging lives on the target's file system (inside the target when it exists, e.g. a mount
point; beside it otherwise), so moving staged data into place is a rename on one file system.
Only the chosen parts' root paths are moved: with ``--force``, what sat at one of those paths is
renamed aside first and deleted only once every root is in place; any failure puts it all back.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from sbx.errors import RepositoryError, RestoreRefused

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_OPEN = 256  # directory handles kept open at once; a restore walks in tree order


class DirHandles:
    """Directories below ``root``, opened component by component, never through a link."""

    def __init__(self, root: Path, *, follow_root: bool = False) -> None:
        self.root = root
        # the root itself is the operator's path (--to may be a link they chose); below it,
        # nothing is followed
        flags = _DIR & ~os.O_NOFOLLOW if follow_root else _DIR
        self.root_fd = os.open(root, flags)
        self._open: dict[str, int] = {}

    def dir(self, rel: str, *, create: bool = False) -> int:
        """A handle on directory ``rel`` ('' is the root); missing ones are made when
        ``create``. Valid until the next call."""
        if not rel:
            return self.root_fd
        fd = self._open.get(rel)
        if fd is not None:
            return fd
        if len(self._open) >= _MAX_OPEN:
            self.close_below()
        head, _, name = rel.rpartition("/")
        parent = self.dir(head, create=create)
        try:
            try:
                fd = os.open(name, _DIR, dir_fd=parent)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(name, 0o777, dir_fd=parent)
                fd = os.open(name, _DIR, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise RestoreRefused(
                    f"{self.root / rel} is a symlink or not a directory, and restore never "
                    "writes through a link. Move it away or restore into another --to "
                    "directory. Nothing was written there."
                ) from exc
            raise
        self._open[rel] = fd
        return fd

    def parent(self, rel: str, *, create: bool = False) -> tuple[int, str]:
        """(handle on the directory holding ``rel``, ``rel``'s last component)."""
        head, _, name = rel.rpartition("/")
        return self.dir(head, create=create), name

    def exists(self, rel: str) -> bool:
        fd, name = self.parent(rel)
        try:
            os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True

    def close_below(self) -> None:
        for fd in self._open.values():
            os.close(fd)
        self._open.clear()

    def close(self) -> None:
        self.close_below()
        os.close(self.root_fd)

    def __enter__(self) -> DirHandles:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_empty(target: Path) -> bool:
    """True when ``target`` holds nothing but an empty ``lost+found`` (a fresh file system)."""
    return all(
        child.name == "lost+found" and child.is_dir() and not any(child.iterdir())
        for child in target.iterdir()
    )


def part_roots(paths: list[str]) -> list[str]:
    """The paths of ``paths`` whose parent is not among them: what a restore moves into place."""
    known = set(paths)
    return [path for path in paths if path.rpartition("/")[0] not in known]


def move_roots(staging: Path, target: Path, roots: list[str], *, force: bool) -> None:
    """Rename each staged root to the same path below ``target`` (the staging directory is
    inside ``target``); with ``force``, what was there is set aside, then deleted once every
    root is in place."""
    # beside the staging directory, not in it: a root may have any name
    aside = Path(tempfile.mkdtemp(prefix=".sbx-replaced-", dir=target))
    done: list[tuple[str, bool]] = []
    with DirHandles(staging) as staged, DirHandles(target, follow_root=True) as live:
        aside_fd = os.open(aside, _DIR)
        try:
            for index, root in enumerate(roots):
                try:
                    _move_one(staged, live, aside_fd, root, str(index), force, done)
                except OSError as exc:
                    raise RepositoryError(_move_failed(target / root, exc)) from exc
        except BaseException:
            _put_back(staged, live, aside_fd, done)
            os.close(aside_fd)
            aside.rmdir()  # empty again: everything went back
            raise
        os.close(aside_fd)
    shutil.rmtree(aside)


def _move_one(
    staged: DirHandles,
    live: DirHandles,
    aside_fd: int,
    root: str,
    slot: str,
    force: bool,
    done: list[tuple[str, bool]],
) -> None:
    src_fd, name = staged.parent(root)
    src_fd = os.dup(src_fd)  # the next lookup may close cached handles
    try:
        dst_fd, _ = live.parent(root, create=True)
        replaced = live.exists(root)
        if replaced:
            if not force:
                raise RestoreRefused(
                    f"{live.root / root} appeared during the restore. Run it again with "
                    "--force to replace it, or into another --to directory."
                )
            os.rename(name, slot, src_dir_fd=dst_fd, dst_dir_fd=aside_fd)
        try:
            os.rename(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
        except BaseException:
            if replaced:
                os.rename(slot, name, src_dir_fd=aside_fd, dst_dir_fd=dst_fd)
            raise
        done.append((root, replaced))
    finally:
        os.close(src_fd)


def _put_back(
    staged: DirHandles, live: DirHandles, aside_fd: int, done: list[tuple[str, bool]]
) -> None:
    """Undo the moves of ``done`` (newest first): the target as it was before the restore."""
    for index, (root, replaced) in reversed(list(enumerate(done))):
        dst_fd, name = live.parent(root)
        dst_fd = os.dup(dst_fd)
        try:
            src_fd, _ = staged.parent(root)
            os.rename(name, name, src_dir_fd=dst_fd, dst_dir_fd=src_fd)
            if replaced:
                os.rename(str(index), name, src_dir_fd=aside_fd, dst_dir_fd=dst_fd)
        finally:
            os.close(dst_fd)


def _move_failed(path: Path, exc: OSError) -> str:
    if exc.errno in (errno.EXDEV, errno.EBUSY):
        why = (
            "it is a mount point or on another file system than the rest of the target, and "
            "restore only renames within one. Restore into a new --to directory on that file "
            "system and move the data from there"
        )
    else:
        why = f"{exc.strerror or exc}. Check permissions and free space there and run it again"
    return f"Restore could not move {path} into place: {why}. The target is as it was."

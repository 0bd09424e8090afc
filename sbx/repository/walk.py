"""Walking a source tree for a backup: pre-order, names sorted, symlinks never followed.

Include/exclude patterns use :func:`fnmatch.fnmatchcase` (``*`` also matches ``/``) and are tried
against the path relative to the walked root and against the bare name, so ``*.db-wal``,
``cache`` and ``uploads/tmp/*`` all do what they say. An excluded directory is not descended.
With include patterns, only files and symlinks that match one are kept; directories are always
walked and recorded, so the tree's shape survives. A root that is a symlink to a directory
(``data/models -> /disk/models``) is walked through, so its contents are backed up; links below
the root are never followed.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from sbx.errors import SourceUnreadable


@dataclass(frozen=True)
class PathFilter:
    include: Sequence[str] = ()
    exclude: Sequence[str] = ()
    #: exact paths relative to the walked root, never patterns (live databases: a name with
    #: ``[`` or ``*`` must not match other files, nor a bare name a file elsewhere)
    exclude_paths: frozenset[str] = frozenset()

    def excluded(self, tree_rel: str, name: str) -> bool:
        if tree_rel in self.exclude_paths:
            return True
        return any(fnmatchcase(tree_rel, p) or fnmatchcase(name, p) for p in self.exclude)

    def included(self, tree_rel: str, name: str) -> bool:
        if not self.include:
            return True
        return any(fnmatchcase(tree_rel, p) or fnmatchcase(name, p) for p in self.include)


@dataclass(frozen=True)
class Node:
    """One file system object found by the walk: where it is, its entry path, its lstat."""

    abs_path: str
    path: str
    st: os.stat_result


def walk_tree(
    root: Path,
    rel_prefix: str,
    filt: PathFilter,
    warn: Callable[[str], None],
    vanished: Callable[[str], None] | None = None,
) -> Iterator[Node]:
    """Every node under ``root`` (itself first), as entry paths below ``rel_prefix``.

    Nothing is yielded when ``root`` does not exist. Files that vanish during the walk are
    skipped silently (a running stack rotates logs). A directory that vanishes (or is renamed)
    after it was seen and before it is listed takes its whole subtree with it: its entry path
    goes to ``vanished``, so the part can say it is not complete. Unreadable directories raise
    :class:`SourceUnreadable`.
    """
    root_st = _root_stat(root, rel_prefix, warn)
    if root_st is None:
        return
    stack: list[tuple[Node, str]] = [(Node(str(root), rel_prefix, root_st), "")]
    while stack:
        node, tree_rel = stack.pop()
        yield node
        if not stat.S_ISDIR(node.st.st_mode):
            continue
        children = _listing(node, vanished)
        found: list[tuple[Node, str]] = []
        for child in children:
            child_rel = f"{tree_rel}/{child.name}" if tree_rel else child.name
            if filt.excluded(child_rel, child.name):
                continue
            child_st = _child_stat(child)
            if child_st is None:
                if vanished is not None and not os.path.lexists(node.abs_path):
                    vanished(node.path)  # the directory went (renamed?) while listed
                    break
                continue
            if not stat.S_ISDIR(child_st.st_mode) and not filt.included(child_rel, child.name):
                continue
            found.append((Node(child.path, f"{node.path}/{child.name}", child_st), child_rel))
        stack.extend(reversed(found))


def _root_stat(root: Path, rel_prefix: str, warn: Callable[[str], None]) -> os.stat_result | None:
    """The stat of ``root``, through it when it is a symlink to a directory; None if missing."""
    try:
        root_st = root.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceUnreadable(str(root), exc.strerror or str(exc)) from exc
    if stat.S_ISLNK(root_st.st_mode):
        try:
            followed = root.stat()
        except OSError:
            followed = None  # dangling or a loop: the link itself is what there is
        if followed is not None and stat.S_ISDIR(followed.st_mode):
            return followed
        if followed is None:  # a link to a file is kept as the link it is, without a word
            target = os.readlink(root)  # noqa: PTH115 (keep the target exactly as stored)
            warn(f"{rel_prefix} is a symlink to {target!r}, which does not exist; only the "
                 "link is backed up.")  # fmt: skip
    return root_st


def root_link(root: Path) -> str | None:
    """The target of ``root`` when it is a symlink to a directory (walked through), else None."""
    try:
        if not stat.S_ISLNK(root.lstat().st_mode) or not stat.S_ISDIR(root.stat().st_mode):
            return None
        return os.readlink(root)  # noqa: PTH115 (keep the target exactly as stored)
    except OSError:
        return None


def _listing(node: Node, vanished: Callable[[str], None] | None) -> list[os.DirEntry[str]]:
    """The directory's entries, sorted by name; none when it is gone (``vanished`` is told)."""
    try:
        with os.scandir(node.abs_path) as listing:
            return sorted(listing, key=lambda item: item.name)
    except (FileNotFoundError, NotADirectoryError):
        if vanished is not None:
            vanished(node.path)
        return []
    except OSError as exc:
        raise SourceUnreadable(node.abs_path, exc.strerror or str(exc)) from exc


def _child_stat(child: os.DirEntry[str]) -> os.stat_result | None:
    """The child's lstat; None when it is gone (a file rotated away, or its directory)."""
    try:
        return child.stat(follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SourceUnreadable(child.path, exc.strerror or str(exc)) from exc


def kind_of(mode: int) -> str:
    """What a non-regular, non-directory, non-symlink file is, for warnings."""
    kinds: dict[str, Callable[[int], bool]] = {
        "a socket": stat.S_ISSOCK,
        "a fifo": stat.S_ISFIFO,
        "a character device": stat.S_ISCHR,
        "a block device": stat.S_ISBLK,
    }
    return next((name for name, test in kinds.items() if test(mode)), "an unknown file type")

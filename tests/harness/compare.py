"""Describe a tree as lstat sees it and list how two trees differ (the harness's comparer).

What is compared, per path below the root (the root itself is the path ``b""``): the type, the
permission bits, owner, size and mtime (nanoseconds); a file's content (its hash) and whether it
keeps its holes (``st_blocks``); a symlink's target, byte for byte; a device's number; every
extended attribute, POSIX ACLs included (they are the ``system.posix_acl_*`` attributes); and the
hard-link groups (which paths share an inode). Paths are bytes: names need not be UTF-8.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class Node:
    kind: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime_ns: int
    content: str | None
    link: bytes | None
    rdev: int
    xattrs: tuple[tuple[bytes, bytes], ...]
    blocks: int


@dataclass(frozen=True)
class Tree:
    nodes: dict[bytes, Node]
    hardlinks: frozenset[frozenset[bytes]]  # groups of 2+ paths that share an inode


@dataclass(frozen=True)
class Difference:
    path: bytes
    what: str
    expected: object
    got: object

    def __str__(self) -> str:
        return f"{self.path!r}: {self.what} expected {self.expected!r}, got {self.got!r}"


_KINDS = [
    ("dir", stat.S_ISDIR),
    ("file", stat.S_ISREG),
    ("symlink", stat.S_ISLNK),
    ("fifo", stat.S_ISFIFO),
    ("chardev", stat.S_ISCHR),
    ("blockdev", stat.S_ISBLK),
    ("socket", stat.S_ISSOCK),
]


def describe(root: Path | bytes) -> Tree:
    """Everything a faithful copy keeps, by path (bytes) below ``root``."""
    base = os.fsencode(root)
    nodes: dict[bytes, Node] = {}
    inodes: dict[tuple[int, int], set[bytes]] = {}
    todo = [b""]
    while todo:
        rel = todo.pop()
        where = base + b"/" + rel if rel else base
        st = os.lstat(where)
        nodes[rel] = _node(where, st)
        if stat.S_ISDIR(st.st_mode):
            todo.extend(rel + b"/" + name if rel else name for name in os.listdir(where))
        elif stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), set()).add(rel)
    groups = frozenset(frozenset(group) for group in inodes.values() if len(group) > 1)
    return Tree(nodes, groups)


def _node(where: bytes, st: os.stat_result) -> Node:
    kind = next(name for name, test in _KINDS if test(st.st_mode))
    content = link = None
    if kind == "file":
        with open(where, "rb") as source:
            content = hashlib.file_digest(source, "sha256").hexdigest()
    elif kind == "symlink":
        link = os.readlink(where)
    names = sorted(os.listxattr(where, follow_symlinks=False))
    xattrs = tuple(
        (os.fsencode(name), os.getxattr(where, name, follow_symlinks=False)) for name in names
    )
    return Node(
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        size=st.st_size if kind in ("file", "symlink") else 0,
        mtime_ns=st.st_mtime_ns,
        content=content,
        link=link,
        rdev=st.st_rdev if kind in ("chardev", "blockdev") else 0,
        xattrs=xattrs,
        blocks=st.st_blocks if kind == "file" else 0,
    )


def differences(expected: Tree, got: Tree) -> list[Difference]:
    """How ``got`` differs from ``expected``: missing and extra paths, each differing field,
    a file that lost its holes, and paths whose hard-link group differs."""
    found: list[Difference] = []
    for path in sorted(expected.nodes.keys() | got.nodes.keys()):
        want, have = expected.nodes.get(path), got.nodes.get(path)
        if want is None or have is None:
            found.append(Difference(path, "presence", want is not None, have is not None))
            continue
        if want.kind != have.kind:
            found.append(Difference(path, "kind", want.kind, have.kind))
            continue
        for one in fields(Node):
            if one.name in ("kind", "blocks"):
                continue
            if getattr(want, one.name) != getattr(have, one.name):
                found.append(Difference(path, one.name, getattr(want, one.name),
                                        getattr(have, one.name)))  # fmt: skip
        if _lost_holes(want, have):
            found.append(Difference(path, "st_blocks (holes)", want.blocks, have.blocks))
    want_groups = _group_of(expected.hardlinks)
    have_groups = _group_of(got.hardlinks)
    for path in sorted(want_groups.keys() | have_groups.keys()):
        want_group, have_group = want_groups.get(path), have_groups.get(path)
        if want_group != have_group:
            found.append(Difference(path, "hard-link group", want_group, have_group))
    return found


def _lost_holes(want: Node, have: Node) -> bool:
    # allocation differs a little between copies (block size, metadata blocks); a file that
    # kept its holes stays near the reference, one written dense takes its whole size
    sparse = want.blocks * 512 < want.size
    return sparse and have.blocks > 2 * want.blocks + 16


def _group_of(groups: Iterable[frozenset[bytes]]) -> dict[bytes, frozenset[bytes]]:
    return {path: group for group in groups for path in group}


def explained(difference: Difference, warnings: Iterable[str], prefix: str) -> bool:
    """Whether a warning names the differing path, or a directory above it.

    Warnings name entry paths (``prefix/rel``, decoded as sbx decodes names), so a warning
    about ``prefix/a`` explains ``a`` and ``a/b`` but not ``ab``. A warning about ``prefix``
    itself (the part's root) explains only the root: were it to excuse the whole tree, a backup
    that warns "the root is a symlink, only the link is kept" would pass with nothing kept.
    """
    rel = os.fsdecode(difference.path)
    parts = rel.split("/") if rel else []
    names = [f"{prefix}/{'/'.join(parts[:depth])}" for depth in range(1, len(parts) + 1)]
    return any(_names(warning, name) for warning in warnings for name in names or [prefix])


def _names(warning: str, path: str) -> bool:
    at = warning.find(path)
    while at != -1:
        before = warning[at - 1] if at > 0 else " "
        after = warning[at + len(path)] if at + len(path) < len(warning) else " "
        if before in " '\"" and after in " '\":,;":
            return True
        at = warning.find(path, at + 1)
    return False


def unexplained(
    expected: Tree, got: Tree, warnings: Iterable[str], prefix: str
) -> list[Difference]:
    """The differences no warning accounts for: each one is a bug the harness found."""
    said = list(warnings)
    return [d for d in differences(expected, got) if not explained(d, said, prefix)]

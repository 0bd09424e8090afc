"""Trees drawn by Hypothesis (the dimensions of ``kinds.py``) and built on disk as root would.

A tree is drawn as a plain description (:class:`TreeSpec`, readable in a failure report) and then
built by :func:`build`: directories, files, links, hard links, special files, then extended
attributes and ACLs, then owners and modes, then mtimes deepest first, so nothing later bumps
what was set before it.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import strategies as st

from harness.kinds import on

KiB = 1024
CHUNK = 64 * KiB  # the harness repository's chunk size: files above SMALL are cut into these
SMALL = 16 * KiB
PACK = 64 * KiB
ABSOLUTE_INTO_TREE = b"<the tree's absolute path>"  # replaced by the real one when built

_PLAIN = [b"a", b"b", b"Z", b"0", b"-", b"_", b"."]
_ODD = [b"\n", b"\\", b" ", b"*", b"[", b"]", b"?", b"'", b'"', b"\t", "é".encode(), "名".encode()]
_NON_UTF8 = [b"\xff", b"\xe9", b"\xc3", b"\x80"]
FILE_MODES = [0o644, 0o600, 0o755, 0o400, 0o000, 0o777, 0o4755, 0o2755, 0o6711, 0o1644]
DIR_MODES = [0o755, 0o700, 0o1777, 0o2775, 0o555, 0o000, 0o3770]
OWNERS = [0, 1000, 4242, 65534]
MTIMES = [
    1_600_000_000_123_456_789,
    -1_000_000_001,  # 1969, one nanosecond short of a whole second
    0,
    4_102_444_800_000_000_007,  # 2100
]


@dataclass
class Item:
    """One thing to create: ``kind`` is dir, file, sparse, symlink, hardlink, fifo or chardev."""

    path: bytes
    kind: str
    data: bytes = b""  # sparse: the data between holes
    size: int = 0  # file: its size; sparse: the total size (a hole at the end when larger)
    seed: int = 0  # file: its content is random.Random(seed).randbytes(size)
    target: bytes = b""  # symlink target, or the path a hard link is made to
    mode: int | None = None
    owner: tuple[int, int] | None = None
    mtime_ns: int | None = None
    xattrs: dict[bytes, bytes] = field(default_factory=dict)
    acl: bool = False


@dataclass
class TreeSpec:
    items: list[Item]
    root_link: bool = False  # back up the tree through a symlink to it
    force_beside: bool = False  # restore with force into a target holding another part's files

    def paths(self) -> list[bytes]:
        return [item.path for item in self.items]


def _names() -> st.SearchStrategy[bytes]:
    alphabet = list(_PLAIN)
    if on("names_odd"):
        alphabet += _ODD
    if on("names_non_utf8"):
        alphabet += _NON_UTF8
    short = st.lists(st.sampled_from(alphabet), min_size=1, max_size=10).map(b"".join)
    choices = [short]
    if on("names_255"):
        choices.append(st.integers(200, 255).map(lambda n: (b"L\n\xff" * 90)[:n]))
    return st.one_of(*choices).filter(lambda name: name not in (b".", b".."))


def _content() -> st.SearchStrategy[tuple[int, int]]:
    """(size, seed) of a file: empty, small (packed), chunked (> SMALL, one or two chunks);
    drawn as numbers, not bytes, so a failure report stays short and replays byte for byte."""
    sizes = st.sampled_from([0, 1, 100, SMALL - 1, SMALL + 1, CHUNK + 7, 2 * CHUNK])
    return st.tuples(sizes, st.integers(0, 2**32))


@st.composite
def trees(draw: st.DrawFn) -> TreeSpec:
    """A tree of every enabled kind: a few directories, files, links and the rest."""
    names = _names()
    items: list[Item] = []
    taken: set[bytes] = {b""}

    def new_path(parent: bytes) -> bytes:
        name = draw(names.filter(lambda n: _join(parent, n) not in taken))
        path = _join(parent, name)
        taken.add(path)
        return path

    dirs = [b""]
    for _ in range(draw(st.integers(0 if on("empty_dirs") else 1, 4))):
        path = new_path(draw(st.sampled_from(dirs)))
        dirs.append(path)
        items.append(Item(path, "dir"))
    files: list[bytes] = []
    for _ in range(draw(st.integers(1, 5))):
        path = new_path(draw(st.sampled_from(dirs)))
        files.append(path)
        size, seed = draw(_content())
        items.append(Item(path, "file", size=size, seed=seed))
    if on("sparse") and draw(st.booleans()):
        path = new_path(draw(st.sampled_from(dirs)))
        data = draw(st.binary(min_size=1, max_size=64))
        items.append(Item(path, "sparse", data=data, size=draw(st.sampled_from([0, 9 * CHUNK]))))
    if not on("empty_dirs"):  # every directory gets a file, so none is empty
        for directory in dirs[1:]:
            items.append(Item(new_path(directory), "file", size=1))
    link_kinds = [
        kind
        for kind in (
            "link_relative",
            "link_to_dir",
            "link_absolute",
            "link_outside",
            "link_dangling",
        )
        if on(kind)
    ]
    for kind in draw(st.lists(st.sampled_from(link_kinds), max_size=3)) if link_kinds else []:
        path = new_path(draw(st.sampled_from(dirs)))
        up = b"../" * path.count(b"/")
        if kind == "link_relative":
            target = up + draw(st.sampled_from(files))
        elif kind == "link_to_dir":
            target = (up + draw(st.sampled_from(dirs))) or b"."
        elif kind == "link_absolute":
            target = draw(st.sampled_from([b"/nonexistent/target", ABSOLUTE_INTO_TREE]))
        elif kind == "link_outside":
            target = up + b"../../outside"
        else:
            target = b"missing-" + draw(names)
        items.append(Item(path, "symlink", target=target))
    if on("hardlinks"):
        for _ in range(draw(st.integers(0, 2))):
            path = new_path(draw(st.sampled_from(dirs)))
            items.append(Item(path, "hardlink", target=draw(st.sampled_from(files))))
    if on("specials"):
        for kind in draw(st.lists(st.sampled_from(["fifo", "chardev"]), max_size=2, unique=True)):
            items.append(Item(new_path(draw(st.sampled_from(dirs))), kind))
    for item in items:
        _draw_metadata(draw, item)
    return TreeSpec(
        items,
        root_link=on("root_link") and draw(st.booleans()),
        force_beside=on("force_beside") and draw(st.booleans()),
    )


def _draw_metadata(draw: st.DrawFn, item: Item) -> None:
    if item.kind == "hardlink":  # shares its inode's metadata
        return
    if on("modes") and item.kind in ("dir", "file", "sparse", "fifo"):
        item.mode = draw(st.sampled_from(DIR_MODES if item.kind == "dir" else FILE_MODES))
    if on("owners"):
        item.owner = draw(st.tuples(st.sampled_from(OWNERS), st.sampled_from(OWNERS)))
    if on("mtimes"):
        item.mtime_ns = draw(st.sampled_from(MTIMES))
    if on("xattrs") and item.kind in ("dir", "file", "sparse", "symlink"):
        # user.* is not allowed on symlinks (the kernel refuses it); trusted.* is, as root
        prefixes = [b"trusted."] if item.kind == "symlink" else [b"user.", b"trusted."]
        keys = st.tuples(st.sampled_from(prefixes), st.sampled_from([b"sbx", b"a.b", b"x"]))
        xattrs = draw(st.dictionaries(keys.map(b"".join), st.binary(max_size=40), max_size=2))
        item.xattrs = xattrs
    if on("acls") and item.kind in ("dir", "file"):
        item.acl = draw(st.booleans())


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def build(spec: TreeSpec, root: Path) -> None:
    """Create ``spec`` below ``root`` (made here, empty)."""
    base = os.fsencode(root)
    root.mkdir()

    def at(path: bytes) -> bytes:
        return base + b"/" + path

    for item in spec.items:
        where = at(item.path)
        if item.kind == "dir":
            os.mkdir(where)
        elif item.kind == "file":
            with open(where, "wb") as out:
                out.write(random.Random(item.seed).randbytes(item.size))
        elif item.kind == "sparse":
            _write_sparse(where, item.data, item.size)
        elif item.kind == "symlink":
            target = base if item.target == ABSOLUTE_INTO_TREE else item.target
            os.symlink(target, where)
        elif item.kind == "hardlink":
            os.link(at(item.target), where)
        elif item.kind == "fifo":
            os.mkfifo(where)
        elif item.kind == "chardev":
            os.mknod(where, stat.S_IFCHR | 0o644, os.makedev(1, 3))
    for item in spec.items:
        for key, value in item.xattrs.items():
            os.setxattr(at(item.path), key, value, follow_symlinks=False)
        if item.acl:
            _set_acl(at(item.path), default=item.kind == "dir")
    for item in spec.items:
        if item.owner is not None:
            os.chown(at(item.path), *item.owner, follow_symlinks=False)
        if item.mode is not None:
            os.chmod(at(item.path), item.mode)  # after chown: chown clears setuid/setgid
    deepest_first = sorted(spec.items, key=lambda item: item.path.count(b"/"), reverse=True)
    for item in deepest_first:
        if item.mtime_ns is not None:
            ns = item.mtime_ns
            os.utime(at(item.path), ns=(ns, ns), follow_symlinks=False)


def _write_sparse(where: bytes, data: bytes, size: int) -> None:
    """``data``, a hole of 4 chunks, ``data`` again, then a hole up to ``size``."""
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
        os.lseek(fd, 4 * CHUNK, os.SEEK_CUR)
        os.write(fd, data)
        os.ftruncate(fd, max(size, os.lseek(fd, 0, os.SEEK_CUR)))
    finally:
        os.close(fd)


def _set_acl(where: bytes, *, default: bool) -> None:
    entries = "u:4242:rwx,g:4242:r-x,m::rwx"
    args = ["setfacl", "-d", "-m", entries] if default else ["setfacl", "-m", entries]
    if default:  # a directory gets both: its own access ACL and the default for new children
        subprocess.run(["setfacl", "-m", entries, "--", where], check=True)
    subprocess.run([*args, "--", where], check=True)

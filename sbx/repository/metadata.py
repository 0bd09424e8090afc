"""Metadata beyond lstat, as ``rsync -aHAXS`` keeps it: extended attributes, ACLs and holes.

Extended attributes are captured and restored as raw bytes, every namespace the kernel lists
to this process (``user.``, ``trusted.`` and ``security.`` as root). POSIX ACLs are the
``system.posix_acl_access`` / ``system.posix_acl_default`` attributes, so they travel the same
way and need no library. Values are stored base64 in the manifest and bounded
(``format.MAX_XATTR_VALUE``, the kernel's own limit).

Order on restore matters, and is the caller's: owner first (``chown`` clears
``security.capability``), then attributes (setting an access ACL rewrites the group bits), then
the mode (a ``chmod`` sets the ACL mask from the group bits, which is what it was), then mtime.

Holes: capture records where a file's holes are (``SEEK_HOLE``/``SEEK_DATA``, not guessed from
zero runs). Restore writes the bytes, then frees each recorded hole range with
``fallocate(PUNCH_HOLE)``, but only where the restored bytes read as zeros: the content hash,
checked already, stays the truth, and a hole map that disagrees with it changes nothing.

Where the target cannot hold something (a namespace refused, no ACL support, no hole punching),
restore goes on and :class:`MetadataNotes` keeps one line per kind: what, how many, the first
path.
"""

from __future__ import annotations

import base64
import ctypes
import errno
import os
import stat
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Final

from sbx.repository.format import MAX_HOLES, Entry

_UNSUPPORTED: Final = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS}
_FALLOC_FL_KEEP_SIZE: Final = 0x01
_FALLOC_FL_PUNCH_HOLE: Final = 0x02
# refused by the target: no right (trusted.* as a user), a value it rejects, or no room for it
# (ext4 keeps a file's attributes in one block: larger ones from xfs do not fit)
_REFUSED: Final = {errno.EPERM, errno.EACCES, errno.EINVAL, errno.ENOSPC, errno.E2BIG, errno.ERANGE}
_PUNCH: Final = _FALLOC_FL_PUNCH_HOLE | _FALLOC_FL_KEEP_SIZE
_READ_BLOCK: Final = 1 << 20
_libc = ctypes.CDLL(None, use_errno=True)
_libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]


# -- capture --------------------------------------------------------------------------------------


def read_xattrs(target: str | int, notes: list[str], path: str) -> dict[str, str] | None:
    """Every extended attribute of ``target`` (a path, not followed, or an open fd) as
    name -> base64 value; None when it has none. An attribute that cannot be read is left out
    with a line in ``notes`` naming it (``path`` is the entry path)."""
    follow = isinstance(target, int)  # an fd: the flag must be True for os.*xattr on fds
    try:
        names = os.listxattr(target, follow_symlinks=follow)
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED and exc.errno != errno.ENOENT:
            notes.append(f"{path}: extended attributes not read ({exc.strerror}); not backed up")
        return None
    found: dict[str, str] = {}
    for name in sorted(names):
        try:
            value = os.getxattr(target, name, follow_symlinks=follow)
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # ENODATA: removed since it was listed
                notes.append(f"{path}: extended attribute {name} not read ({exc.strerror})")
            continue
        found[name] = base64.b64encode(value).decode("ascii")
    return found or None


def parent_entries(root: Path, rel_prefix: str, notes: list[str]) -> list[Entry]:
    """The directories between the stack and ``root`` (entry path ``rel_prefix``), outermost
    first: without them a restore makes ``data`` of ``data/models`` as root, 0755, now."""
    names = rel_prefix.split("/")[:-1]
    found: list[Entry] = []
    for depth in range(1, len(names) + 1):
        abs_path = root.parents[len(names) - depth]
        try:
            st = os.lstat(abs_path)
        except OSError:
            continue  # the part's own walk says what is missing
        if not stat.S_ISDIR(st.st_mode):
            continue  # a link on the way: what it points at is not ours to restore
        path = "/".join(names[:depth])
        xattrs = read_xattrs(str(abs_path), notes, path)
        entry = Entry(path=path, type="dir", mode=stat.S_IMODE(st.st_mode), xattrs=xattrs)
        found.append(replace(entry, uid=st.st_uid, gid=st.st_gid, mtime_ns=st.st_mtime_ns))
    return found


def make_parents_like(dest: Path, source: Path) -> None:
    """Create the missing directories of ``dest`` (and above), each with the owner, mode and
    extended attributes of the directory at the same level above ``source`` (the staged copy
    an in-place restore renames in: restore gave it the snapshot's metadata)."""
    missing: list[tuple[Path, Path]] = []
    while not (dest.exists() or dest.is_symlink()):
        missing.append((source, dest))
        source, dest = source.parent, dest.parent
    for model, made in reversed(missing):
        made.mkdir()
        st = os.lstat(model)
        if not stat.S_ISDIR(st.st_mode):
            continue
        if os.geteuid() == 0:
            os.chown(made, st.st_uid, st.st_gid)
        for name in os.listxattr(model, follow_symlinks=False):  # same file system: all fit
            os.setxattr(made, name, os.getxattr(model, name, follow_symlinks=False))
        made.chmod(stat.S_IMODE(st.st_mode))  # after chown and the ACLs: see the docstring


def find_holes(fd: int, size: int) -> list[tuple[int, int]] | None:
    """The holes of the open file ``fd`` below ``size`` as (offset, length), from the file
    system's own map; None when there are none (or it keeps no map). The fd's offset is kept."""
    if not hasattr(os, "SEEK_HOLE"):
        return None
    position = os.lseek(fd, 0, os.SEEK_CUR)
    holes: list[tuple[int, int]] = []
    try:
        start = 0
        while start < size and len(holes) < MAX_HOLES:
            hole = os.lseek(fd, start, os.SEEK_HOLE)
            if hole >= size:
                break
            try:
                data = os.lseek(fd, hole, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno != errno.ENXIO:  # ENXIO: a hole up to the end
                    raise
                data = size
            holes.append((hole, min(data, size) - hole))
            start = data
    except OSError as exc:
        if exc.errno not in _UNSUPPORTED | {errno.EINVAL, errno.ENXIO}:
            raise
        holes = []
    finally:
        os.lseek(fd, position, os.SEEK_SET)
    return holes or None


# -- restore --------------------------------------------------------------------------------------


@dataclass
class MetadataNotes:
    """What the target could not hold, one line per kind (thread-safe: files are written on a
    pool)."""

    where: str
    _kinds: dict[tuple[str, int], tuple[int, str, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def dropped(self, what: str, exc: OSError, path: str) -> None:
        key = (what, exc.errno or 0)
        with self._lock:
            count, first, reason = self._kinds.get(key, (0, path, exc.strerror or str(exc)))
            self._kinds[key] = (count + 1, first, reason)

    def lines(self) -> list[str]:
        return [
            f"{what} not kept on {count} entr{'y' if count == 1 else 'ies'} under {self.where} "
            f"(first: {first}): the target refused them ({reason}). Restore into a file system "
            "that supports them (ext4, xfs, btrfs; as root for trusted.* and security.*) to keep "
            "them."
            for (what, _), (count, first, reason) in sorted(self._kinds.items())
        ]


def apply_xattrs(target: str | int, entry: Entry, notes: MetadataNotes) -> None:
    """Set ``entry``'s extended attributes on ``target``: an open fd (files, directories) or a
    path whose last component is not followed (symlinks; see :func:`at`)."""
    if not entry.xattrs:
        return
    follow = isinstance(target, int)
    for name, value in entry.xattrs.items():
        try:
            os.setxattr(target, name, base64.b64decode(value), follow_symlinks=follow)
        except OSError as exc:
            if exc.errno not in _UNSUPPORTED | _REFUSED:
                raise
            notes.dropped(_kind(name), exc, entry.path)


def at(dir_fd: int, name: str) -> str:
    """A path for ``name`` in the directory handle ``dir_fd``: the handle is resolved by the
    kernel, ``name`` is a single component that the ``*xattr(follow_symlinks=False)`` calls do
    not follow (there is no ``lsetxattrat``)."""
    return f"/proc/self/fd/{dir_fd}/{name}"


def punch_holes(fd: int, entry: Entry, notes: MetadataNotes) -> None:
    """Free the recorded holes of the restored file ``fd`` (read and write) where its bytes are
    zeros; ranges already holes (chunks the writer skipped) are not read."""
    if not entry.holes:
        return
    st = os.fstat(fd)
    for offset, length in entry.holes:
        for start, end in _data_ranges(fd, offset, offset + length):
            if not _zeros(fd, start, end):
                continue  # the hole map disagrees with the verified content: keep the bytes
            # a partial last block is freed only if punched whole (KEEP_SIZE keeps the size)
            tail = -end % st.st_blksize if end == st.st_size else 0
            if _libc.fallocate(fd, _PUNCH, start, end + tail - start):
                code = ctypes.get_errno()
                exc = OSError(code, os.strerror(code))
                if code not in _UNSUPPORTED:
                    raise exc
                notes.dropped("holes of sparse files", exc, entry.path)
                return


def _data_ranges(fd: int, start: int, end: int) -> list[tuple[int, int]]:
    ranges: list[tuple[int, int]] = []
    while start < end:
        try:
            data = os.lseek(fd, start, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                break
            raise
        if data >= end:
            break
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        ranges.append((data, hole))
        start = hole
    return ranges


def _zeros(fd: int, start: int, end: int) -> bool:
    while start < end:
        block = os.pread(fd, min(_READ_BLOCK, end - start), start)
        if not block or block.count(0) != len(block):
            return False
        start += len(block)
    return True


def _kind(name: str) -> str:
    if name.startswith("system.posix_acl_"):
        return "POSIX ACLs"
    return f"{name.split('.', 1)[0]}.* extended attributes"

"""Writing one part of a snapshot: entries for a walked tree or for captured artefacts.

Files below ``small_file_limit`` are appended to the part's pack buffer (one object per ~8 MiB
pack, flushed when full and when the part closes); larger files are cut into ``chunk_size``
chunks, each its own object, read one chunk at a time. A file whose stat key (size, mtime,
inode, ctime) matches the previous snapshot's entry for the same path, and whose objects all
exist, is reused without being opened: :attr:`Stats.files_read` counts the files really read.

Keeping the entries, storing a file's content and closing the part into its record are
:class:`~sbx.repository.part_recorder.PartRecorder`'s, which :class:`PartWriter` extends.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import time
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from sbx.errors import SourceUnreadable
from sbx.repository.format import Entry, StatKey, hashed_by_extents
from sbx.repository.metadata import parent_entries, read_xattrs
from sbx.repository.part_recorder import PartRecorder
from sbx.repository.storage.local import LocalStorage
from sbx.repository.walk import Node, PathFilter, kind_of, root_link, walk_tree

_NOATIME = getattr(os, "O_NOATIME", 0)


class PartWriter(PartRecorder):
    """Collects one part's entries; close it (or leave its ``with`` block) to get its record."""

    # -- adding ----------------------------------------------------------------------------------

    def add_tree(
        self,
        root: Path,
        rel_prefix: str,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        exclude_paths: Collection[str] = (),
        sha256: bool = False,
    ) -> int:
        """Record the directory (or single file) ``root`` as entries below ``rel_prefix``.

        ``exclude_paths`` are exact paths relative to ``root`` (not patterns). The repository
        being written is never walked (a note says so) when it lies below ``root``.
        Returns the number of entries added; 0 means ``root`` does not exist.
        """
        self._check_path(rel_prefix)
        for parent in parent_entries(root, rel_prefix, self.warnings):
            self._parents.setdefault(parent.path, parent)
        added = 0
        own = self._own_repository(root, rel_prefix)
        if own == ".":
            return 0
        linked = root_link(root)
        if linked is not None:
            # captured through the link (walk_tree follows a root link); restore makes a real
            # directory of it and needs to know the stack had a link there (docs/repository.md)
            self.detail.setdefault("root_links", {})[rel_prefix] = linked
        filt = PathFilter(include, exclude, frozenset({*exclude_paths, *([own] if own else [])}))
        for node in walk_tree(root, rel_prefix, filt, self.warn, self._vanished):
            if self._add_node(node, sha256):
                added += 1
        return added

    def add_file(
        self,
        path: str,
        abs_path: Path,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        sha256: bool = False,
    ) -> str:
        """Store the content of ``abs_path`` as the file ``path`` (e.g. a database backup copy);
        metadata not given is taken from ``abs_path``. Returns the entry's ``hash`` (blake3 of
        the bytes, or of the extents for a chunked file: docs/repository.md)."""
        self._check_path(path)
        try:
            with abs_path.open("rb") as source:
                st = os.fstat(source.fileno())
                self._counts.files_read += 1
                entry = self._store(path, source, st, sha256, mode, mtime_ns, uid, gid)
                return entry.hash or ""
        except OSError as exc:
            raise SourceUnreadable(str(abs_path), exc.strerror or str(exc)) from exc

    def add_bytes(
        self,
        path: str,
        data: bytes,
        *,
        mode: int = 0o600,
        mtime_ns: int | None = None,
        uid: int | None = None,
        gid: int | None = None,
        sha256: bool = False,
    ) -> str:
        """Store ``data`` as the file ``path`` (owner: this process unless given).

        Returns the entry's ``hash`` (blake3 of the bytes, or of the extents for a chunked
        file: docs/repository.md)."""
        self._check_path(path)
        fields = (stat.S_IFREG | mode, 0, 0, 1, os.getuid(), os.getgid(), len(data), 0, 0, 0)
        st = os.stat_result(fields)
        mtime = time.time_ns() if mtime_ns is None else mtime_ns
        entry = self._store(path, io.BytesIO(data), st, sha256, mode, mtime, uid, gid)
        return entry.hash or ""

    def _own_repository(self, root: Path, rel_prefix: str) -> str | None:
        """The repository's path below ``root`` ("." when ``root`` is in it), else None."""
        storage = self.ctx.objects.storage
        if not isinstance(storage, LocalStorage):
            return None
        try:  # resolved both: a symlink above either must not hide that they are one tree
            inside = storage.root.resolve().relative_to(root.resolve())
        except ValueError:
            if not root.resolve().is_relative_to(storage.root.resolve()):
                return None
            inside = Path()
        except OSError:
            return None
        where = f"{rel_prefix}/{inside.as_posix()}" if inside.parts else rel_prefix
        # a backup that stored its own repository would grow by itself every night
        self.warn(
            f"{where}: the repository is inside the backed-up tree; left out of this part. "
            "Keep the repository outside the stack directory."
        )
        return inside.as_posix()

    def _vanished(self, path: str) -> None:
        self.incomplete.append(path)
        self.warn(
            f"{path} vanished or was renamed while the backup read it; what was below it is "
            "not in this snapshot (part marked incomplete). Run the backup again once the "
            "stack is idle."
        )

    # -- closing: the with block (close itself is PartRecorder's) ----------------------------------

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
            return
        if self.status == "captured":
            self.fail(f"{type(exc).__name__}: {exc}")
        # the exception on its way out says what went wrong; a second one from closing would
        # only hide it
        with contextlib.suppress(Exception):
            self.close()

    # -- internals -------------------------------------------------------------------------------

    def _reusable(self, prev: Entry) -> bool:
        chunked = hashed_by_extents(prev.content_size, self.ctx.info.small_file_limit)
        return all(
            self.ctx.uploader.reusable(e.object, e.offset + e.length, exact=chunked)
            for e in prev.extents
        )

    def _add_node(self, node: Node, sha256: bool) -> bool:
        st, path = node.st, node.path
        meta: dict[str, Any] = {
            "mode": stat.S_IMODE(st.st_mode),
            "uid": st.st_uid,
            "gid": st.st_gid,
            "mtime_ns": st.st_mtime_ns,
        }
        xattrs = read_xattrs(node.abs_path, self.warnings, path)
        if stat.S_ISDIR(st.st_mode):
            self._counts.dirs += 1
            self._append(Entry(path=path, type="dir", xattrs=xattrs, **meta))
        elif stat.S_ISLNK(st.st_mode):
            # os.readlink, not Path.readlink: a Path would normalise 'dir/' or 'a//b'
            target = os.readlink(node.abs_path)  # noqa: PTH115
            self._counts.symlinks += 1
            self._append(
                Entry(path=path, type="symlink", link_target=target, xattrs=xattrs, **meta)
            )
        elif stat.S_ISREG(st.st_mode):
            inode = (st.st_dev, st.st_ino)
            first = self._inodes.get(inode) if st.st_nlink > 1 else None
            if first is not None:
                self._counts.hardlinks += 1
                link = Entry(path=path, type="hardlink", hardlink_to=first, size=st.st_size, **meta)
                self._append(link)
                return True
            if not self._add_regular(node, sha256, xattrs):
                return False
            if st.st_nlink > 1:
                self._inodes[inode] = path
        else:
            self._counts.skipped += 1
            self.warn(f"{path} skipped: {kind_of(st.st_mode)} (not backed up)")
            return False
        return True

    def _add_regular(self, node: Node, sha256: bool, xattrs: dict[str, str] | None) -> bool:
        st, path = node.st, node.path
        key = StatKey(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
        prev = self.ctx.previous.get(path)
        if (
            prev is not None
            and prev.stat_key == key
            and (prev.sha256 is not None or not sha256)
            # a damaged object (truncated: its size or header disagrees) is not reused: the
            # file is read again and the object stored again
            and self._reusable(prev)
        ):
            self._counts.files += 1
            self._counts.bytes += prev.content_size
            self._counts.reused_bytes += prev.content_size
            mode, uid, gid = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            if (prev.mode, prev.uid, prev.gid, prev.xattrs) != (mode, uid, gid, xattrs):
                prev = replace(prev, mode=mode, uid=uid, gid=gid, xattrs=xattrs)
            self._append(prev)  # frozen: the previous manifest's entry is shared, not copied
            return True
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            try:
                fd = os.open(node.abs_path, flags | _NOATIME)
            except PermissionError:
                fd = os.open(node.abs_path, flags)  # O_NOATIME needs ownership
        except (FileNotFoundError, OSError) as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno == errno.ELOOP:  # now a symlink
                self._counts.skipped += 1
                self.warn(f"{path} vanished or changed type during the backup; not backed up")
                return False
            raise SourceUnreadable(node.abs_path, exc.strerror or str(exc)) from exc
        with os.fdopen(fd, "rb", buffering=0) as source:
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            fst = os.fstat(fd)
            self._counts.files_read += 1
            self._store(path, source, fst, sha256, None, None, None, None, xattrs=xattrs)
        return True

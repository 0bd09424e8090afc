"""Writing one part of a snapshot: entries for a walked tree or for captured artefacts.

Files below ``small_file_limit`` are appended to the part's pack buffer (one object per ~8 MiB
pack, flushed when full and when the part closes); larger files are cut into ``chunk_size``
chunks, each its own object, read one chunk at a time. A file whose stat key (size, mtime,
inode, ctime) matches the previous snapshot's entry for the same path, and whose objects all
exist, is reused without being opened: :attr:`Stats.files_read` counts the files really read.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from sbx.errors import ConfigError, SourceUnreadable
from sbx.repository.content import ContentWriter, Counts, WriteContext, fstat_of
from sbx.repository.format import (
    Entry,
    Extent,
    PartRecord,
    PartStatus,
    StatKey,
    Stats,
    hashed_by_extents,
)
from sbx.repository.metadata import find_holes, parent_entries, read_xattrs
from sbx.repository.safety import path_problem
from sbx.repository.storage.local import LocalStorage
from sbx.repository.walk import Node, PathFilter, kind_of, root_link, walk_tree

_NOATIME = getattr(os, "O_NOATIME", 0)


class PartWriter:
    """Collects one part's entries; close it (or leave its ``with`` block) to get its record."""

    def __init__(self, ctx: WriteContext, name: str, method: str) -> None:
        self.ctx, self.name, self.method = ctx, name, method
        self.detail: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.incomplete: list[str] = []  # directories whose subtree the walk could not read
        self.status: PartStatus = "captured"
        self.reason: str | None = None
        self._entries: list[Entry] = []
        self._pending: list[int] = []  # indexes of entries pointing into the unflushed pack
        self._inodes: dict[tuple[int, int], str] = {}
        self._parents: dict[str, Entry] = {}
        self._counts = Counts()
        self._content = ContentWriter(
            ctx.info, ctx.objects, ctx.uploader, ctx.small_index, self._counts
        )
        self._stored_before = ctx.uploader.stored_bytes
        self._started = time.monotonic()
        self.record: PartRecord | None = None

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

    def entries(self) -> list[Entry]:
        """The entries recorded so far (extents of a pack still being filled may change)."""
        return list(self._entries)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

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

    def skip(self, reason: str) -> None:
        """Mark the part skipped (e.g. not present); its entries are dropped."""
        self.status, self.reason = "skipped", reason

    def fail(self, reason: str) -> None:
        """Mark the part failed; its entries are dropped, the snapshot records why."""
        self.status, self.reason = "failed", reason

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> PartRecord:
        if self.record is None:
            if self.status == "captured":
                self._flush_pack()
            else:  # its entries are dropped: so is the unstored pack they point into
                self._content.discard_pack()
            self.ctx.uploader.wait()  # errors surface here, in the part that caused them
            self._counts.stored_bytes = self.ctx.uploader.stored_bytes - self._stored_before
            keep = self.status == "captured"
            record = PartRecord(
                name=self.name,
                method=self.method,
                status=self.status,
                reason=self.reason,
                detail=self.detail,
                warnings=self.warnings,
                incomplete=self.incomplete or None,
                stats=Stats(**asdict(self._counts), duration_s=time.monotonic() - self._started),
            )
            # each Entry was validated when it was made; passed to the constructor, pydantic
            # would run every entry's validators again (~1 s per 100,000 entries)
            entries, parents = (
                (self._entries, list(self._parents.values()) or None) if keep else ([], None)
            )
            self.record = record.model_copy(update={"entries": entries, "parents": parents})
        return self.record

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

    def _check_path(self, path: str) -> None:
        problem = path_problem(path)
        if problem is not None:
            raise ConfigError(f"Cannot back up {path!r} in part {self.name!r}: {problem}.")

    def _append(self, entry: Entry, pending: bool = False) -> None:
        owner = self.ctx.paths.get(entry.path)
        if owner is not None:
            raise ConfigError(
                f"{entry.path} is backed up twice (parts {owner!r} and {self.name!r}). "
                "Make the parts' paths in sbx.toml not overlap."
            )
        self.ctx.paths[entry.path] = self.name
        if pending:
            self._pending.append(len(self._entries))
        self._entries.append(entry)
        if self._content.pack_full:
            self._flush_pack()

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

    def _store(
        self,
        path: str,
        source: BinaryIO | io.RawIOBase,
        st: os.stat_result,
        sha256: bool,
        mode: int | None,
        mtime_ns: int | None,
        uid: int | None,
        gid: int | None,
        *,
        xattrs: dict[str, str] | None = None,
    ) -> Entry:
        content = self._content.store(source, sha256)
        read = content.read
        holes = find_holes(source.fileno(), read) if isinstance(source, io.FileIO) else None
        after = fstat_of(source)
        changed = read != st.st_size or (
            after is not None
            and (after.st_size, after.st_mtime_ns, after.st_ctime_ns)
            != (st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        )
        if changed:
            self.warn(f"{path} changed while being read; kept the {read} bytes read")
        entry = Entry(
            path=path,
            type="file",
            mode=stat.S_IMODE(st.st_mode) if mode is None else mode,
            uid=st.st_uid if uid is None else uid,
            gid=st.st_gid if gid is None else gid,
            mtime_ns=st.st_mtime_ns if mtime_ns is None else mtime_ns,
            size=st.st_size,
            hash=content.hash,
            sha256=content.sha256,
            extents=content.extents,
            read_size=read if read != st.st_size else None,
            # a file that changed while read must be read again next time: no cache key
            stat_key=None
            if changed or after is None
            else StatKey(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns),
            xattrs=xattrs,
            holes=None if changed else holes,  # a map of other bytes than those read
        )
        self._append(entry, content.pending)
        return entry

    def _flush_pack(self) -> None:
        object_id = self._content.flush_pack()
        if object_id is None:
            return
        for index in self._pending:
            entry = self._entries[index]
            fixed = [Extent(object_id, e.offset, e.length) for e in entry.extents]
            self._entries[index] = replace(entry, extents=fixed)
        self._pending = []

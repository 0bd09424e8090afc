"""Recording one part of a snapshot: its entries, its outcome, and its record once it closes.

:class:`PartRecorder` is what :class:`~sbx.repository.parts.PartWriter` builds on. It keeps the
part's entries (a path that two parts back up is refused), stores a file's content into one
entry through the part's :class:`~sbx.repository.content.ContentWriter`, points the entries of a
flushed pack at their object, and on ``close`` waits for the uploads and turns it all into the
part's :class:`~sbx.repository.format.PartRecord`. What is added (a walked tree, a file, bytes)
and when an entry of the previous snapshot is reused are ``parts.py``'s.
"""

from __future__ import annotations

import io
import os
import stat
import time
from dataclasses import asdict, replace
from typing import Any, BinaryIO

from sbx.errors import ConfigError
from sbx.repository.content import ContentWriter, Counts, WriteContext, fstat_of
from sbx.repository.format import Entry, Extent, PartRecord, PartStatus, StatKey, Stats
from sbx.repository.metadata import find_holes
from sbx.repository.safety import path_problem


class PartRecorder:
    """One part's entries and outcome; :class:`~sbx.repository.parts.PartWriter` adds to them."""

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

    def entries(self) -> list[Entry]:
        """The entries recorded so far (extents of a pack still being filled may change)."""
        return list(self._entries)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

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

    # -- internals -------------------------------------------------------------------------------

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

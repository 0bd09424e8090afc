"""Restoring a snapshot into a directory: staged, every byte verified, then moved into place.

Order (design: "always into a staging directory first, verified, then swapped in"):

1. The whole manifest is checked (``safety.py``, the check verify applies too) before anything
   is created.
2. Entries are written into a staging directory on the target's file system (inside the target
   when it exists, e.g. a mount point; beside it otherwise), every write relative to a directory
   handle opened without following links (``restore_fs.py``): files created with
   ``O_EXCL | O_NOFOLLOW``, each object verified against its id while read, each file verified
   against its content hash (a small file's bytes are hashed; a chunked file's hash covers its
   extents, whose objects are each checked against their ids); objects are read, decoded and
   checked on worker threads ahead of the writes (a few objects at most). Directories are
   created owner-only and get their mode later, so a read-only directory can still be filled.
3. Any failure removes the staging directory and raises, naming part, path and object: the
   target is untouched (absent if it was absent).
4. The staging directory becomes the target, or (target exists) each root path of the chosen
   parts is renamed into place, and with ``--force`` only those paths are replaced; then
   directory owners, modes and mtimes are set bottom-up, so adding children cannot bump them.

Owners (uid/gid) are restored only when running as root. Runs of zeros of at least 4 KiB are
skipped with a seek, so sparse files stay sparse; an extent that is the whole all-zero chunk
(a hole the backup skipped) is not even read: its bytes are known from its id. Symlinks are
restored verbatim, whatever they point at. A part root that was a link to a directory
(``detail["root_links"]``) is restored as a real directory holding what the link led to.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from blake3 import blake3
from pydantic import BaseModel, ConfigDict

from sbx.errors import CorruptObject, IntegrityError, ObjectMissing, RepositoryError, RestoreRefused
from sbx.repository.fastcopy import FastCopier, zero_id
from sbx.repository.format import (
    Entry,
    PartRecord,
    SnapshotManifest,
    extents_hash,
    hashed_by_extents,
)
from sbx.repository.metadata import MetadataNotes, apply_xattrs, at, punch_holes
from sbx.repository.objects import ObjectStore, PlaintextCache
from sbx.repository.restore_fs import DirHandles, is_empty, move_roots, part_roots
from sbx.repository.safety import check_restorable, select_parts

_SPARSE_MIN = 4096
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_RW = _CREATE & ~os.O_WRONLY | os.O_RDWR


class RestoreReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    snapshot_id: str
    target: str
    parts: list[str]
    files: int
    dirs: int
    symlinks: int
    hardlinks: int
    bytes: int
    duration_s: float
    warnings: list[str] = []  # metadata the target could not hold, one line per kind


def restore_snapshot(
    objects: ObjectStore,
    manifest: SnapshotManifest,
    target: Path,
    parts: list[str] | None = None,
    *,
    force: bool = False,
    small_file_limit: int,
) -> RestoreReport:
    """Restore ``parts`` (default: every captured part) of ``manifest`` into ``target``.

    ``small_file_limit`` is the repository's: it says which files' hashes cover their extents.
    """
    started = time.monotonic()
    chosen = select_parts(manifest, parts)
    check_restorable(manifest, chosen)
    target = target.expanduser().absolute()
    exists = _check_target(target, force)
    if not exists:
        target.parent.mkdir(parents=True, exist_ok=True)
    # on the target's file system, so moving it into place is a rename, never a copy
    where = target if exists else target.parent
    prefix = ".sbx-restore-" if exists else f"{target.name}.sbx-restore-"
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=where))
    try:
        writer = _Writer(objects, manifest, chosen, staging, small_file_limit)
        writer.notes.where = str(target)
        with writer.cache, writer.copier, writer.handles:
            for part in chosen:
                for entry in part.entries:
                    writer.write(part, entry)
            writer.bytes_written += writer.copier.wait()
        if exists:
            paths = [entry.path for part in chosen for entry in part.entries]
            move_roots(staging, target, part_roots(paths), force=force)
            shutil.rmtree(staging)  # what is left: ancestors of the roots, made for them
        else:
            # like a plain mkdir would have made it (mkdtemp makes it owner-only)
            umask = os.umask(0o22)
            os.umask(umask)
            staging.chmod(0o777 & ~umask)
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    dirs = [entry for part in chosen for entry in part.entries if entry.type == "dir"]
    with DirHandles(target, follow_root=True) as placed:
        for entry in sorted(dirs, key=lambda e: e.path.count("/"), reverse=True):
            fd = os.dup(placed.dir(entry.path))
            try:
                set_metadata(fd, entry, writer.notes)
            finally:
                os.close(fd)
        # the directories above the parts' paths (restore made them): as the stack had them
        for entry in _parents(chosen):
            if placed.exists(entry.path):
                fd = os.dup(placed.dir(entry.path))
                try:
                    set_metadata(fd, entry, writer.notes)
                finally:
                    os.close(fd)
    counts = Counter(entry.type for part in chosen for entry in part.entries)
    return RestoreReport(
        snapshot_id=manifest.id,
        target=str(target),
        parts=[part.name for part in chosen],
        files=counts["file"],
        dirs=counts["dir"],
        symlinks=counts["symlink"],
        hardlinks=counts["hardlink"],
        bytes=writer.bytes_written,
        duration_s=time.monotonic() - started,
        warnings=writer.notes.lines(),
    )


def _parents(parts: list[PartRecord]) -> list[Entry]:
    """Directories above the parts' paths (restore made them), innermost first."""
    inside = {entry.path for part in parts for entry in part.entries}
    found = {p.path: p for part in parts for p in part.parents or () if p.path not in inside}
    return sorted(found.values(), key=lambda entry: entry.path.count("/"), reverse=True)


def _check_target(target: Path, force: bool) -> bool:
    """Whether ``target`` exists; refuses one that is not a directory, or not empty without
    ``force``."""
    if not target.exists() and not target.is_symlink():
        return False
    if not target.is_dir():
        raise RestoreRefused(
            f"Restore target {target} exists and is not a directory. Choose another --to "
            "directory. Nothing was written."
        )
    if not force and not is_empty(target):
        raise RestoreRefused(
            f"Restore target {target} is not empty. Restore into a new or empty directory, or "
            "pass --force to replace the restored parts' paths in it. Nothing was written."
        )
    return True


def set_metadata(fd: int, entry: Entry, notes: MetadataNotes) -> None:
    """Owner, holes, extended attributes (ACLs among them), mode and mtime of the file or
    directory open as ``fd``: the one per-entry metadata step (order: sbx/repository/metadata.py).
    """
    if os.geteuid() == 0:
        os.fchown(fd, entry.uid, entry.gid)
    if entry.type == "file":
        punch_holes(fd, entry, notes)
    apply_xattrs(fd, entry, notes)  # after fchown: it clears security.capability
    os.fchmod(fd, entry.mode)  # after fchown: chown clears setuid/setgid
    os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))


def set_link_metadata(dir_fd: int, name: str, entry: Entry, notes: MetadataNotes) -> None:
    """Owner, extended attributes and mtime of the symlink ``name`` in ``dir_fd`` (a link has
    no mode of its own)."""
    if os.geteuid() == 0:
        os.chown(name, entry.uid, entry.gid, dir_fd=dir_fd, follow_symlinks=False)
    apply_xattrs(at(dir_fd, name), entry, notes)  # the link itself: not followed
    os.utime(name, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


class _Writer:
    def __init__(
        self,
        objects: ObjectStore,
        manifest: SnapshotManifest,
        parts: list[PartRecord],
        staging: Path,
        small_file_limit: int,
    ) -> None:
        self.small_file_limit = small_file_limit
        workers = max(1, min(4, os.cpu_count() or 1))
        # large files of raw objects on a local disk are copied by the kernel on a pool; the
        # rest are read, decoded and checked on worker threads ahead of the writes
        self.copier = FastCopier(objects.storage, workers=min(2, workers))
        self.fast = {
            id(entry)
            for part in parts
            for entry in part.entries
            if entry.type == "file"
            and hashed_by_extents(entry.content_size, small_file_limit)
            and self.copier.eligible(entry)
        }
        order = [
            extent.object
            for part in parts
            for entry in part.entries
            if id(entry) not in self.fast
            for extent in entry.extents
            if not _is_hole(extent.object, extent.offset, extent.length)
        ]
        # two objects read ahead keep the writes fed; each more costs its size (8 MiB) at the peak
        self.cache = PlaintextCache(
            objects, dict(Counter(order)), order=order, workers=workers, window=2
        )
        self.manifest = manifest
        self.staging = staging
        self.handles = DirHandles(staging)
        self.bytes_written = 0
        self.notes = MetadataNotes(str(staging))

    def write(self, part: PartRecord, entry: Entry) -> None:
        with self._context(part, entry):
            # missing ancestors (a part may hold data/models but not data) are made as mkdir
            # would; every directory is opened without following links
            parent, name = self.handles.parent(entry.path, create=True)
            if entry.type == "dir":
                os.mkdir(name, 0o700, dir_fd=parent)
            elif entry.type == "file" and id(entry) in self.fast:
                self._check_extents(entry)
                # created here, so a hard link to it can follow before the copy is done
                fd = os.open(name, _CREATE_RW, 0o600, dir_fd=parent)
                self.copier.run(lambda: self._fill_fast(part, entry, fd), fd)
            elif entry.type == "file":
                self._write_file(parent, name, entry)
            elif entry.type == "symlink":
                os.symlink(entry.link_target or "", name, dir_fd=parent)
                set_link_metadata(parent, name, entry, self.notes)
            elif entry.type == "hardlink":
                parent = os.dup(parent)  # the next lookup may close cached handles
                try:
                    source_fd, source = self.handles.parent(entry.hardlink_to or "")
                    os.link(source, name, src_dir_fd=source_fd, dst_dir_fd=parent,
                            follow_symlinks=False)  # fmt: skip
                finally:
                    os.close(parent)

    @contextmanager
    def _context(self, part: PartRecord, entry: Entry) -> Iterator[None]:
        """Errors of one entry, as the operator reads them: part, path, and what to do."""
        try:
            yield
        except (IntegrityError, ObjectMissing) as exc:
            raise IntegrityError(
                f"Restore of snapshot {self.manifest.id} stopped at part {part.name!r}, "
                f"file {entry.path}: {exc} Nothing was written to the target."
            ) from exc
        except OSError as exc:
            raise RepositoryError(
                f"Restore of snapshot {self.manifest.id} failed writing part {part.name!r}, "
                f"{entry.path}: {exc.strerror or exc}. Nothing was written to the target; check "
                "free space and permissions where the target is, then run it again."
            ) from exc

    def _check_extents(self, entry: Entry) -> None:
        # a chunked file's hash covers its extents: checked before anything is written, and
        # each object is checked against its id as it is read (or, fast path, once copied)
        seen = extents_hash(entry.extents)
        if seen != entry.hash:
            raise IntegrityError(
                f"its extents hash to {seen}, the manifest says {entry.hash}. "
                "Run 'sbx verify' on that snapshot."
            )

    def _fill_fast(self, part: PartRecord, entry: Entry, fd: int) -> int:
        with self._context(part, entry):
            try:
                size = self.copier.fill(fd, entry)
                set_metadata(fd, entry, self.notes)
            finally:
                os.close(fd)
            return size

    def _write_file(self, parent: int, name: str, entry: Entry) -> None:
        hasher = None if hashed_by_extents(entry.content_size, self.small_file_limit) else blake3()
        if hasher is None:
            self._check_extents(entry)
        fd = os.open(name, _CREATE_RW, 0o600, dir_fd=parent)  # read too: holes are checked
        try:
            position = 0
            for extent in entry.extents:
                if _is_hole(extent.object, extent.offset, extent.length):
                    if hasher is not None:
                        hasher.update(bytes(extent.length))
                    os.lseek(fd, extent.length, os.SEEK_CUR)
                    position += extent.length
                    continue
                plaintext = self.cache.get(extent.object)
                end = extent.offset + extent.length
                if end > len(plaintext):
                    raise CorruptObject(
                        str(self.cache.objects.storage.location),
                        extent.object,
                        f"it has {len(plaintext)} bytes, the manifest reads up to byte {end}",
                    )
                piece = memoryview(plaintext)[extent.offset : end]
                if hasher is not None:
                    hasher.update(piece)
                if _all_zeros(plaintext, extent.offset, end):
                    os.lseek(fd, len(piece), os.SEEK_CUR)
                else:
                    _write_all(fd, piece)
                position += len(piece)
            os.ftruncate(fd, position)  # materialises a trailing hole
            if hasher is not None and hasher.hexdigest() != entry.hash:
                raise IntegrityError(
                    f"its content hashes to {hasher.hexdigest()}, the manifest says "
                    f"{entry.hash}. Run 'sbx verify' on that snapshot."
                )
            set_metadata(fd, entry, self.notes)
        finally:
            os.close(fd)
        self.bytes_written += position


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def _is_hole(object_id: str, offset: int, length: int) -> bool:
    """An extent that is a whole all-zero object: its bytes are known without reading it."""
    return offset == 0 and length >= _SPARSE_MIN and object_id == zero_id(length)


def _all_zeros(data: bytes, start: int, end: int) -> bool:
    if end - start < _SPARSE_MIN or data[start] or data[end - 1]:
        return False  # short, or cheaply seen not to be a hole (most data)
    return data.count(0, start, end) == end - start

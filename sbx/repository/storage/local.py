"""Local-directory storage: one file per key under a root directory.

Writes go to ``<root>/tmp/<random>``, are fsync'd (their now clean pages are then dropped from
the page cache), then hard-linked into place (``os.link`` fails when the name exists, so a key
is never overwritten, even by a racing writer) and the directory is fsync'd: after a crash a key
holds its whole content or does not exist. Deletes fsync the
directory too, so a pruned manifest cannot come back after a crash once its objects are gone.

OS errors become the storage errors of ``storage.py``; see :func:`_storage_error` for which
``errno`` values are retryable.
"""

from __future__ import annotations

import errno
import filecmp
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, NoReturn

from sbx.errors import KeyExists, ObjectMissing, StorageError
from sbx.repository.storage import check_key, check_prefix

_COPY_BLOCK = 1 << 20
# errno values where the same call can succeed later (network file systems, busy devices)
_RETRYABLE_ERRNOS = frozenset(
    {errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ETIMEDOUT, errno.ESTALE, errno.ENOLCK}
)
_NEXT_STEPS = {
    errno.ENOSPC: "Free space on that disk or prune old snapshots with 'sbx prune'.",
    errno.EDQUOT: "Raise the disk quota or prune old snapshots with 'sbx prune'.",
    errno.EACCES: "Check the owner and permissions of the repository directory.",
    errno.EPERM: "Check the owner and permissions of the repository directory.",
    errno.EROFS: "The file system is read-only; remount it read-write or use another --repo.",
}


class LocalStorage:
    """Storage in a local directory (see the module docstring for the durability rules)."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        self.root = root.expanduser().absolute()
        self.location = str(self.root)
        # fsync=False only for throwaway repositories (tests): it gives up crash safety
        self._fsync = fsync
        self._tmp = self.root / "tmp"

    def init(self) -> None:
        try:
            created = not self.root.exists()
            self.root.mkdir(parents=True, exist_ok=True)
            self._tmp.mkdir(exist_ok=True)
            if created:
                self._sync_dir(self.root.parent)
        except OSError as exc:
            _raise(exc, "create", self.location, "")

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        path = self._path(key)
        if path.exists() and isinstance(data, bytes | bytearray | memoryview):
            # already there: never touch it again (content objects are write-once)
            self._same_or_raise(key, path, tmp=None, data=bytes(data))
            return
        tmp = self._write_tmp(key, data)
        try:
            self._make_parents(path)
            try:
                os.link(tmp, path)
            except FileExistsError:
                self._same_or_raise(key, path, tmp=tmp, data=None)
                return
            self._sync_dir(path.parent)
        except OSError as exc:
            _raise(exc, "store", self.location, key)
        finally:
            tmp.unlink(missing_ok=True)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissing(self.location, key) from None
        except OSError as exc:
            _raise(exc, "read", self.location, key)

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectMissing(self.location, key) from None
        except OSError as exc:
            _raise(exc, "open", self.location, key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        folder = prefix.rpartition("/")[0]
        start = self.root / folder if folder else self.root
        yield from (key for key in self._walk(start, folder) if key.startswith(prefix))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            _raise(exc, "delete", self.location, key)
        self._sync_dir(path.parent)

    def size(self, key: str) -> int:
        path = self._path(key)
        try:
            if not path.is_file():
                raise ObjectMissing(self.location, key)
            return path.stat().st_size
        except FileNotFoundError:
            raise ObjectMissing(self.location, key) from None
        except OSError as exc:
            _raise(exc, "stat", self.location, key)

    def replace(self, key: str, data: bytes) -> None:
        path = self._path(key)
        tmp = self._write_tmp(key, data)
        try:
            self._make_parents(path)
            tmp.replace(path)
            self._sync_dir(path.parent)
        except OSError as exc:
            _raise(exc, "replace", self.location, key)
        finally:
            tmp.unlink(missing_ok=True)

    def rename(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        # callers pick fresh random names for dst, so the check-then-rename window is harmless
        if target.exists():
            raise KeyExists(self.location, dst)
        try:
            self._make_parents(target)
            source.rename(target)
        except FileNotFoundError:
            raise ObjectMissing(self.location, src) from None
        except OSError as exc:
            _raise(exc, "rename", self.location, src)
        self._sync_dir(target.parent)
        if source.parent != target.parent:
            self._sync_dir(source.parent)

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        count = size = 0
        cutoff = time.time() - older_than_s
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0, 0
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
                if st.st_mtime <= cutoff:
                    if not dry_run:
                        Path(entry.path).unlink()
                    count, size = count + 1, size + st.st_size
            except FileNotFoundError:
                continue  # its writer finished meanwhile
        return count, size

    # -- helpers -------------------------------------------------------------------------------

    def path(self, key: str) -> Path:
        """Where ``key``'s object lies on disk, for local fast paths (restore's kernel copies).

        Read-only use: objects are write-once, and a caller must still check what it reads.
        """
        return self._path(key)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def _write_tmp(self, key: str, data: bytes | BinaryIO) -> Path:
        tmp = self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileNotFoundError:
            self.init()  # tmp/ removed behind our back: recreate it once
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            _raise(exc, "store", self.location, key)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | bytearray | memoryview):
                    out.write(data)
                else:
                    while block := data.read(_COPY_BLOCK):
                        out.write(block)
                out.flush()
                if self._fsync:
                    os.fsync(out.fileno())
                    _drop_cached(out.fileno())
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                _raise(exc, "store", self.location, key)
            raise
        return tmp

    def _same_or_raise(self, key: str, path: Path, *, tmp: Path | None, data: bytes | None) -> None:
        try:
            if tmp is not None:
                same = filecmp.cmp(tmp, path, shallow=False)
            else:
                same = path.stat().st_size == len(data or b"") and path.read_bytes() == data
        except OSError as exc:
            _raise(exc, "compare", self.location, key)
        if not same:
            raise KeyExists(self.location, key)

    def _make_parents(self, path: Path) -> None:
        missing: list[Path] = []
        parent = path.parent
        while not parent.is_dir():
            missing.append(parent)
            parent = parent.parent
        for folder in reversed(missing):
            folder.mkdir(exist_ok=True)
            self._sync_dir(folder.parent)

    def _sync_dir(self, folder: Path) -> None:
        if not self._fsync:
            return
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _walk(self, folder: Path, rel: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as exc:
            _raise(exc, "list", self.location, rel)
        for entry in entries:
            key = f"{rel}/{entry.name}" if rel else entry.name
            if entry.is_dir(follow_symlinks=False):
                if not rel and entry.name == "tmp":
                    continue  # in-flight writes are never listed
                yield from self._walk(Path(entry.path), key)
            elif entry.is_file(follow_symlinks=False):
                yield key


def _drop_cached(fd: int) -> None:
    """Let the kernel drop the (clean, just fsync'd) pages of a file written to the repository.

    A backup writes gigabytes the box will not read back soon; kept in the page cache they would
    push out the box's working set (and on a VM whose freed memory goes back to the host, fresh
    page-cache pages cost more to fill than recycled ones).
    """
    if hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def _raise(exc: OSError, action: str, location: str, key: str) -> NoReturn:
    raise _storage_error(exc, action, location, key) from exc


def _storage_error(exc: OSError, action: str, location: str, key: str) -> StorageError:
    code = exc.errno or 0
    name = errno.errorcode.get(code, str(code))
    retryable = code in _RETRYABLE_ERRNOS
    step = _NEXT_STEPS.get(code) or (
        "Try again." if retryable else "Check the disk and the repository directory."
    )
    where = f"{key} in {location}" if key else location
    return StorageError(
        f"Could not {action} {where}: {exc.strerror or exc} ({name}). {step}",
        key=key or None,
        retryable=retryable,
    )

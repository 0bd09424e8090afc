"""The storage protocol under a repository: a small key/object store, in the spirit of restic's.

A repository (``sbx/repository``) only ever talks to a :class:`Storage`; the local-directory
backend lives in ``local_storage.py``, the S3 one will sit beside it, and both must pass the same
contract suite (``tests/repository/storage_contract.py``).

Keys are relative, ``/``-separated names (``objects/ab/ab12…``, ``snapshots/<id>.json``). A key
never has an empty, ``.`` or ``..`` part, never starts with ``/``, and never starts with the
reserved ``tmp/`` (backends keep in-flight writes there). :func:`check_key` enforces this for
every backend, so a bug can never make a backend write outside its root.

Errors, in writing (restic's rule: a caller must know whether to retry):

- :class:`~sbx.errors.ObjectMissing` — the key does not exist. Permanent.
- :class:`~sbx.errors.InvalidKey` — the key breaks the rules above. Permanent (a bug).
- :class:`~sbx.errors.KeyExists` — ``put`` of a key that holds other content. Permanent.
- :class:`~sbx.errors.StorageError` with ``retryable=True`` — the same call may succeed later
  (interrupted or busy I/O, timeouts, throttling); ``retryable=False`` — it will not (permission
  denied, disk full, read-only file system, I/O error on a local disk).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO, Protocol, runtime_checkable

from sbx.errors import InvalidKey

#: first key part reserved for backends' in-flight writes
TMP_PREFIX = "tmp/"


@runtime_checkable
class Storage(Protocol):
    """What a repository needs from a place that stores objects.

    ``put`` is atomic and write-once: a reader sees the whole object or nothing, an existing key
    with the same content makes it a no-op, an existing key with other content raises
    :class:`~sbx.errors.KeyExists`. Everything else reads or deletes. ``replace`` and ``rename``
    exist only for the writer lock (``locks/``): content keys are never replaced or renamed.
    """

    #: where the storage is, for messages (a directory, an s3:// URL)
    location: str

    def init(self) -> None:
        """Create the storage's root and working area; idempotent."""
        ...

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        """Store ``data`` under ``key`` atomically, never overwriting other content."""
        ...

    def get(self, key: str) -> bytes:
        """The whole object; :class:`ObjectMissing` when absent."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A stream over the object (the caller closes it); :class:`ObjectMissing` when absent."""
        ...

    def exists(self, key: str) -> bool:
        """True when an object is stored under ``key``."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]:
        """Every key starting with ``prefix`` (plain string prefix, as S3), in no set order.

        In-flight writes are never listed.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the object durably; a missing key is not an error (a retried delete is fine)."""
        ...

    def size(self, key: str) -> int:
        """Stored size in bytes; :class:`ObjectMissing` when absent."""
        ...

    def replace(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, overwriting it. Only for the writer lock."""
        ...

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to the new key ``dst`` atomically. Only for the writer lock.

        :class:`ObjectMissing` when ``src`` is gone (someone else moved it first),
        :class:`KeyExists` when ``dst`` exists.
        """
        ...

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        """Remove in-flight writes left older than ``older_than_s`` by killed processes.

        Returns (count, bytes) removed (with ``dry_run``: that would be removed).
        """
        ...


@runtime_checkable
class RetainingStorage(Protocol):
    """A storage whose objects may be locked until a date (S3 Object Lock); optional.

    Prune asks before each delete and leaves a locked key alone; the off-box copy asks the
    storage to extend the lock of keys that new snapshots reuse (docs/repository.md).
    """

    def retained_until(self, key: str) -> datetime | None:
        """Until when ``key`` cannot be deleted (None: not locked, or no longer);
        :class:`ObjectMissing` when absent."""
        ...

    def extend_retention(self, key: str) -> bool:
        """Lock ``key`` for the storage's whole lock period from now, unless it already is;
        True when its date was moved. A no-op (False) on a storage that writes no locks."""
        ...


def retained_until(storage: Storage, key: str, now: datetime) -> datetime | None:
    """The date ``key`` stays locked after ``now``; None when it can be deleted now."""
    if not isinstance(storage, RetainingStorage):
        return None
    until = storage.retained_until(key)
    return until if until is not None and until > now else None


def check_key(key: str) -> str:
    """``key`` unchanged when it is a valid key, else :class:`InvalidKey` naming the rule."""
    if not key:
        raise InvalidKey(key, "it is empty")
    if key.startswith("/"):
        raise InvalidKey(key, "it is absolute")
    if "\\" in key or "\0" in key:
        raise InvalidKey(key, "it contains a backslash or NUL")
    for part in key.split("/"):
        if part in ("", ".", ".."):
            raise InvalidKey(key, f"it has an empty, '.' or '..' part ({part!r})")
    if key.startswith(TMP_PREFIX):
        raise InvalidKey(key, "tmp/ is reserved for in-flight writes")
    return key


def check_prefix(prefix: str) -> str:
    """``prefix`` unchanged when every complete part of it would be valid in a key."""
    if prefix.startswith("/") or "\\" in prefix or "\0" in prefix:
        raise InvalidKey(prefix, "a list prefix must be relative")
    parts = prefix.split("/")
    for part in parts[:-1]:  # the last part may be a partial name (or empty after a '/')
        if part in ("", ".", ".."):
            raise InvalidKey(prefix, f"it has an empty, '.' or '..' part ({part!r})")
    if parts[-1] in (".", ".."):
        raise InvalidKey(prefix, "it ends in '.' or '..'")
    return prefix

"""Errors of repositories and their storage (local, memory, S3).

The whole tree is drawn in ``sbx/errors/__init__.py``."""

from __future__ import annotations

from sbx.errors.base import SbxError


class StorageError(SbxError):
    """A storage backend call failed.

    ``retryable`` is True only for failures the same call may get past later (timeouts,
    throttling, interrupted or busy I/O); permission, disk-full, missing keys and invalid keys are
    permanent. Backends say which when they raise.
    """

    def __init__(
        self, message: str, *, key: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message, retryable=retryable)
        self.key = key


class BodyMismatch(StorageError):
    """A body read back differs from the checksum its store kept (retryable: it may have been
    damaged in transit; a backend that sees it on every attempt reports a damaged object)."""

    retryable = True


class ObjectMissing(StorageError):
    """No object under the key (permanent: retrying cannot make it appear)."""

    retryable = False

    def __init__(self, location: str, key: str) -> None:
        super().__init__(
            f"No object {key} in {location}. If a snapshot refers to it, the repository is "
            "damaged: run 'sbx verify --all' to see which snapshots are affected.",
            key=key,
        )


class DeleteDenied(StorageError):
    """The storage refused a delete: the credentials may only add (an append-only off-box
    copy, docs/repository.md "Off-box copies"), or the object is locked. Permanent."""

    retryable = False


class InvalidKey(StorageError):
    """A key that is not a safe, relative, '/'-separated name: a bug in the caller."""

    retryable = False

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"Invalid storage key {key!r}: {reason}. Keys are relative '/'-separated names "
            "without empty, '.' or '..' parts; this is a bug in sbx, please report it.",
            key=key,
        )


class KeyExists(StorageError):
    """A put would overwrite an existing key with different content (keys are write-once)."""

    retryable = False

    def __init__(self, location: str, key: str) -> None:
        super().__init__(
            f"{key} in {location} already exists with different content; objects are never "
            "overwritten. If it is a content object, it is damaged: run 'sbx verify --all'.",
            key=key,
        )


class RepositoryError(SbxError):
    """A repository is missing, busy, damaged, or written by a newer sbx."""


class NotARepository(RepositoryError):
    """The location is not an sbx repository (and, for backups, cannot become one)."""

    exit_code = 2

    def __init__(self, location: str, *, not_empty: bool = False) -> None:
        if not_empty:
            message = (
                f"{location} is not an sbx repository (no sbx-repository.json) and is not empty; "
                "sbx creates a repository only in an empty or new directory. Point --repo at a "
                "repository, or at an empty or new directory."
            )
        else:
            message = (
                f"{location} is not an sbx repository (no sbx-repository.json). Point --repo at "
                f"a repository, or run 'sbx backup --repo {location}' on an empty or new "
                "directory to create one."
            )
        super().__init__(message)
        self.location = location


class UnsupportedFormat(RepositoryError):
    """A repository or manifest of a format version this sbx does not know."""

    exit_code = 2

    def __init__(self, what: str, seen: object, supported: int) -> None:
        super().__init__(
            f"{what} has format version {seen!r}, this sbx reads version {supported}: it was "
            "made by a newer sbx; upgrade sbx and run the command again."
        )


class RepositoryLocked(RepositoryError):
    """Another writer holds the repository lock; retrying later can succeed."""

    retryable = True

    def __init__(
        self, location: str, pid: int, host: str, since: str, command: str, stale_after_s: float
    ) -> None:
        super().__init__(
            f"Repository {location} locked by pid {pid} on host {host} since {since} "
            f"({command}); wait for it to finish, or if that process is gone the lock is taken "
            f"over after {stale_after_s:g} s."
        )


class SnapshotNotFound(RepositoryError):
    """No snapshot with the id asked for."""

    exit_code = 2

    def __init__(self, snapshot_id: str, location: str) -> None:
        super().__init__(f"No snapshot {snapshot_id} in {location}; 'sbx snapshots' lists them.")


class SnapshotAmbiguous(SnapshotNotFound):
    """A short id that more than one snapshot starts with."""

    def __init__(self, prefix: str, location: str, matches: list[str]) -> None:
        shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
        RepositoryError.__init__(
            self,
            f"{prefix} is the start of {len(matches)} snapshots in {location} ({shown}); "
            "give more of the id ('sbx snapshots' lists them).",
        )


class ManifestInvalid(RepositoryError):
    """A manifest that cannot be read, breaks the format's rules, or is unsafe to restore."""

    def __init__(self, where: str, problem: str, next_step: str | None = None) -> None:
        step = next_step or (
            "Nothing was changed. Use another snapshot ('sbx snapshots'), and run "
            "'sbx verify --all' to check the others."
        )
        super().__init__(f"Manifest of {where} is unusable: {problem}. {step}")
        self.where = where
        self.problem = problem


class IntegrityError(RepositoryError):
    """Stored bytes do not match their recorded hash. Never retryable: the data is wrong."""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class CorruptObject(IntegrityError):
    """One content object is damaged (wrong hash, unknown encoding, or undecodable)."""

    def __init__(self, location: str, object_id: str, problem: str) -> None:
        super().__init__(
            f"Object {object_id} in {location} is damaged: {problem}. Run 'sbx verify --all' "
            "to see which snapshots use it; restore those from the off-box copy."
        )
        self.object_id = object_id
        self.problem = problem


class RestoreRefused(RepositoryError):
    """The restore target, or the parts asked for, cannot be used; nothing was written."""

    exit_code = 2


class PolicyRefused(RepositoryError):
    """A retention policy that would delete every snapshot (all keep-* are zero)."""

    exit_code = 2


class RemoteMismatch(RepositoryError):
    """The off-box location holds another repository, or is not an sbx repository."""

    exit_code = 2


class CopyIncomplete(RepositoryError):
    """Some objects or manifests could not be copied off the box; a rerun sends only those."""

    def __init__(self, location: str, failed: int, first: str, *, retryable: bool) -> None:
        super().__init__(
            f"Copy to {location} is incomplete: {failed} item(s) failed, first: {first}. "
            "Run 'sbx copy' again: it sends only what is missing.",
            retryable=retryable,
        )


class WriteConflict(StorageError):
    """A conditional write found the key already there (HTTP 412); the caller compares."""

    retryable = False


class UploadGone(StorageError):
    """A multipart upload was aborted or completed meanwhile (NoSuchUpload); the whole put can
    be retried, the same part cannot."""

    retryable = True

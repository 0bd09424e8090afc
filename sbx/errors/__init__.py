"""The one error tree of sbx (one package: base, stack, repository, changes, runs).

Every error sbx raises on purpose derives from :class:`SbxError`. Each class knows whether a retry
can help (``retryable``) and renders a message that says what failed, where, what was seen versus
expected, and the next step — the CLI prints exactly that message, the Prefect UI shows it as the
failure reason.

    SbxError
    ├── ConfigError                 bad sbx.toml / SBX_* value (key, value, expected)
    │   └── AgeKeyError             an age identity/recipient missing, unreadable or wrong
    ├── StackError                  the stack directory or compose project is not what we expect
    ├── NoSpace                     a write of sbx's own state (.sbx) found the disk full
    ├── DockerError                 Docker Engine calls
    │   ├── DockerUnavailable       daemon not reachable (retryable)
    │   ├── ContainerNotFound       a container or service has no container
    │   └── DockerOperationFailed   an API call failed (retryable on 5xx / connection errors)
    ├── ComposeError                a `docker compose` invocation failed
    ├── HttpError                   an HTTP endpoint could not be reached or answered badly
    ├── QdrantError                 a Qdrant API call (collections, snapshots) failed
    ├── PrefectServerError          the local Prefect server cannot be started, reached or stopped
    ├── StorageError                a repository storage call failed (retryable when it says so)
    │   ├── ObjectMissing           no object under that key (permanent)
    │   ├── InvalidKey              a key that is not a safe relative name (permanent, a bug)
    │   ├── BodyMismatch            a body read back does not match the checksum stored with it
    │   ├── WriteConflict           an S3 conditional write found the key there (HTTP 412)
    │   ├── UploadGone              an S3 multipart upload vanished meanwhile (retryable)
    │   ├── DeleteDenied            the credentials may not delete there (append-only, locked)
    │   └── KeyExists               a put would overwrite a key with other content (permanent)
    ├── RepositoryError             a repository is missing, busy, damaged or newer than this sbx
    │   ├── NotARepository          the location holds no sbx-repository.json
    │   ├── UnsupportedFormat       repository or manifest written by a newer sbx
    │   ├── RepositoryLocked        another writer holds the lock (retryable)
    │   ├── SnapshotNotFound        no snapshot with that id
    │   │   └── SnapshotAmbiguous   a short id that several snapshots start with
    │   ├── ManifestInvalid         a manifest that is truncated, invalid, or unsafe to restore
    │   ├── IntegrityError          stored bytes do not match their hash (never retryable)
    │   │   └── CorruptObject       one object's bytes are damaged
    │   ├── RestoreRefused          the restore target or the parts asked for are not usable
    │   ├── RemoteMismatch          the off-box location holds another repository (exit 2)
    │   ├── CopyIncomplete          an off-box copy could not send everything (rerun resumes)
    │   └── PolicyRefused           a retention policy that would delete every snapshot
    ├── SourceUnreadable            a file of the stack could not be read during a backup
    ├── SqliteCopyError             an online SQLite backup failed its integrity_check (retryable)
    ├── TlsError                    an endpoint did not complete a TLS handshake
    ├── CutRefused                  a live log changed under a rotation; nothing was cut
    ├── LogRotationError            a log file could not be rotated (nothing was cut from it)
    │   └── LogRotationBusy         another rotation holds the directory's lock (retryable)
    ├── AlertDeliveryFailed         a notification block did not take an alert (retryable)
    ├── UpgradeError                an upgrade or rollback did not end on the release it aimed for
    │   ├── UpgradeRefused          nothing was changed (rollback image missing, entry still open)
    │   ├── RolledBack              the new release failed its gate; the old one runs and passed
    │   └── RollbackFailed          the old release failed the gate too: a person is needed
    ├── ChangeLogDamaged            the hash-chained change log was edited, cut or reordered
    ├── ModelSwapRefused            a model swap refused before changing anything (preflight)
    │   └── ModelSwapBadService     --service names no service with an env file (exit 2)
    ├── ModelSwapRolledBack         a model swap that regressed, rolled back to the old model
    ├── NotImplementedYet           a command of the CLI contract that is not built yet
    ├── FreezeIncomplete            an exposure could not be stopped, or a port is still public
    ├── UnfreezeRefused             unfreeze was not confirmed (exit 2, nothing started)
    ├── EvidenceDamaged             an evidence bundle differs from its manifest or its hash
    ├── EvidenceIncomplete          a bundle was sealed without one of its sources
    ├── ContainRefused              an incident containment refused before changing anything
    ├── ReportOutRefused            incident report --out names a directory (exit 2)
    ├── BackupIncomplete            a snapshot was stored, but a part failed (carries the report)
    ├── DamageFound                 verify found damaged or missing data (carries the report)
    ├── DrillFailed                 a restore drill failed (carries the report)
    ├── RestoreUnhealthy            the restored stack stayed unhealthy; old data swapped back
    ├── RecoverRefused              an in-place recovery asked for without confirmation (exit 2)
    ├── RecoveryFailed              an incident recovery is not done (carries the report)
    ├── HealthChecksFailed          a health check fails (carries the report)
    ├── LogRotationIncomplete       some log files could not be rotated (carries the report)
    └── GpuError                    an NVML call failed (driver mismatch, GPU lost, no permission)
        ├── NoGpu                   no NVIDIA driver or GPU here: information, never a failure
        └── GpuThresholdFailed      a GPU reading crossed a configured threshold

Retry decisions (``retry_condition_fn`` on tasks) use :func:`is_retryable` only; integrity and
configuration errors are never retried.
"""

from __future__ import annotations

from sbx.errors.base import (
    AgeKeyError,
    ConfigError,
    NotImplementedYet,
    SbxError,
    is_retryable,
)
from sbx.errors.changes import (
    ChangeLogDamaged,
    ContainRefused,
    EvidenceDamaged,
    EvidenceIncomplete,
    FreezeIncomplete,
    ModelSwapBadService,
    ModelSwapRefused,
    ModelSwapRolledBack,
    ReportOutRefused,
    RollbackFailed,
    RolledBack,
    UnfreezeRefused,
    UpgradeError,
    UpgradeRefused,
)
from sbx.errors.repository import (
    BodyMismatch,
    CopyIncomplete,
    CorruptObject,
    DeleteDenied,
    IntegrityError,
    InvalidKey,
    KeyExists,
    ManifestInvalid,
    NotARepository,
    ObjectMissing,
    PolicyRefused,
    RemoteMismatch,
    RepositoryError,
    RepositoryLocked,
    RestoreRefused,
    SnapshotAmbiguous,
    SnapshotNotFound,
    StorageError,
    UnsupportedFormat,
    UploadGone,
    WriteConflict,
)
from sbx.errors.runs import (
    BackupIncomplete,
    DamageFound,
    DrillFailed,
    HealthChecksFailed,
    LogRotationIncomplete,
    RecoverRefused,
    RecoveryFailed,
    RestoreUnhealthy,
)
from sbx.errors.stack import (
    AlertDeliveryFailed,
    ComposeError,
    ContainerNotFound,
    CutRefused,
    DockerError,
    DockerOperationFailed,
    DockerUnavailable,
    GpuError,
    GpuThresholdFailed,
    HttpError,
    LogRotationBusy,
    LogRotationError,
    NoGpu,
    NoSpace,
    PrefectServerError,
    QdrantError,
    SourceUnreadable,
    SqliteCopyError,
    StackError,
    TlsError,
)

__all__ = [
    "AgeKeyError",
    "AlertDeliveryFailed",
    "BackupIncomplete",
    "BodyMismatch",
    "ChangeLogDamaged",
    "ComposeError",
    "ConfigError",
    "ContainRefused",
    "ContainerNotFound",
    "CopyIncomplete",
    "CorruptObject",
    "CutRefused",
    "DamageFound",
    "DeleteDenied",
    "DockerError",
    "DockerOperationFailed",
    "DockerUnavailable",
    "DrillFailed",
    "EvidenceDamaged",
    "EvidenceIncomplete",
    "FreezeIncomplete",
    "GpuError",
    "GpuThresholdFailed",
    "HealthChecksFailed",
    "HttpError",
    "IntegrityError",
    "InvalidKey",
    "KeyExists",
    "LogRotationBusy",
    "LogRotationError",
    "LogRotationIncomplete",
    "ManifestInvalid",
    "ModelSwapBadService",
    "ModelSwapRefused",
    "ModelSwapRolledBack",
    "NoGpu",
    "NoSpace",
    "NotARepository",
    "NotImplementedYet",
    "ObjectMissing",
    "PolicyRefused",
    "PrefectServerError",
    "QdrantError",
    "RecoverRefused",
    "RecoveryFailed",
    "RemoteMismatch",
    "ReportOutRefused",
    "RepositoryError",
    "RepositoryLocked",
    "RestoreRefused",
    "RestoreUnhealthy",
    "RollbackFailed",
    "RolledBack",
    "SbxError",
    "SnapshotAmbiguous",
    "SnapshotNotFound",
    "SourceUnreadable",
    "SqliteCopyError",
    "StackError",
    "StorageError",
    "TlsError",
    "UnfreezeRefused",
    "UnsupportedFormat",
    "UpgradeError",
    "UpgradeRefused",
    "UploadGone",
    "WriteConflict",
    "is_retryable",
]

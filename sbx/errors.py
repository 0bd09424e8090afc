"""The one error tree of sbx.

Every error sbx raises on purpose derives from :class:`SbxError`. Each class knows whether a retry
can help (``retryable``) and renders a message that says what failed, where, what was seen versus
expected, and the next step — the CLI prints exactly that message, the Prefect UI shows it as the
failure reason.

    SbxError
    ├── ConfigError                 bad sbx.toml / SBX_* value (key, value, expected)
    │   └── AgeKeyError             an age identity/recipient missing, unreadable or wrong
    ├── StackError                  the stack directory or compose project is not what we expect
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
    │   └── KeyExists               a put would overwrite a key with other content (permanent)
    ├── RepositoryError             a repository is missing, busy, damaged or newer than this sbx
    │   ├── NotARepository          the location holds no sbx-repository.json
    │   ├── UnsupportedFormat       repository or manifest written by a newer sbx
    │   ├── RepositoryLocked        another writer holds the lock (retryable)
    │   ├── SnapshotNotFound        no snapshot with that id
    │   ├── ManifestInvalid         a manifest that is truncated, invalid, or unsafe to restore
    │   ├── IntegrityError          stored bytes do not match their hash (never retryable)
    │   │   └── CorruptObject       one object's bytes are damaged
    │   ├── RestoreRefused          the restore target or the parts asked for are not usable
    │   ├── RemoteMismatch          the off-box location holds another repository (exit 2)
    │   ├── CopyIncomplete          an off-box copy could not send everything (rerun resumes)
    │   └── PolicyRefused           a retention policy that would delete every snapshot
    ├── SourceUnreadable            a file of the stack could not be read during a backup
    ├── LogRotationError            a log file could not be rotated (nothing was cut from it)
    │   └── LogRotationBusy         another rotation holds the directory's lock (retryable)
    ├── AlertDeliveryFailed         a notification block did not take an alert (retryable)
    ├── UpgradeError                an upgrade or rollback did not end on the release it aimed for
    │   ├── UpgradeRefused          nothing was changed (rollback image missing, entry still open)
    │   ├── RolledBack              the new release failed its gate; the old one runs and passed
    │   └── RollbackFailed          the old release failed the gate too: a person is needed
    ├── ChangeLogDamaged            the hash-chained change log was edited, cut or reordered
    ├── ModelSwapRefused            a model swap refused before changing anything (preflight)
    ├── ModelSwapRolledBack         a model swap that regressed, rolled back to the old model
    ├── NotImplementedYet           a command of the CLI contract that is not built yet
    ├── FreezeIncomplete            an exposure could not be stopped, or a port is still public
    ├── UnfreezeRefused             unfreeze was not confirmed (exit 2, nothing started)
    ├── EvidenceDamaged             an evidence bundle differs from its manifest or its hash
    ├── EvidenceIncomplete          a bundle was sealed without one of its sources
    ├── ContainRefused              an incident containment refused before changing anything
    └── GpuError                    an NVML call failed (driver mismatch, GPU lost, no permission)
        ├── NoGpu                   no NVIDIA driver or GPU here: information, never a failure
        └── GpuThresholdFailed      a GPU reading crossed a configured threshold

Retry decisions (``retry_condition_fn`` on tasks) use :func:`is_retryable` only; integrity and
configuration errors are never retried.
"""

from __future__ import annotations


class SbxError(Exception):
    """Base of every sbx error. ``str(err)`` is the full operator-facing message."""

    retryable: bool = False
    #: process exit status the CLI uses for this error (2: fix your input; 1: operation failed)
    exit_code: int = 1

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Prefect pickles a failed run's exception. Subclasses take other __init__ arguments
        # (a report, a path…), so rebuild from the instance's state, never by calling __init__.
        return (_rebuild, (type(self), self.args), self.__dict__)


def _rebuild(cls: type[SbxError], args: tuple[object, ...]) -> SbxError:
    error = cls.__new__(cls)
    error.args = args
    return error


class ConfigError(SbxError):
    """Unusable configuration; the message names the key, the value and what is expected."""

    exit_code = 2

    @classmethod
    def for_key(cls, source: str, key: str, value: object, expected: str) -> ConfigError:
        shown = _shorten(repr(value))
        return cls(
            f"Invalid configuration in {source}: {key} = {shown}; expected {expected}. "
            f"Fix {key} in {source} (or the matching SBX_* variable) and run the command again."
        )


class StackError(SbxError):
    """The stack directory or its compose project is missing or not laid out as expected."""

    exit_code = 2


class DockerError(SbxError):
    """A Docker Engine call failed."""


class DockerUnavailable(DockerError):
    """The Docker daemon does not answer."""

    retryable = True

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(
            f"Docker is not reachable at {where} ({detail}). Start the daemon "
            "('systemctl start docker', or 'dockerd &' as root) or point DOCKER_HOST at it, "
            "then run the command again."
        )


class ContainerNotFound(DockerError):
    """A container (or the container of a compose service) does not exist."""

    def __init__(self, what: str, project: str) -> None:
        super().__init__(
            f"No container for {what} in compose project '{project}'. "
            "Check 'sbx status' and start the stack with 'docker compose up -d'."
        )


class DockerOperationFailed(DockerError):
    """A Docker API call was refused or failed; retryable when the daemon itself failed."""


class ComposeError(SbxError):
    """A docker compose command failed; carries the command and the tail of its stderr."""

    def __init__(self, command: list[str], returncode: int, stderr: str, next_step: str) -> None:
        tail = _shorten(stderr.strip().splitlines()[-1] if stderr.strip() else "no output", 400)
        super().__init__(
            f"'{' '.join(command)}' failed with exit status {returncode}: {tail}. {next_step}"
        )
        self.command = command
        self.returncode = returncode
        self.stderr = stderr


class HttpError(SbxError):
    """An HTTP endpoint could not be reached or gave an unusable answer."""

    retryable = True


class QdrantError(SbxError):
    """A Qdrant API call failed; retryable on 5xx and transport errors."""


class PrefectServerError(SbxError):
    """The local Prefect server could not be started, reached or stopped."""


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


class SourceUnreadable(SbxError):
    """A file or directory of the stack could not be read during a backup."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"Cannot read {path} for the backup: {problem}. Fix its permissions (sbx runs as "
            "the user that owns the stack) or exclude it from the part, then back up again."
        )


class NotImplementedYet(SbxError):
    """A command of the CLI contract that is not built yet: never a fake success."""

    exit_code = 2

    def __init__(self, command: str, issue: int) -> None:
        super().__init__(
            f"'sbx {command}' is not implemented yet (planned in issue #{issue}). Nothing was done."
        )


class GpuError(SbxError):
    """An NVML call failed on a machine that has the NVIDIA driver.

    A machine *without* the driver is no error: the GPU readings then say "no GPU". ``retryable``
    only for NVML's timeout and "unknown" answers; a lost GPU or a driver/library mismatch stays
    until someone acts.
    """

    def __init__(self, what: str, where: str, detail: str, next_step: str, **kw: bool) -> None:
        super().__init__(f"NVML could not {what} ({where}): {detail}. {next_step}", **kw)
        self.where = where


class NoGpu(GpuError):
    """This machine has no NVIDIA driver (or it sees no GPU): readings say "no GPU" and pass."""

    def __init__(self, detail: str) -> None:
        SbxError.__init__(self, f"No NVIDIA GPU on this machine: {detail}.")
        self.where = "this machine"
        self.detail = detail


class GpuThresholdFailed(GpuError):
    """GPU readings crossed a configured threshold (``[gpu]`` in sbx.toml); carries the report."""

    def __init__(self, failures: list[str], report: object) -> None:
        SbxError.__init__(
            self,
            f"{len(failures)} GPU check(s) failed: "
            + "; ".join(failures)
            + ". See 'sbx gpu' for every reading; thresholds are under [gpu] in sbx.toml.",
        )
        self.where = "gpu"
        self.failures = failures
        self.report = report

    def __reduce__(self) -> tuple[type[GpuThresholdFailed], tuple[list[str], object]]:
        # Prefect pickles a failed run's exception: rebuild it from what __init__ takes
        return (type(self), (self.failures, self.report))


class LogRotationError(SbxError):
    """A log file could not be rotated; no line was cut from the live file."""

    def __init__(self, path: str, problem: str, next_step: str | None = None) -> None:
        step = next_step or "Nothing was cut from it; fix the cause and run 'sbx logs rotate'."
        super().__init__(f"Cannot rotate {path}: {problem}. {step}")
        self.path = path


class LogRotationBusy(LogRotationError):
    """Another rotation of the same log directory is running (it holds the lock)."""

    retryable = True

    def __init__(self, directory: str, lock: str) -> None:
        super().__init__(
            directory,
            f"another rotation holds {lock}",
            "Wait for it to finish (it takes seconds) and run 'sbx logs rotate' again.",
        )


def is_retryable(exc: BaseException) -> bool:
    """True when retrying the step that raised ``exc`` can help (used by task retry conditions)."""
    return isinstance(exc, SbxError) and exc.retryable


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class AlertDeliveryFailed(SbxError):
    """An alert could not be handed to its notification block; it is sent again next run."""

    retryable = True

    def __init__(self, block: str, detail: str) -> None:
        super().__init__(
            f"Alert through Prefect block '{block}' failed: {detail}. It is sent again on the "
            "next health run; check the block ('prefect block ls') and its receiver."
        )


# -- off-box copies (issue #4) -----------------------------------------------------------------

_IDENTITY_HOW = (
    "Set SBX_AGE_IDENTITY_FILE (or age_identity_file in sbx.toml) to a file holding the "
    "AGE-SECRET-KEY-1… line, or put it in the age_identity field of the sbx-secrets block named "
    "by offbox.secrets_block, then run the command again"
)


class AgeKeyError(ConfigError):
    """An age identity or recipient is missing, unreadable, or does not fit the repository."""

    @classmethod
    def missing(cls, location: str) -> AgeKeyError:
        return cls(f"{location} is encrypted and no age identity is set. {_IDENTITY_HOW}.")

    @classmethod
    def wrong(cls, location: str) -> AgeKeyError:
        return cls(
            f"The age identity given cannot decrypt {location}: it belongs to none of the "
            f"recipients the repository was encrypted to. {_IDENTITY_HOW} — with the identity "
            "of one of those recipients. Nothing was written."
        )

    @classmethod
    def unreadable(cls, source: str) -> AgeKeyError:
        return cls(
            f"{source} holds no age identity (expected a line AGE-SECRET-KEY-1…). {_IDENTITY_HOW}."
        )

    @classmethod
    def not_a_recipient(cls, location: str) -> AgeKeyError:
        return cls(
            f"Refusing to create {location}: this box's age identity matches none of the "
            "recipients in SBX_AGE_RECIPIENTS, so nobody here could check or restore the copy. "
            "Add the identity's recipient (age-keygen -y FILE) to SBX_AGE_RECIPIENTS. Nothing "
            "was written."
        )

    @classmethod
    def bad_recipient(cls, text: str, problem: str) -> AgeKeyError:
        return cls(
            f"age recipient {_shorten(text, 20)!r} is not valid ({problem}). Fix "
            "SBX_AGE_RECIPIENTS (or age_recipients in sbx.toml): comma-separated age1… keys."
        )

    @classmethod
    def no_recipients(cls) -> AgeKeyError:
        return cls(
            "Off-box copies are encrypted with age, but no recipients are set. Set "
            "SBX_AGE_RECIPIENTS (or age_recipients in sbx.toml) to comma-separated age1… keys "
            "(age-keygen -y IDENTITY_FILE prints one). Nothing was written."
        )


class RemoteMismatch(RepositoryError):
    """The off-box location holds another repository, or is not an sbx repository."""

    exit_code = 2


class UpgradeError(SbxError):
    """An upgrade or rollback (flows/upgrade.py) did not end on the release it aimed for."""


class UpgradeRefused(UpgradeError):
    """The upgrade did not start: nothing was changed (a rollback image missing, no registry
    digest to return to, another upgrade still open)."""

    exit_code = 2


class CopyIncomplete(RepositoryError):
    """Some objects or manifests could not be copied off the box; a rerun sends only those."""

    def __init__(self, location: str, failed: int, first: str, *, retryable: bool) -> None:
        super().__init__(
            f"Copy to {location} is incomplete: {failed} item(s) failed, first: {first}. "
            "Run 'sbx copy' again: it sends only what is missing.",
            retryable=retryable,
        )


class RolledBack(UpgradeError):
    """The new release failed its gate; the recorded release runs again and passed the gate."""

    def __init__(self, gate: str, detail: str, entry: str) -> None:
        super().__init__(
            f"rolled back: {gate} failed ({detail}). The previous release runs again and passed "
            f"the same gate (journal entry {entry}). Read the new image's log before retrying."
        )


class RollbackFailed(UpgradeError):
    """The new release failed and the recorded one failed its gate too: the box needs a person."""

    def __init__(self, gate: str, detail: str, entry: str) -> None:
        super().__init__(
            f"rollback failed: after the upgrade failed, the previous release did not pass "
            f"{gate} either ({detail}); journal entry {entry} stays open. Check 'sbx status' and "
            "'docker compose logs', then run 'sbx rollback' once the cause is fixed."
        )


class ChangeLogDamaged(SbxError):
    """The change log's hash chain is broken: an entry was edited, removed, reordered or cut."""

    def __init__(self, description: str) -> None:
        super().__init__(
            f"Change log damaged: {description} Entries from there on cannot be trusted; compare "
            "with the Prefect run history and a backup's copy of .sbx/changelog.jsonl."
        )


class ModelSwapRefused(SbxError):
    """A model swap refused before anything changed (the capacity preflight said no)."""

    def __init__(self, service: str, model: str, detail: str) -> None:
        super().__init__(
            f"Model swap of {service} to {model} refused, nothing was changed: {detail}"
        )


class ModelSwapRolledBack(SbxError):
    """A model swap whose new model failed; the previous env file and model were restored."""

    def __init__(self, service: str, model: str, reason: str) -> None:
        super().__init__(
            f"Model swap of {service} to {model} rolled back: {reason}. The previous env file "
            f"is back and {service} was restarted on it; see the run's artifact."
        )


# -- incident response: freeze and evidence (issue #7) ----------------------------------------


class FreezeIncomplete(SbxError):
    """``sbx incident freeze`` could not stop every exposure, or a port is still published
    beyond loopback afterwards: the box may still be reachable from outside."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "Freeze incomplete, the box may still be reachable: "
            + "; ".join(problems)
            + ". Stop or unpublish what is named by hand (e.g. 'docker stop NAME', or bind its "
            "ports to 127.0.0.1 in the compose file), then run 'sbx incident freeze' again."
        )
        self.problems = problems

    def __reduce__(self) -> tuple[type[FreezeIncomplete], tuple[list[str]]]:
        return (type(self), (self.problems,))


class UnfreezeRefused(SbxError):
    """``sbx incident unfreeze`` was not confirmed: nothing was started."""

    exit_code = 2

    def __init__(self, how: str) -> None:
        super().__init__(
            f"Unfreeze refused ({how}); nothing was started. Unfreezing exposes the box again: "
            "run 'sbx incident unfreeze --yes' once containment is done, or confirm the paused "
            "run's form in the Prefect UI."
        )


class EvidenceDamaged(SbxError):
    """An evidence bundle does not match its manifest, or the manifest not its change-log hash."""

    def __init__(self, bundle: str, problems: list[str]) -> None:
        shown = "; ".join(problems[:20]) + (
            f"; … {len(problems) - 20} more" if len(problems) > 20 else ""
        )
        super().__init__(
            f"Evidence bundle {bundle} does not verify: {shown}. Do not use it as it is; "
            "compare with a copy made earlier (off-box) and keep this one untouched for review."
        )
        self.bundle = bundle
        self.problems = problems

    def __reduce__(self) -> tuple[type[EvidenceDamaged], tuple[str, list[str]]]:
        return (type(self), (self.bundle, self.problems))


class EvidenceIncomplete(SbxError):
    """An evidence bundle was written and sealed, but a source could not be collected."""

    def __init__(self, bundle: str, problems: list[str]) -> None:
        super().__init__(
            f"Evidence bundle {bundle} was sealed without: {'; '.join(problems)}. What it holds "
            "verifies; collect the rest by hand or fix the cause and run 'sbx incident "
            "preserve' again (a new bundle) before anything is restarted."
        )
        self.bundle = bundle
        self.problems = problems

    def __reduce__(self) -> tuple[type[EvidenceIncomplete], tuple[str, list[str]]]:
        return (type(self), (self.bundle, self.problems))


class ContainRefused(SbxError):
    """``sbx incident contain`` refused before changing anything (a key name that is not in the
    keys file, a service without a recorded clean digest, no saved blast-radius report)."""

    exit_code = 2

    def __init__(self, detail: str) -> None:
        super().__init__(f"Containment refused, nothing was changed: {detail}")

"""Errors of the box itself: its stack, Docker, compose, HTTP services, GPUs, logs, alerts.

The whole tree is drawn in ``sbx/errors/__init__.py``."""

from __future__ import annotations

from sbx.errors.base import SbxError, _shorten


class StackError(SbxError):
    """The stack directory or its compose project is missing or not laid out as expected."""

    exit_code = 2


class NoSpace(SbxError):
    """A write of sbx's own state (``<stack>/.sbx``: markers, journals, staging, records) found
    its disk full. The message says what that write left as it was, and where to free space."""

    def __init__(self, path: object, outcome: str) -> None:
        where = _parent(str(path))
        super().__init__(
            f"No space left on device writing {path}; {outcome}. Free space in {where} "
            f"('df -h {where}', 'du -sh {where}/*') and run the command again."
        )


def _parent(path: str) -> str:
    head, _, _ = path.rstrip("/").rpartition("/")
    return head or "/"


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


class SourceUnreadable(SbxError):
    """A file or directory of the stack could not be read during a backup."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"Cannot read {path} for the backup: {problem}. Fix its permissions (sbx runs as "
            "the user that owns the stack) or exclude it from the part, then back up again."
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


class AlertDeliveryFailed(SbxError):
    """An alert could not be handed to its notification block; it is sent again next run."""

    retryable = True

    def __init__(self, block: str, detail: str) -> None:
        super().__init__(
            f"Alert through Prefect block '{block}' failed: {detail}. It is sent again on the "
            "next health run; check the block ('prefect block ls') and its receiver."
        )


class SqliteCopyError(SbxError):
    """The online backup of a database failed or produced a copy that fails integrity_check."""

    retryable = True


class TlsError(SbxError):
    """The endpoint did not complete a TLS handshake; the message says why."""


class CutRefused(SbxError):
    """The live file changed under us in a way no appending writer causes; nothing was cut."""

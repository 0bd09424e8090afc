"""The one error tree of sbx.

Every error sbx raises on purpose derives from :class:`SbxError`. Each class knows whether a retry
can help (``retryable``) and renders a message that says what failed, where, what was seen versus
expected, and the next step — the CLI prints exactly that message, the Prefect UI shows it as the
failure reason.

    SbxError
    ├── ConfigError                 bad sbx.toml / SBX_* value (key, value, expected)
    ├── StackError                  the stack directory or compose project is not what we expect
    ├── DockerError                 Docker Engine calls
    │   ├── DockerUnavailable       daemon not reachable (retryable)
    │   ├── ContainerNotFound       a container or service has no container
    │   └── DockerOperationFailed   an API call failed (retryable on 5xx / connection errors)
    ├── ComposeError                a `docker compose` invocation failed
    ├── HttpError                   an HTTP endpoint could not be reached or answered badly
    ├── QdrantError                 a Qdrant API call (collections, snapshots) failed
    ├── PrefectServerError          the local Prefect server cannot be started, reached or stopped
    └── NotImplementedYet           a command of the CLI contract that is not built yet

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


class NotImplementedYet(SbxError):
    """A command of the CLI contract that is not built yet: never a fake success."""

    exit_code = 2

    def __init__(self, command: str, issue: int) -> None:
        super().__init__(
            f"'sbx {command}' is not implemented yet (planned in issue #{issue}). Nothing was done."
        )


def is_retryable(exc: BaseException) -> bool:
    """True when retrying the step that raised ``exc`` can help (used by task retry conditions)."""
    return isinstance(exc, SbxError) and exc.retryable


def _shorten(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"

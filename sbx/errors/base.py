"""The root of the tree, configuration errors, and the retry rule.

The whole tree is drawn in ``sbx/errors/__init__.py``."""

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

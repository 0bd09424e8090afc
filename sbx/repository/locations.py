"""Where a repository lives: a directory on the box, or ``s3://bucket/prefix``.

:class:`RepositoryLocation` is the engine's reading of a ``--repo`` / ``repository.location`` /
``offbox.url`` value. The engine opens directories itself (:func:`local_storage`); an S3
location is opened by ``tasks.repository.open_storage``, the one place that knows the S3 client
and its configuration, so the engine imports no SDK and no configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sbx.errors import ConfigError
from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage

S3_SCHEME = "s3://"
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class RepositoryLocation:
    """A parsed location: ``text`` is what the operator wrote (a local path made absolute)."""

    text: str

    @classmethod
    def parse(cls, location: str | Path) -> RepositoryLocation:
        text = str(location)
        if not text.strip() or ("://" in text and not text.startswith(S3_SCHEME)):
            # "" would be the current directory and "ftp://x" a relative path: never meant
            raise ConfigError(
                f"Repository location {text!r} is neither a directory nor s3://bucket/prefix; "
                "fix --repo (or repository.location in sbx.toml)."
            )
        if text.startswith(S3_SCHEME):
            parse_s3_url(text)  # a bad bucket name or prefix: ConfigError, before any call
            return cls(text)
        return cls(str(Path(text).expanduser()))

    @property
    def is_s3(self) -> bool:
        return self.text.startswith(S3_SCHEME)

    @property
    def path(self) -> Path:
        """The directory of a local location (not for s3://)."""
        if self.is_s3:
            raise ValueError(f"{self.text} is not a directory")
        return Path(self.text)

    def __str__(self) -> str:
        return self.text


def local_storage(location: str | Path | Storage) -> Storage:
    """The storage of a local location (a Storage passes through)."""
    if isinstance(location, Storage):
        return location
    parsed = RepositoryLocation.parse(location)
    if parsed.is_s3:
        # the engine knows no S3 client: flows and commands open it through tasks.repository
        raise ConfigError(
            f"{parsed} is an S3 location; it is opened with the [offbox] settings "
            "(tasks.repository.open_storage), not as a directory."
        )
    return LocalStorage(parsed.path)


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> ``("bucket", "some/prefix/")``; :class:`ConfigError`."""
    if not url.startswith("s3://"):
        raise ConfigError(f"{url!r} is not an s3://bucket/prefix URL. Fix offbox.url or --repo.")
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise ConfigError(
            f"{url!r}: {bucket!r} is not a valid S3 bucket name (3-63 lower-case letters, "
            "digits, '.' and '-'). Fix offbox.url or --repo."
        )
    prefix = prefix.strip("/")
    if prefix:
        for part in prefix.split("/"):
            if part in ("", ".", "..") or "\\" in part:
                raise ConfigError(
                    f"{url!r}: the prefix has an empty, '.' or '..' part. Fix offbox.url or --repo."
                )
        prefix += "/"
    return bucket, prefix

"""Where a repository lives: a directory on the box, or ``s3://bucket/prefix``.

:class:`RepositoryLocation` is the engine's reading of a ``--repo`` / ``repository.location`` /
``offbox.url`` value. The engine opens directories itself (:func:`local_storage`); an S3
location is opened by ``tasks.repository.open_storage``, the one place that knows the S3 client
and its configuration, so the engine imports no SDK and no configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage

S3_SCHEME = "s3://"


@dataclass(frozen=True)
class RepositoryLocation:
    """A parsed location: ``text`` is what the operator wrote (a local path made absolute)."""

    text: str

    @classmethod
    def parse(cls, location: str | Path) -> RepositoryLocation:
        text = str(location)
        if text.startswith(S3_SCHEME):
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
        raise ValueError(f"{parsed} is opened through tasks.repository.open_storage")
    return LocalStorage(parsed.path)

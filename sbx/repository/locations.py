"""Where a repository lives: a directory on the box, or ``s3://bucket/prefix``.

:func:`open_storage` is the one place that turns a ``--repo`` / ``repository.location`` /
``offbox.url`` value into a :class:`~tasks.clients.storage.Storage`; the S3 client (and boto3)
is imported only when an s3:// location is used.
"""

from __future__ import annotations

from pathlib import Path

from blocks.config import SbxConfig
from sbx.errors import ConfigError
from tasks.clients.local_storage import LocalStorage
from tasks.clients.storage import Storage


def open_storage(location: str | Path | Storage, config: SbxConfig | None = None) -> Storage:
    """The storage at ``location``; S3 endpoint, credentials and options from ``config.offbox``.

    Without ``config`` an s3:// location uses the standard ``AWS_*`` variables and the AWS
    credential chain.
    """
    if isinstance(location, Storage):
        return location
    text = str(location)
    if not text.strip() or ("://" in text and not text.startswith("s3://")):
        # "" would be the current directory and "ftp://x" a relative path: never meant
        raise ConfigError(
            f"Repository location {text!r} is neither a directory nor s3://bucket/prefix; "
            "fix --repo (or repository.location in sbx.toml)."
        )
    if text.startswith("s3://"):
        from tasks.clients.s3_storage import connect

        return connect(text, config.offbox if config is not None else None)
    return LocalStorage(Path(text).expanduser())

"""Where a repository lives: a directory on the box, or ``s3://bucket/prefix``.

:func:`open_storage` is the one place that turns a ``--repo`` / ``repository.location`` /
``offbox.url`` value into a :class:`~sbx.repository.storage.Storage`; the S3 client (and boto3)
is imported only when an s3:// location is used.
"""

from __future__ import annotations

from pathlib import Path

from blocks.config import SbxConfig
from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage


def open_storage(location: str | Path | Storage, config: SbxConfig | None = None) -> Storage:
    """The storage at ``location``; S3 endpoint, credentials and options from ``config.offbox``.

    Without ``config`` an s3:// location uses the standard ``AWS_*`` variables and the AWS
    credential chain.
    """
    if isinstance(location, Storage):
        return location
    text = str(location)
    if text.startswith("s3://"):
        from tasks.clients.s3.storage import connect

        return connect(text, config.offbox if config is not None else None)
    return LocalStorage(Path(text).expanduser())

"""Reading an S3 storage, and the one door every request of it goes through.

:class:`S3Reader` holds what :class:`~tasks.clients.s3.storage.S3Storage` is built on: the
bucket and prefix of an ``s3://`` URL, the key check, :meth:`S3Reader._call` (a request retried
on what botocore lets through, its failure translated into sbx's errors), and the checked reads
(``get``, ``open``, ``exists``, ``list``, ``size``: every body checked against the checksum S3
stored and its length). The writes, Object Lock and the guarantees as a whole are
``storage.py``'s (its module docstring).
"""

from __future__ import annotations

import io
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from sbx.errors import BodyMismatch, ConfigError, CorruptObject, ObjectMissing
from sbx.repository.locations import parse_s3_url
from sbx.repository.storage import check_key, check_prefix
from tasks.clients.s3.checksums import VerifiedBody, verified_bytes
from tasks.clients.s3.connect import MiB, S3Options
from tasks.clients.s3.errors import retry_again, translate
from tasks.clients.s3.multipart import MIN_PART_SIZE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

T = TypeVar("T")


class S3Reader:
    """The reading side of the storage under ``s3://bucket/prefix`` (see ``storage.py``)."""

    def __init__(self, url: str, client: S3Client, options: S3Options | None = None) -> None:
        self.bucket, self.prefix = parse_s3_url(url)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self.client = client
        self.options = options or S3Options()
        if self.options.part_size < MIN_PART_SIZE:
            raise ConfigError(f"S3 part size {self.options.part_size} is below S3's 5 MiB.")

    def init(self) -> None:
        # buckets are made by the operator (their policy, lock and lifecycle are theirs to set).
        # A one-key listing rather than HeadBucket: it needs only s3:ListBucket, the permission
        # every off-box policy grants anyway (docs/repository.md, "Off-box copies")
        self._call(
            "open",
            None,
            self.client.list_objects_v2,
            Bucket=self.bucket,
            Prefix=self.prefix,
            MaxKeys=1,
        )

    def get(self, key: str) -> bytes:
        return self._read(key)[0]

    def open(self, key: str) -> BinaryIO:
        name = self._name(key)
        answer = self._call(
            "open",
            key,
            self.client.get_object,
            Bucket=self.bucket,
            Key=name,
            ChecksumMode="ENABLED",
        )
        etag = answer["ETag"]

        def reopen(offset: int) -> Mapping[str, Any]:
            return self._call(
                "read",
                key,
                self.client.get_object,
                Bucket=self.bucket,
                Key=name,
                Range=f"bytes={offset}-",
                IfMatch=etag,  # the same object, not one put meanwhile
            )

        raw = VerifiedBody(answer, self.location, key, reopen)
        return io.BufferedReader(raw, buffer_size=MiB)

    def exists(self, key: str) -> bool:
        try:
            self._head(key)
        except ObjectMissing:
            return False
        return True

    def list(self, prefix: str = "") -> Iterator[str]:
        check_prefix(prefix)
        token: str | None = None
        while True:
            args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix + prefix}
            if token:
                args["ContinuationToken"] = token
            page = self._call("list", prefix or None, self.client.list_objects_v2, **args)
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :]
            token = page.get("NextContinuationToken")
            if not page.get("IsTruncated") or not token:
                return

    def size(self, key: str) -> int:
        return int(self._head(key)["ContentLength"])

    # -- helpers -------------------------------------------------------------------------------

    def _name(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, action: str, key: str | None, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """``fn(**kwargs)``, retried on retryable failures botocore let through, translated."""
        attempts = max(1, self.options.attempts)
        for attempt in range(attempts):
            try:
                return fn(**kwargs)
            except Exception as exc:
                error = translate(exc, action, self.location, key)
                if error is None or (error is exc and not isinstance(exc, BodyMismatch)):
                    raise  # a bug, or our own error raised complete (a damaged body is retried)
                if attempt == attempts - 1 or not retry_again(exc, error):
                    raise error from exc
            delay = self.options.backoff_s * (2**attempt)
            time.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - jitter, not crypto
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, key: str) -> tuple[bytes, str]:
        """The checked body of ``key`` and its ETag."""
        name = self._name(key)

        def read() -> tuple[bytes, str]:
            answer = self.client.get_object(Bucket=self.bucket, Key=name, ChecksumMode="ENABLED")
            return verified_bytes(answer, self.location, key), answer["ETag"]

        try:
            return self._call("read", key, read)
        except BodyMismatch as exc:
            # on every attempt: the stored bytes themselves are damaged, which verify must
            # report against the snapshots using them rather than abort on
            raise CorruptObject(
                self.location,
                key,
                f"every read ({self.options.attempts}) differs from the checksum S3 stored",
            ) from exc

    def _head(self, key: str) -> Mapping[str, Any]:
        name = self._name(key)
        return self._call(
            "look up",
            key,
            self.client.head_object,
            Bucket=self.bucket,
            Key=name,
            ChecksumMode="ENABLED",
        )

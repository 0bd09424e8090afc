"""S3 storage: one object per key under ``s3://bucket/prefix``, on any S3-compatible endpoint.

The same code talks to AWS, MinIO and moto: only the endpoint differs (``connect``). One boto3
client is shared by every thread (boto3 clients are thread-safe; sessions are not, so the
session is used only here, once).

How the :class:`~sbx.repository.storage.Storage` promises are kept on S3:

- write-once ``put``: conditional writes (``If-None-Match: *`` on PutObject and on
  CompleteMultipartUpload), so a key is never overwritten, also on versioned buckets and under
  Object Lock; a key that exists is compared (by its stored SHA-256, else by its bytes) and the put
  is a no-op for the same content, :class:`KeyExists` for other content. The endpoint must honour
  ``If-None-Match`` on writes (AWS since 2024, MinIO, moto).
- atomic: S3 publishes an object only once its upload is complete; in-flight multipart uploads
  are never listed (``purge_tmp`` aborts the ones killed processes left).
- integrity: every upload carries a checksum (SHA-256, or a full-object CRC32 for multipart
  uploads) that S3 verifies; every read asks for it back (``ChecksumMode=ENABLED``) and checks it
  and the length, so a truncated or damaged body raises a retryable :class:`StorageError` (and
  ``get`` retries it), never short data.
- Object Lock (``offbox.object_lock``): every write but the lock's carries a retain-until date,
  read back and extended for prune and copy (``object_lock.py``, :class:`RetainingStorage`).
- retries: botocore retries throttling, 5xx and connection errors (standard mode); around that,
  :meth:`S3Storage._call` retries what botocore does not see (a body cut off or damaged while
  being read, 409 conflicts; ``errors.retry_again``).

Errors are translated in ``errors.py``, the client is built in ``connect.py``, large
uploads live in ``multipart.py`` and read checks in ``checksums.py``. The reads and the
request door (``_call``) are :class:`~tasks.clients.s3.reader.S3Reader`'s (``reader.py``), which
:class:`S3Storage` extends with the writes, Object Lock, rename and ``purge_tmp``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, BinaryIO

from blocks.config import OffboxConfig
from sbx.errors import KeyExists, ObjectMissing, UploadGone, WriteConflict
from tasks.clients.s3.checksums import b64
from tasks.clients.s3.connect import AccessKeys, MiB, make_client
from tasks.clients.s3.multipart import (
    HashingReader,
    list_uploads,
    read_up_to,
    stream_size,
    upload_multipart,
)
from tasks.clients.s3.object_lock import extension, lock_arguments, retain_until
from tasks.clients.s3.reader import S3Reader


class S3Storage(S3Reader):
    """Storage under ``s3://bucket/prefix``; see the module docstring for the guarantees."""

    def _extra(self, key: str) -> dict[str, Any]:
        """Arguments of every upload of ``key``: storage class, encryption, Object Lock."""
        extra: dict[str, Any] = lock_arguments(self.options, key)
        if self.options.storage_class:
            extra["StorageClass"] = self.options.storage_class
        if self.options.server_side_encryption:
            extra["ServerSideEncryption"] = self.options.server_side_encryption
        return extra

    def put(self, key: str, data: bytes | BinaryIO) -> None:
        name = self._name(key)
        if isinstance(data, bytes | bytearray | memoryview):
            self._put_small(key, name, bytes(data))
            return
        size = stream_size(data)
        head = b""
        if size is None:  # not seekable: read ahead to find out whether it is large
            head = read_up_to(data, self.options.multipart_threshold)
            if len(head) < self.options.multipart_threshold:
                self._put_small(key, name, head)
                return
        elif size < self.options.multipart_threshold:
            self._put_small(key, name, read_up_to(data, size + 1))
            return
        self._put_large(key, name, HashingReader(data, head), size)

    def delete(self, key: str) -> None:
        name = self._name(key)
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=name)

    def retained_until(self, key: str) -> datetime | None:
        """S3 Object Lock's retain-until date of ``key`` (object_lock.py); None: not locked."""
        return retain_until(self._head(key))

    def extend_retention(self, key: str) -> bool:
        if lock_arguments(self.options, key):  # sbx locks this key: read its date first
            retention = extension(self.options, key, self.retained_until(key))
            if retention is not None:
                call = self.client.put_object_retention
                name = self._name(key)
                self._call("lock", key, call, Bucket=self.bucket, Key=name, Retention=retention)
                return True
        return False

    def replace(self, key: str, data: bytes) -> None:
        """Overwrite ``key`` (the lock's heartbeat). S3 makes the new object visible at once."""
        self._put_small(key, self._name(key), data, overwrite=True)

    def rename(self, src: str, dst: str) -> None:
        """Copy ``src`` to the new key ``dst``, then delete ``src`` if it is still the same.

        Not atomic, as S3 has no rename: (1) read ``src`` and its ETag, (2) write ``dst`` only
        if absent (:class:`KeyExists`), (3) delete ``src`` only if its ETag is unchanged. When
        another process replaced or moved ``src`` between (1) and (3), ``dst`` is removed again
        and :class:`ObjectMissing` says someone else moved it first. A process killed between
        (2) and (3) leaves both keys; the lock treats the copy as a stale leftover. A delete
        whose answer is lost and retried also reads as "moved by someone else" (the retry finds
        ``src`` gone): the lock then just tries again.
        """
        source = self._name(src)
        body, etag = self._read(src)
        try:
            self._put_small(dst, self._name(dst), body)
        except KeyExists:
            raise KeyExists(self.location, dst) from None
        try:
            self._call(
                "rename",
                src,
                self.client.delete_object,
                Bucket=self.bucket,
                Key=source,
                IfMatch=etag,
            )
        except (WriteConflict, ObjectMissing):
            self.delete(dst)
            raise ObjectMissing(self.location, src) from None

    def purge_tmp(self, older_than_s: float, *, dry_run: bool = False) -> tuple[int, int]:
        """Abort multipart uploads under the prefix started more than ``older_than_s`` ago."""
        cutoff = datetime.now(UTC).timestamp() - older_than_s
        count = size = 0
        for upload in list_uploads(self.client, self._call, self.bucket, self.prefix):
            if upload["Initiated"].timestamp() > cutoff:
                continue
            name, upload_id = upload["Key"], upload["UploadId"]
            try:
                parts = self._call(
                    "list parts of",
                    None,
                    self.client.list_parts,
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                )
                if not dry_run:
                    self._call(
                        "abort an upload in",
                        None,
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                    )
            except UploadGone:
                continue  # finished or aborted meanwhile
            count, size = count + 1, size + sum(p.get("Size", 0) for p in parts.get("Parts", []))
        return count, size

    # -- helpers -------------------------------------------------------------------------------

    def _put_small(self, key: str, name: str, data: bytes, *, overwrite: bool = False) -> None:
        digest = hashlib.sha256(data).digest()
        condition: dict[str, Any] = {} if overwrite else {"IfNoneMatch": "*"}

        def send() -> None:
            self.client.put_object(
                Bucket=self.bucket,
                Key=name,
                Body=data,
                ChecksumAlgorithm="SHA256",
                ChecksumSHA256=b64(digest),
                **condition,
                **self._extra(key),
            )

        try:
            self._call("store", key, send)
        except WriteConflict:
            # there already (another writer, or our own earlier attempt whose answer was lost)
            self._same_or_raise(key, digest)

    def _put_large(self, key: str, name: str, reader: HashingReader, size: int | None) -> None:
        if self.exists(key):  # one HEAD instead of uploading gigabytes that are there
            reader.drain()
            self._same_or_raise(key, reader.sha256.digest())
            return
        part_size = self.options.part_size
        if size is not None:  # S3 allows 10,000 parts: grow the parts of huge objects
            part_size = max(part_size, -(-size // 9_999))
        try:
            upload_multipart(
                self.client,
                lambda fn: self._call("store", key, fn),
                self.bucket,
                name,
                reader,
                part_size=part_size,
                workers=max(1, self.options.part_workers),
                extra=self._extra(key),
            )
        except WriteConflict:
            reader.drain()
            self._same_or_raise(key, reader.sha256.digest())

    def _same_or_raise(self, key: str, sha256: bytes) -> None:
        stored = self._head(key)
        theirs = stored.get("ChecksumSHA256")
        if theirs and "-" not in theirs:
            same = theirs == b64(sha256)
        else:  # no whole-object SHA-256 (multipart upload, or another tool wrote it): hash it
            digest = hashlib.sha256()
            with self.open(key) as stream:
                while block := stream.read(MiB):
                    digest.update(block)
            same = digest.digest() == sha256
        if not same:
            raise KeyExists(self.location, key)


def connect(
    url: str,
    offbox: OffboxConfig | None = None,
    *,
    max_attempts: int = 10,
    lock_days: int = 0,
    keys: AccessKeys | None = None,
) -> S3Storage:
    """The S3 storage at ``url``, configured from ``offbox`` (see ``connect.make_client``).

    ``max_attempts`` is botocore's, per request (standard retry mode, exponential backoff);
    ``lock_days``: how long ``offbox.object_lock`` locks each object written.
    """
    client, options = make_client(
        offbox or OffboxConfig(), max_attempts=max_attempts, lock_days=lock_days, keys=keys
    )
    return S3Storage(url, client, options)

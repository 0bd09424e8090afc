"""Parallel, write-once multipart uploads for ``S3Storage`` (large objects only).

Not boto3's ``upload_fileobj``: s3transfer does not pass ``IfNoneMatch`` to
CompleteMultipartUpload, and without it a large object could overwrite a key (Object Lock and
versioned buckets rely on sbx never doing that). The shape is the same: parts are read one after
another from the stream and uploaded by a small thread pool, at most ``workers`` parts in memory.

Integrity: every part carries its CRC32, and the upload a full-object CRC32 (``ChecksumType
FULL_OBJECT``) that S3 checks on completion and returns on every later GET, where ``S3Storage``
checks it again. A failure at any point aborts the upload, so no parts are left billed; what a
killed process leaves behind, ``S3Storage.purge_tmp`` aborts later.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from tasks.clients.s3.checksums import crc32_b64

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

T = TypeVar("T")
Call = Callable[[Callable[[], T]], T]

#: S3's limits: parts of at least 5 MiB (all but the last), at most 10,000 of them
MIN_PART_SIZE = 5 << 20
MAX_PARTS = 10_000


class HashingReader:
    """Reads a stream in parts, keeping its SHA-256 (for comparisons) and CRC32 (for S3)."""

    def __init__(self, stream: BinaryIO, head: bytes = b"") -> None:
        self._stream = stream
        self._head, self._head_pos = memoryview(head), 0  # bytes read ahead, handed out first
        self.sha256 = hashlib.sha256()
        self.crc32 = 0
        self.size = 0

    def read(self, size: int) -> bytes:
        chunks: list[bytes] = []
        want = size
        if self._head_pos < len(self._head):
            chunk = bytes(self._head[self._head_pos : self._head_pos + want])
            self._head_pos += len(chunk)
            chunks.append(chunk)
            want -= len(chunk)
        while want > 0:
            block = self._stream.read(want)
            if not block:
                break
            chunks.append(block)
            want -= len(block)
        data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self.sha256.update(data)
        self.crc32 = zlib.crc32(data, self.crc32)
        self.size += len(data)
        return data

    def drain(self) -> None:
        """Read (and hash) the rest of the stream without keeping it."""
        while self.read(1 << 20):
            pass


def upload_multipart(
    client: S3Client,
    call: Call[Any],
    bucket: str,
    key: str,
    reader: HashingReader,
    *,
    part_size: int,
    workers: int,
    extra: dict[str, Any],
) -> None:
    """Upload everything ``reader`` yields to ``bucket/key`` unless the key exists.

    ``call`` runs one SDK call with sbx's retries and error translation (``S3Storage._call``);
    a key that appeared meanwhile surfaces as its ``WriteConflict``.
    """
    created = call(
        lambda: client.create_multipart_upload(
            Bucket=bucket,
            Key=key,
            ChecksumAlgorithm="CRC32",
            ChecksumType="FULL_OBJECT",
            **extra,
        )
    )
    upload_id = created["UploadId"]
    try:
        parts = _upload_parts(client, call, bucket, key, upload_id, reader, part_size, workers)
        call(
            lambda: client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                ChecksumCRC32=crc32_b64(reader.crc32),
                ChecksumType="FULL_OBJECT",
                MpuObjectSize=reader.size,
                IfNoneMatch="*",
            )
        )
    except BaseException:
        # best effort: purge_tmp aborts whatever this leaves
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        raise


def _upload_parts(
    client: S3Client,
    call: Call[Any],
    bucket: str,
    key: str,
    upload_id: str,
    reader: HashingReader,
    part_size: int,
    workers: int,
) -> list[CompletedPartTypeDef]:
    slots = threading.BoundedSemaphore(workers)  # parts read but not yet uploaded

    def send(number: int, data: bytes) -> CompletedPartTypeDef:
        try:
            checksum = crc32_b64(zlib.crc32(data))
            answer = call(
                lambda: client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumCRC32=checksum,
                )
            )
            return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": checksum}
        finally:
            slots.release()

    futures: list[Future[CompletedPartTypeDef]] = []
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sbx-s3-part") as pool:
        try:
            number = 0
            while True:
                slots.acquire()
                if any(f.done() and f.exception() for f in futures):
                    slots.release()
                    break  # a part failed for good: stop reading, report it below
                data = reader.read(part_size)
                if not data and number > 0:
                    slots.release()
                    break
                number += 1
                if number > MAX_PARTS:
                    slots.release()
                    raise ValueError(f"{key}: more than {MAX_PARTS} parts of {part_size} bytes")
                futures.append(pool.submit(send, number, data))
                if len(data) < part_size:
                    break
        except BaseException:
            for future in futures:
                future.cancel()  # only parts not started yet: a failure stops the upload
            raise
    return [future.result() for future in futures]


def stream_size(stream: BinaryIO) -> int | None:
    """Bytes left in ``stream`` when it can tell (seekable), else None."""
    try:
        if not stream.seekable():
            return None
        here = stream.tell()
        end = stream.seek(0, io.SEEK_END)
        stream.seek(here)
    except (OSError, ValueError, AttributeError):
        return None
    return end - here


def read_up_to(stream: BinaryIO, limit: int) -> bytes:
    chunks: list[bytes] = []
    left = limit
    while left > 0:
        block = stream.read(min(left, 8 << 20))
        if not block:
            break
        chunks.append(block)
        left -= len(block)
    return b"".join(chunks)


def list_uploads(
    client: S3Client, call: Callable[..., Any], bucket: str, prefix: str
) -> Iterator[Mapping[str, Any]]:
    """Every multipart upload in flight under ``prefix`` (``call``: ``S3Storage._call``)."""
    markers: dict[str, str] = {}
    while True:
        page = call(
            "list uploads in",
            None,
            client.list_multipart_uploads,
            Bucket=bucket,
            Prefix=prefix,
            **markers,
        )
        yield from page.get("Uploads", [])
        if not page.get("IsTruncated"):
            return
        markers = {
            "KeyMarker": page.get("NextKeyMarker", ""),
            "UploadIdMarker": page.get("NextUploadIdMarker", ""),
        }

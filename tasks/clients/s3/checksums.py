"""Checksums of S3 objects: what ``S3Storage`` sends with each upload and checks on each read.

Single uploads carry a SHA-256, multipart uploads a full-object CRC32 (S3 cannot combine part
SHA-256s into a whole-object one). A read asks for the stored checksum back
(``ChecksumMode=ENABLED``) and compares it, and the length, with what arrived: a short or damaged
body becomes a retryable :class:`~sbx.errors.StorageError`, never data. Objects without a stored
whole-object checksum (written by another tool) are checked by length only; the repository still
checks every object's content hash.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import FlexibleChecksumError

from sbx.errors import BodyMismatch, StorageError
from tasks.clients.s3.errors import translate


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32_b64(value: int) -> str:
    return b64(value.to_bytes(4, "big"))


class Checksum:
    """A running SHA-256 or CRC32, whichever S3 returned for an object (or none)."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        sha, crc = answer.get("ChecksumSHA256"), answer.get("ChecksumCRC32")
        # "-N" suffix: a composite checksum of parts, not comparable with the whole body's
        self.kind = ""
        if sha and "-" not in sha:
            self.kind = "sha256"
        elif crc and "-" not in crc:
            self.kind = "crc32"
        self.expected = base64.b64decode(str(sha if self.kind == "sha256" else crc or ""))
        self._sha = hashlib.sha256() if self.kind == "sha256" else None
        self._crc = 0

    def update(self, block: bytes) -> None:
        if self._sha is not None:
            self._sha.update(block)
        elif self.kind == "crc32":
            self._crc = zlib.crc32(block, self._crc)

    def matches(self) -> bool:
        if self._sha is not None:
            return self._sha.digest() == self.expected
        if self.kind == "crc32":
            return self._crc.to_bytes(4, "big") == self.expected
        return True


def check_body(
    length: int, checksum: Checksum, answer: Mapping[str, Any], location: str, key: str
) -> None:
    """Raise a retryable error when a body read is short or does not match S3's checksum."""
    expected = answer.get("ContentLength")
    if expected is not None and length != int(expected):
        raise StorageError(
            f"Read of {key} in {location} failed: got {length} of {expected} bytes "
            "(truncated). Run the command again.",
            key=key,
            retryable=True,
        )
    if not checksum.matches():
        raise BodyMismatch(
            f"Read of {key} in {location} failed: its {checksum.kind.upper()} differs from the "
            "one S3 stored (damaged in transit, or at rest). Run the command again.",
            key=key,
        )


def verified_bytes(answer: Mapping[str, Any], location: str, key: str) -> bytes:
    """The whole body of a GetObject answer, checked."""
    with contextlib.closing(answer["Body"]):
        body: bytes = answer["Body"].read()
    checksum = Checksum(answer)
    checksum.update(body)
    check_body(len(body), checksum, answer, location, key)
    return body


class VerifiedBody(io.RawIOBase):
    """An object's body as a stream: checks length and checksum at its end, errors translated.

    A body cut off midway is resumed where it stopped: ``reopen(offset)`` asks for the rest
    (a ranged GET of the same ETag), up to ``resumes`` times; the checksum still covers the
    whole object.
    """

    def __init__(
        self,
        answer: Mapping[str, Any],
        location: str,
        key: str,
        reopen: Callable[[int], Mapping[str, Any]] | None = None,
        resumes: int = 5,
    ) -> None:
        self._answer, self._body = answer, answer["Body"]
        self._location, self._key = location, key
        self._checksum, self._read = Checksum(answer), 0
        self._reopen, self._resumes = reopen, resumes
        self._size = int(answer.get("ContentLength") or 0)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while True:
            try:
                block = self._body.read(len(view))
            except Exception as exc:
                error = translate(exc, "read", self._location, self._key)
                if error is None or error is exc:
                    raise
                damaged = isinstance(exc, FlexibleChecksumError)  # the end: nothing to resume
                if damaged or not error.retryable or not self._can_resume():
                    raise error from exc
                self._resume()
                continue
            if block or not len(view) or self._read >= self._size or not self._can_resume():
                break
            self._resume()  # ended early without an error: ask for the rest
        if not block and len(view):
            check_body(self._read, self._checksum, self._answer, self._location, self._key)
            return 0
        view[: len(block)] = block
        self._checksum.update(block)
        self._read += len(block)
        return len(block)

    def _can_resume(self) -> bool:
        return self._reopen is not None and self._resumes > 0

    def _resume(self) -> None:
        assert self._reopen is not None
        self._resumes -= 1
        with contextlib.suppress(Exception):
            self._body.close()
        self._body = self._reopen(self._read)["Body"]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()

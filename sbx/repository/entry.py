"""One entry of a manifest (a file, directory, symlink or hard link of a part) and its extents.

An :class:`Entry` is checked where it is made and again where a manifest is loaded: a file's
extents add up to the size stored, its numbers fit what the kernel and the extents hash take,
its extended attributes and holes keep to the limits below. Which content hash a file has
(:func:`hashed_by_extents`, :func:`extents_hash`) and the cache key (:class:`StatKey`) live
here too. ``format.py`` holds the models that gather entries (parts, snapshots) and re-exports
these names: the rest of sbx imports them from there.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

from blake3 import blake3
from pydantic import ConfigDict, Field, model_validator
from pydantic.dataclasses import dataclass

_INT64 = 1 << 63
MAX_XATTR_VALUE: Final = 64 * 1024  # XATTR_SIZE_MAX: the kernel takes no larger value
MAX_XATTRS: Final = 1024  # per entry; far more than any file system keeps on one inode
MAX_HOLES: Final = 4096  # per file; past this many, the rest of a file is restored dense
_ID_LIMIT = 1 << 32

EntryType = Literal["file", "dir", "symlink", "hardlink"]


class Extent(NamedTuple):
    """Where a run of a file's bytes lives: ``length`` bytes at ``offset`` of an object."""

    object: str
    offset: int
    length: int


def hashed_by_extents(content_size: int, small_file_limit: int) -> bool:
    """Whether a file's ``hash`` is :func:`extents_hash` (it was stored as chunks) rather than
    blake3 of its bytes (a small file: under ``small_file_limit``, kept in a pack)."""
    return content_size >= small_file_limit


def extents_hash(extents: Sequence[Extent]) -> str:
    """The content hash of a chunked file: blake3 over its extents in order, each as the 32
    bytes of the object id, then offset and length as 8-byte little-endian integers.

    Every object's plaintext is checked against its id (its blake3) whenever it is read, so this
    binds the file's bytes as firmly as hashing them again would, at no cost per byte.
    """
    hasher = blake3()
    for extent in extents:
        hasher.update(
            bytes.fromhex(extent.object)
            + extent.offset.to_bytes(8, "little")
            + extent.length.to_bytes(8, "little")
        )
    return hasher.hexdigest()


class StatKey(NamedTuple):
    """What the cache compares: a file with the same key as last time is not read again."""

    size: int
    mtime_ns: int
    ino: int
    ctime_ns: int


@dataclass(frozen=True, slots=True, config=ConfigDict(extra="forbid"))
class Entry:
    """One file system object of a part; ``path`` is POSIX, relative to the stack directory.

    A slotted dataclass, not a model: a manifest holds one per file, and a model's ``__dict__``
    and fields-set cost about 1 KiB each (100,000 files: +150 MiB); this is about 150 bytes.
    """

    path: str
    type: EntryType
    mode: int = Field(ge=0, le=0o7777, description="Permission bits incl. setuid/setgid/sticky.")
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    size: int = Field(default=0, ge=0)
    hash: str | None = Field(
        default=None,
        description="Files: blake3 of the content read (small files) or of the extents (chunked).",
    )
    sha256: str | None = None
    extents: list[Extent] = Field(default_factory=list)
    link_target: str | None = None
    hardlink_to: str | None = None
    read_size: int | None = Field(default=None, ge=0, description="Set when != size.")
    stat_key: StatKey | None = None
    xattrs: dict[str, str] | None = Field(
        default=None,
        description="Extended attributes incl. POSIX ACLs: name -> base64 of the raw value.",
    )
    holes: list[tuple[int, int]] | None = Field(
        default=None, description="Files: (offset, length) of each hole, from SEEK_HOLE."
    )

    @property
    def content_size(self) -> int:
        """Bytes stored for this file: what was read, which differs from size if it changed."""
        return self.size if self.read_size is None else self.read_size

    @model_validator(mode="after")
    def _consistent(self) -> Entry:
        if self.type == "file":
            if self.hash is None:
                raise ValueError("a file entry needs its content hash")
            if sum(extent.length for extent in self.extents) != self.content_size:
                raise ValueError("its extents do not add up to its size")
        elif self.extents:
            raise ValueError(f"a {self.type} entry has no extents")
        if self.type == "symlink" and not self.link_target:
            raise ValueError("a symlink entry needs link_target")
        if self.type == "hardlink" and not self.hardlink_to:
            raise ValueError("a hardlink entry needs hardlink_to")
        return self._in_range()

    def _in_range(self) -> Entry:
        # what the kernel and the extents hash can take: out of range would crash the restore
        # halfway (OverflowError, ValueError) instead of refusing the manifest up front
        if not -_INT64 <= self.mtime_ns < _INT64:
            raise ValueError("mtime_ns is out of range (a signed 64-bit count of nanoseconds)")
        if not (0 <= self.uid < _ID_LIMIT and 0 <= self.gid < _ID_LIMIT):
            raise ValueError("uid and gid must be in 0 .. 2**32-1")
        for extent in self.extents:
            if not (0 <= extent.offset < _INT64 and 0 <= extent.length < _INT64):
                raise ValueError("an extent's offset and length must be in 0 .. 2**63-1")
        for name, value in (("link_target", self.link_target), ("hardlink_to", self.hardlink_to)):
            if value is not None and "\0" in value:
                raise ValueError(f"{name} contains NUL")
        return self._metadata_in_range()

    def _metadata_in_range(self) -> Entry:
        if self.xattrs is not None:
            problem = xattrs_problem(self.xattrs)
            if problem is not None:
                raise ValueError(problem)
        if self.holes is not None:
            if self.type != "file" or len(self.holes) > MAX_HOLES:
                raise ValueError(f"holes belong to files, at most {MAX_HOLES} of them")
            end = 0
            for offset, length in self.holes:
                if offset < end or length <= 0 or offset + length > self.content_size:
                    raise ValueError("holes must be sorted, apart, and inside the file")
                end = offset + length
        return self


def xattrs_problem(xattrs: dict[str, str]) -> str | None:
    """Why a manifest's extended attributes cannot be restored as given (None: they can)."""
    if len(xattrs) > MAX_XATTRS:
        return f"more than {MAX_XATTRS} extended attributes"
    for name, value in xattrs.items():
        if "." not in name or "\0" in name or len(os.fsencode(name)) > 255:
            return f"extended attribute name {name!r} is not a valid name"
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return f"extended attribute {name!r} is not base64"
        if len(raw) > MAX_XATTR_VALUE:
            return f"extended attribute {name!r} is over {MAX_XATTR_VALUE} bytes"
    return None

"""A cheap look at a stored object without reading it whole: do its size and header agree?

A backup reuses an object that exists. One truncated or overwritten on the repository's disk
would then be referenced again by every later snapshot of the same file: the damage would
never heal (a deleted object heals, as it is stored again). Reading every reused object each
night would cost its size; this costs a stat, one small read and, for a zstd object, one
3-byte read per zstd block (at most 128 KiB each): the frame's blocks must end exactly where
the stored object ends. A damaged byte inside an object passes; ``sbx verify`` finds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import BinaryIO

import zstandard

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository.codec import (
    CODEC_RAW,
    CODEC_ZSTD,
    MAX_PLAINTEXT,
    OBJECT_MAGIC,
    decode_object,
)
from sbx.repository.format import Extent, object_key
from sbx.repository.storage import Storage
from sbx.repository.storage.local import LocalStorage

_HEADER = 2
_ZSTD_HEADER_MAX = 18  # a zstd frame header is 6 to 18 bytes


class ReuseCheck:
    """What a backup learnt about the existing objects it reuses: their plaintext sizes."""

    def __init__(self, storage: Storage, enabled: bool | None = None) -> None:
        self.storage = storage
        # on by default on a local disk, where a check costs a stat and a small read; S3
        # checksums what it stores, and a request per reused object would cost more than it finds
        self.enabled = isinstance(storage, LocalStorage) if enabled is None else enabled
        self._sizes: dict[str, int | None] = {}  # plaintext size; None: damaged
        self._pack_ends: dict[str, int] = {}  # pack -> where its last file known to us ends

    def learn_packs(self, extents: Iterable[Extent]) -> None:
        """Where the previous snapshot's small files end in their packs: a raw pack whose size
        is that end needs no reading (see :meth:`holds`)."""
        for extent in extents:
            end = extent.offset + extent.length
            if end > self._pack_ends.get(extent.object, 0):
                self._pack_ends[extent.object] = end

    def holds(self, object_id: str, need: int, *, exact: bool = False) -> bool:
        """Whether the stored object (known to exist) holds ``need`` plaintext bytes; with
        ``exact`` (a chunk) exactly that many, else (a pack) at least."""
        if not self.enabled:
            return True
        if object_id not in self._sizes:  # two threads may both check it: harmless
            size, raw = stored_plaintext_size(self.storage, object_id)
            if raw and not exact and size != self._pack_ends.get(object_id):
                # a raw pack's true size is known to no manifest, and a truncated one fails
                # every restore (the whole object is hash-checked). It usually ends where its
                # last file does; when that file is no longer known (deleted), read it whole.
                size = self._whole(object_id)
            self._sizes[object_id] = size
        size = self._sizes[object_id]
        return size is not None and (size == need if exact else size >= need)

    def looks_sound(self, object_id: str) -> bool:
        """Whether the stored object's size and header agree (True when checks are off)."""
        return not self.enabled or stored_plaintext_size(self.storage, object_id)[0] is not None

    def stored(self, object_id: str, size: int) -> None:
        self._sizes[object_id] = size

    def _whole(self, object_id: str) -> int | None:
        try:
            return len(decode_object(object_id, self.storage.get(object_key(object_id)), ""))
        except (CorruptObject, ObjectMissing):
            return None


def stored_plaintext_size(storage: Storage, object_id: str) -> tuple[int | None, bool]:
    """The plaintext size the stored object declares when its size and header agree (None
    when it is missing or damaged: truncated, extended, wrong header, a block past its end),
    and whether it is stored raw."""
    key = object_key(object_id)
    try:
        size = storage.size(key)
        with storage.open(key) as stream:
            head = stream.read(_HEADER + _ZSTD_HEADER_MAX)
            if len(head) < _HEADER or head[0] != OBJECT_MAGIC:
                return None, False
            if head[1] == CODEC_RAW:
                return size - _HEADER, True
            if head[1] != CODEC_ZSTD:
                return None, False
            return _zstd_size(stream, bytes(head[_HEADER:]), size - _HEADER), False
    except ObjectMissing:
        return None, False


def _zstd_size(stream: BinaryIO, head: bytes, stored: int) -> int | None:
    try:
        claimed = zstandard.frame_content_size(head)
        checksum = zstandard.get_frame_parameters(head).has_checksum
        position = zstandard.frame_header_size(head)
    except zstandard.ZstdError:
        return None
    if not 0 <= claimed <= MAX_PLAINTEXT:
        return None
    if not stream.seekable():  # a remote stream: walking it would download it whole
        return claimed
    while True:  # each block: 3 header bytes (last flag, type, size), then its content
        stream.seek(_HEADER + position)
        raw = stream.read(3)
        if len(raw) < 3:
            return None
        header = int.from_bytes(raw, "little")
        last, kind, length = header & 1, (header >> 1) & 3, header >> 3
        if kind == 3:  # reserved block type: not a zstd frame
            return None
        position += 3 + (1 if kind == 1 else length)  # an RLE block stores one byte
        if position > stored:
            return None
        if last:
            break
    return claimed if position + (4 if checksum else 0) == stored else None

"""Object encoding: ``magic/version byte (0xB1) + codec byte (0 raw, 1 zstd) + payload``, and
object ids (the blake3 hex digest of the plaintext). Pure functions, shared by the object store
(objects.py), the reuse check of existing objects (object_check.py) and the fast copier."""

from __future__ import annotations

import threading

import zstandard
from blake3 import blake3

from sbx.errors import CorruptObject

OBJECT_MAGIC = 0xB1
CODEC_RAW = 0
CODEC_ZSTD = 1
ZSTD_LEVEL = 3
#: file chunks (large, one file's bytes) use zstd level 1: on logs it stores within ~1 % of
#: level 3 at less CPU; packs of small files keep level 3
ZSTD_CHUNK_LEVEL = 1
#: compress only when it pays: the compressed payload must be below this share of the plaintext
COMPRESS_MAX_RATIO = 0.9
#: a file chunk is first judged by a sample: ``SAMPLE_SLICES`` slices of ``SAMPLE_SLICE`` bytes
#: spread over it are compressed together, and unless they shrink below ``COMPRESS_MAX_RATIO``
#: the chunk is stored raw without compressing it whole (model shards, vector segments: random)
SAMPLE_SLICES = 4
SAMPLE_SLICE = 16 << 10
#: objects smaller than this are always compressed whole (a sample would be most of them)
SAMPLE_MIN = 4 * SAMPLE_SLICES * SAMPLE_SLICE
_HEADER = 2
#: no object's plaintext is larger (the format caps chunk and pack sizes below it); a damaged
#: zstd header claiming more is refused before anything is allocated
MAX_PLAINTEXT = 512 << 20


def hash_bytes(data: bytes | memoryview) -> str:
    """The object id of ``data``: its blake3 hex digest."""
    return blake3(data).hexdigest()


_local = threading.local()


def _compressor(level: int = ZSTD_LEVEL) -> zstandard.ZstdCompressor:
    # zstd contexts are not thread-safe; one per thread and level, reused (one costs ~1 ms)
    name = f"cctx{level}"
    ctx: zstandard.ZstdCompressor | None = getattr(_local, name, None)
    if ctx is None:
        ctx = zstandard.ZstdCompressor(level=level, write_content_size=True)
        setattr(_local, name, ctx)
    return ctx


def _decompressor() -> zstandard.ZstdDecompressor:
    ctx: zstandard.ZstdDecompressor | None = getattr(_local, "dctx", None)
    if ctx is None:
        ctx = _local.dctx = zstandard.ZstdDecompressor()
    return ctx


def encode_object(plaintext: bytes | memoryview, *, sample: bool = False) -> bytes:
    """The stored form of ``plaintext``: zstd when that saves 10 % or more, else raw.

    Without ``sample`` (packs): zstd level 3 is tried on the whole plaintext. With ``sample``
    (file chunks): a large plaintext whose sample does not compress is stored raw without
    compressing it whole; one that does is compressed with zstd level 1.
    """
    return encode_with_sampling(plaintext, sample)[0]


def encode_with_sampling(plaintext: bytes | memoryview, sample: bool) -> tuple[bytes, bool]:
    """(stored form, whether the sample alone decided it is raw)."""
    compressor = _compressor(ZSTD_CHUNK_LEVEL if sample else ZSTD_LEVEL)
    if sample and len(plaintext) >= SAMPLE_MIN and not _sample_compresses(plaintext, compressor):
        return bytes((OBJECT_MAGIC, CODEC_RAW)) + plaintext, True
    compressed = compressor.compress(plaintext)
    if len(compressed) < COMPRESS_MAX_RATIO * len(plaintext):
        return bytes((OBJECT_MAGIC, CODEC_ZSTD)) + compressed, False
    return bytes((OBJECT_MAGIC, CODEC_RAW)) + plaintext, False


def _sample_compresses(plaintext: bytes | memoryview, compressor: zstandard.ZstdCompressor) -> bool:
    """Whether slices spread over ``plaintext`` shrink below ``COMPRESS_MAX_RATIO`` with zstd."""
    view = memoryview(plaintext)
    step = (len(view) - SAMPLE_SLICE) // (SAMPLE_SLICES - 1)
    sample = b"".join(view[i * step : i * step + SAMPLE_SLICE] for i in range(SAMPLE_SLICES))
    return len(compressor.compress(sample)) < COMPRESS_MAX_RATIO * len(sample)


def decode_object(object_id: str, stored: bytes, location: str) -> bytes:
    """The plaintext of a stored object, checked against its id; :class:`CorruptObject` if not."""
    if len(stored) < _HEADER or stored[0] != OBJECT_MAGIC:
        raise CorruptObject(location, object_id, "its header is not an sbx v1 object header")
    codec = stored[1]
    payload = memoryview(stored)[_HEADER:]
    if codec == CODEC_RAW:
        plaintext = bytes(payload)
    elif codec == CODEC_ZSTD:
        try:
            claimed = zstandard.frame_content_size(payload)
            if not 0 <= claimed <= MAX_PLAINTEXT:
                raise CorruptObject(location, object_id, f"its zstd header claims {claimed} bytes")
            plaintext = _decompressor().decompress(payload)
        except zstandard.ZstdError as exc:
            raise CorruptObject(
                location, object_id, f"its zstd data does not decode ({exc})"
            ) from exc
    else:
        raise CorruptObject(location, object_id, f"unknown codec byte {codec}")
    seen = hash_bytes(plaintext)
    if seen != object_id:
        raise CorruptObject(location, object_id, f"its content hashes to {seen}")
    return plaintext

"""Object encoding, ids and corruption detection; the plaintext cache."""

from __future__ import annotations

import os

import pytest
import zstandard
from blake3 import blake3

from sbx.errors import CorruptObject, ObjectMissing
from sbx.repository import codec as objects_module  # the encoding (and its compressor)
from sbx.repository.format import object_key
from sbx.repository.objects import (
    CODEC_RAW,
    CODEC_ZSTD,
    OBJECT_MAGIC,
    SAMPLE_MIN,
    SAMPLE_SLICE,
    SAMPLE_SLICES,
    ObjectStore,
    PlaintextCache,
    decode_object,
    encode_object,
    hash_bytes,
)
from sbx.repository.storage.memory import MemoryStorage

TEXT = b"compressible line\n" * 1000
NOISE = os.urandom(50_000)


def test_ids_are_blake3_of_the_plaintext() -> None:
    assert hash_bytes(TEXT) == blake3(TEXT).hexdigest()
    assert len(hash_bytes(b"")) == 64


@pytest.mark.parametrize(("data", "codec"), [(TEXT, CODEC_ZSTD), (NOISE, CODEC_RAW), (b"", 0)])
def test_encode_picks_zstd_only_when_it_pays(data: bytes, codec: int) -> None:
    encoded = encode_object(data)
    assert encoded[0] == OBJECT_MAGIC and encoded[1] == codec
    assert decode_object(hash_bytes(data), encoded, "here") == data
    if codec == CODEC_ZSTD:
        assert len(encoded) < 0.9 * len(data)


@pytest.mark.parametrize("data", [TEXT, NOISE])
def test_any_flipped_byte_is_detected(data: bytes) -> None:
    encoded = encode_object(data)
    object_id = hash_bytes(data)
    for position in (0, 1, 2, len(encoded) // 2, len(encoded) - 1):
        damaged = bytearray(encoded)
        damaged[position] ^= 0x40
        with pytest.raises(CorruptObject) as caught:
            decode_object(object_id, bytes(damaged), "/srv/repo")
        assert object_id in str(caught.value) and "/srv/repo" in str(caught.value)
        assert not caught.value.retryable


def test_truncated_and_lying_objects_are_corrupt() -> None:
    object_id = hash_bytes(TEXT)
    encoded = encode_object(TEXT)
    for bad in (b"", encoded[:1], encoded[: len(encoded) // 2]):
        with pytest.raises(CorruptObject):
            decode_object(object_id, bad, "here")
    bomb = bytes((OBJECT_MAGIC, CODEC_ZSTD)) + zstandard.ZstdCompressor().compress(b"\0" * 10)
    bomb = bomb[:2] + bomb[2:].replace(b"\x0a", b"\xff", 1)  # claim another size
    with pytest.raises(CorruptObject):
        decode_object(hash_bytes(b"\0" * 10), bomb, "here")


def test_object_store_writes_each_object_once() -> None:
    storage = MemoryStorage()
    store = ObjectStore(storage)
    first = store.put(TEXT)
    second = store.put(TEXT)
    assert first.new and not second.new and second.stored_size == 0
    assert storage.puts == 1
    assert store.get(first.object_id) == TEXT
    assert list(store.ids()) == [first.object_id]
    storage.put("objects/zz/not-an-id", b"junk")
    assert list(store.ids()) == [first.object_id]
    with pytest.raises(ObjectMissing):
        store.get("0" * 64)


def test_indexed_store_asks_the_storage_nothing_per_object() -> None:
    storage = MemoryStorage()
    store = ObjectStore(storage)
    stored = store.put(NOISE)
    indexed = ObjectStore(storage)
    indexed.load_index()
    storage.objects.clear()  # the index, not the storage, answers now
    assert indexed.has(stored.object_id)
    assert not indexed.put(NOISE).new


def test_plaintext_cache_loads_shared_objects_once() -> None:
    storage = MemoryStorage()
    store = ObjectStore(storage)
    object_id = store.put(TEXT).object_id
    gets = 0
    real_get = storage.get

    def counting_get(key: str) -> bytes:
        nonlocal gets
        gets += 1
        return real_get(key)

    storage.get = counting_get  # type: ignore[method-assign]
    cache = PlaintextCache(store, {object_id: 3})
    assert [cache.get(object_id) for _ in range(3)] == [TEXT] * 3
    assert gets == 1 and cache.loaded == 1
    storage.objects[object_key(object_id)] = b"\xb1\x00broken"
    fresh = PlaintextCache(store, {object_id: 2})
    for _ in range(2):
        with pytest.raises(CorruptObject):
            fresh.get(object_id)
    assert gets == 2  # a failure is remembered, not re-read


class _SpyCompressor:
    """Wraps a zstd context and records the size of every input it compresses."""

    def __init__(self, real: zstandard.ZstdCompressor, sizes: list[int]) -> None:
        self.real, self.sizes = real, sizes

    def compress(self, data: bytes) -> bytes:
        self.sizes.append(len(data))
        return self.real.compress(data)


def test_an_incompressible_chunk_is_stored_raw_on_its_sample_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sizes: list[int] = []
    real = objects_module._compressor
    monkeypatch.setattr(
        objects_module, "_compressor", lambda level=3: _SpyCompressor(real(level), sizes)
    )
    store = ObjectStore(MemoryStorage())
    noise = os.urandom(1 << 20)
    stored = store.put(noise, sample=True)
    assert store.sampled_raw == 1
    assert sizes == [SAMPLE_SLICES * SAMPLE_SLICE]  # only the sample went through zstd
    encoded = store.storage.get(object_key(stored.object_id))
    assert encoded[1] == CODEC_RAW and store.get(stored.object_id) == noise
    # a compressible chunk passes the sample and is compressed whole
    sizes.clear()
    text = (TEXT * 60)[: 1 << 20]
    stored = store.put(text, sample=True)
    assert sizes == [SAMPLE_SLICES * SAMPLE_SLICE, len(text)] and store.sampled_raw == 1
    assert store.storage.get(object_key(stored.object_id))[1] == CODEC_ZSTD
    # packs (no sample) and objects too small to sample are tried whole, as before
    sizes.clear()
    store.put(os.urandom(1 << 20))
    store.put(os.urandom(SAMPLE_MIN - 1), sample=True)
    assert sizes == [1 << 20, SAMPLE_MIN - 1] and store.sampled_raw == 1


def test_a_chunk_whose_sample_compresses_but_whole_does_not_is_stored_raw() -> None:
    # compressible slices where the sample looks, noise everywhere else
    size = 1 << 20
    data = bytearray(os.urandom(size))
    step = (size - SAMPLE_SLICE) // (SAMPLE_SLICES - 1)
    for index in range(SAMPLE_SLICES):
        data[index * step : index * step + SAMPLE_SLICE] = bytes(SAMPLE_SLICE)
    encoded = encode_object(bytes(data), sample=True)
    assert encoded[1] == CODEC_RAW
    assert decode_object(hash_bytes(bytes(data)), encoded, "here") == data


def test_prefetching_cache_reads_ahead_on_workers_and_keeps_every_check() -> None:
    storage = MemoryStorage()
    store = ObjectStore(storage)
    ids = [store.put(os.urandom(1000 + index)).object_id for index in range(6)]
    broken = ids[3]
    storage.objects[object_key(broken)] = b"\xb1\x00broken"
    order = [ids[0], ids[1], ids[0], ids[2], broken, ids[4], ids[5]]
    with PlaintextCache(store, {ids[0]: 2}, order=order, workers=2, window=3) as cache:
        first = cache.get(ids[0])
        assert len(cache._ahead) == 3  # read ahead while the caller works
        assert cache.get(ids[1]) == store.get(ids[1])
        assert cache.get(ids[0]) is first  # a shared object is read once
        cache.get(ids[2])
        with pytest.raises(CorruptObject):
            cache.get(broken)
        with pytest.raises(CorruptObject):
            cache.check(broken)  # remembered
        cache.check(ids[5])  # asked out of order: still loaded and checked once
        assert cache.get(ids[4]) == store.get(ids[4])
    assert cache.loaded == 5 and set(cache.failed) == {broken}
    assert cache.seen == set(ids)

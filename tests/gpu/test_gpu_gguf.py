"""GGUF models: sized by their files, the KV cache from the header's metadata (a tiny synthetic
header written here, then a sparse file so that "4 GiB of tensors" costs nothing on disk)."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.gpu.capacity import GiB, preflight
from tasks.gpu.gguf import (
    GgufError,
    gguf_header,
    read_gguf_metadata,
    read_gguf_stream,
    write_gguf_header,
)

LLAMA_GGUF: dict[str, Any] = {
    "general.architecture": "llama",
    "general.name": "tiny llama",
    # the tokenizer's arrays come before the shape in some files: they are walked, not kept
    "tokenizer.ggml.tokens": [f"tok{i}" for i in range(3000)],
    "tokenizer.ggml.token_type": [1] * 3000,
    "llama.block_count": 32,
    "llama.context_length": 8192,
    "llama.embedding_length": 4096,
    "llama.attention.head_count": 32,
    "llama.attention.head_count_kv": 8,
    "llama.rope.freq_base": 500000.0,
    "general.quantized": True,
}


def gguf_model(path: Path, metadata: dict[str, Any] = LLAMA_GGUF, size: int = 4 * GiB) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_gguf_header(path, metadata)
    with path.open("r+b") as f:
        f.truncate(size)  # the tensors: a hole
    return path


def test_a_gguf_file_is_sized_by_its_bytes_and_its_kv_cache_by_its_metadata(
    tmp_path: Path,
) -> None:
    path = gguf_model(tmp_path / "llama-Q4_K_M.gguf")
    verdict = preflight(path, 8192, available_bytes=20 * GiB)
    assert verdict.weights is not None and verdict.weights.source == "gguf file sizes"
    assert verdict.weights.bytes == 4 * GiB and verdict.weights.files == 1
    kv = verdict.kv_cache
    assert kv is not None and kv.source == "GGUF metadata of llama-Q4_K_M.gguf"
    # 32 layers × 8 KV heads × (128 + 128) dims × 2 bytes × 8192 tokens = 1 GiB
    assert kv.bytes == GiB and kv.dtype == "float16"
    assert "32 layers × 8 KV heads × (128 key + 128 value dims) × 2 bytes" in verdict.message
    assert verdict.verdict == "fits"
    assert "float16 assumed" in verdict.message  # said, in the notes
    folder = preflight(tmp_path, 8192, available_bytes=20 * GiB)  # the folder holding it
    assert folder.needed_bytes == verdict.needed_bytes


def test_a_context_beyond_the_models_own_is_noted(tmp_path: Path) -> None:
    verdict = preflight(gguf_model(tmp_path / "m.gguf"), 16384, available_bytes=80 * GiB)
    assert "above the model's context length 8192" in verdict.message


def test_metadata_without_the_shape_is_unknown_naming_the_keys(tmp_path: Path) -> None:
    meta = {"general.architecture": "llama", "llama.block_count": 32}
    verdict = preflight(gguf_model(tmp_path / "m.gguf", meta), 4096, available_bytes=80 * GiB)
    assert verdict.verdict == "unknown"
    assert "lacks llama.attention.head_count, llama.embedding_length" in verdict.message


def test_per_layer_kv_heads_explicit_dims_and_a_window_are_read(tmp_path: Path) -> None:
    meta = {
        "general.architecture": "gemma3",
        "gemma3.block_count": 4,
        "gemma3.embedding_length": 2560,
        "gemma3.attention.head_count": 8,
        "gemma3.attention.head_count_kv": [4, 4, 2, 4],
        "gemma3.attention.key_length": 256,
        "gemma3.attention.value_length": 256,
        "gemma3.attention.sliding_window": 1024,
    }
    verdict = preflight(gguf_model(tmp_path / "g.gguf", meta, GiB), 4096, available_bytes=None)
    assert verdict.kv_cache is not None
    assert verdict.kv_cache.bytes_per_token == 4 * 4 * 512 * 2  # the widest layer, every layer
    assert any("sliding window 1024 not applied" in p for p in verdict.problems)


def test_not_gguf_and_other_versions_are_refused_with_the_reason(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"PK\x03\x04" + bytes(60))
    with pytest.raises(GgufError, match="not a GGUF file"):
        read_gguf_metadata(junk)
    big_endian = tmp_path / "be.gguf"
    big_endian.write_bytes(b"GGUF" + struct.pack(">IQQ", 3, 0, 0))
    with pytest.raises(GgufError, match="big-endian"):
        read_gguf_metadata(big_endian)
    v1 = tmp_path / "v1.gguf"
    write_gguf_header(v1, {}, version=1)
    with pytest.raises(GgufError, match="version 1 is not read"):
        read_gguf_metadata(v1)


VALUES = st.one_of(
    st.integers(0, (1 << 32) - 1),
    st.integers(-(1 << 63), -1),
    st.booleans(),
    st.text(max_size=40),
    st.lists(st.integers(-(1 << 31), (1 << 31) - 1), max_size=50),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=30), VALUES, max_size=12))
def test_metadata_round_trips_and_every_truncation_is_a_gguf_error(
    metadata: dict[str, Any],
) -> None:
    whole = gguf_header(metadata)
    assert read_gguf_stream(io.BytesIO(whole)) == metadata
    for cut in range(len(whole) - 1, -1, -max(1, len(whole) // 50)):
        with pytest.raises(GgufError):
            read_gguf_stream(io.BytesIO(whole[:cut]))

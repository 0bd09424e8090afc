"""Capacity preflight on tiny synthetic model directories (sparse files: headers are real, the
tensor bytes are holes, so a "14 GiB" model costs nothing on disk)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from gpu_helpers import LLAMA_8B, MiB, write_safetensors

from tasks.gpu.capacity import GiB, preflight, read_safetensors_header


def model(tmp_path: Path, config: dict[str, Any] | None = LLAMA_8B, **files: Any) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    if config is not None:
        (root / "config.json").write_text(json.dumps(config))
    for name, tensors in files.items():
        write_safetensors(root / f"{name}.safetensors", tensors)
    return root


def llama(tmp_path: Path) -> Path:
    # 14 GiB of bf16 weights and 1 MiB of f32 norms
    return model(tmp_path, model=({"w": ("BF16", 7 * GiB), "norm": ("F32", MiB // 4)}))


def test_weights_kv_cache_and_overhead_add_up_and_fit(tmp_path: Path) -> None:
    verdict = preflight(llama(tmp_path), 8192, available_bytes=20 * GiB, available_from="GPU 0")
    assert verdict.weights is not None and verdict.kv_cache is not None
    assert verdict.weights.source == "safetensors headers"
    assert verdict.weights.by_dtype == {"BF16": 14 * GiB, "F32": MiB}
    # 2 × 32 layers × 8 KV heads × 128 head dim × 2 bytes × 8192 tokens = 1 GiB
    assert verdict.kv_cache.bytes_per_token == 131072
    assert verdict.kv_cache.bytes == GiB
    assert verdict.overhead_bytes == GiB + int(0.1 * (14 * GiB + MiB))
    assert verdict.needed_bytes == 14 * GiB + MiB + GiB + verdict.overhead_bytes
    assert verdict.verdict == "fits" and verdict.fits
    for number in ("14.00 GiB", "1.00 GiB", "20.00 GiB", "8192 tokens", "8 KV heads", "128 head"):
        assert number in verdict.message, (number, verdict.message)
    assert "GPU 0: 20.00 GiB" in verdict.message and "to spare" in verdict.message


def test_too_little_free_memory_does_not_fit_and_says_by_how_much(tmp_path: Path) -> None:
    verdict = preflight(llama(tmp_path), 8192, available_bytes=16 * GiB)
    assert verdict.verdict == "does not fit"
    assert "does NOT fit (short by 1.40 GiB)" in verdict.message
    assert "lower --max-model-len" in verdict.message


def test_context_length_sequences_and_kv_dtype_scale_the_kv_cache(tmp_path: Path) -> None:
    root = llama(tmp_path)
    long = preflight(root, 32768, max_num_seqs=4, available_bytes=None)
    assert long.kv_cache is not None and long.kv_cache.bytes == 16 * GiB
    fp8 = preflight(root, 32768, max_num_seqs=4, kv_cache_dtype="fp8", available_bytes=None)
    assert fp8.kv_cache is not None and fp8.kv_cache.bytes == 8 * GiB


def test_without_a_gpu_reading_the_verdict_is_unknown_with_the_numbers(tmp_path: Path) -> None:
    verdict = preflight(llama(tmp_path), 8192, available_bytes=None)
    assert verdict.verdict == "unknown" and verdict.needed_bytes is not None
    assert "GPU memory unknown (no GPU reading" in verdict.message
    assert "needed" in verdict.message


def test_only_the_shards_the_index_names_are_counted(tmp_path: Path) -> None:
    root = model(
        tmp_path,
        **{
            "model-00001-of-00002": {"a": ("BF16", GiB)},
            "model-00002-of-00002": {"b": ("BF16", GiB)},
            "consolidated": {"a": ("BF16", GiB), "b": ("BF16", GiB)},  # the same, once more
        },
    )
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors"}}
    index["weight_map"]["b"] = "model-00002-of-00002.safetensors"
    (root / "model.safetensors.index.json").write_text(json.dumps(index))
    verdict = preflight(root, 1024, available_bytes=80 * GiB)
    assert verdict.weights is not None
    assert verdict.weights.bytes == 4 * GiB and verdict.weights.files == 2


def test_gguf_sizes_count_but_without_config_the_verdict_is_unknown(tmp_path: Path) -> None:
    root = model(tmp_path, config=None)
    with (root / "model-Q4_K_M.gguf").open("wb") as f:
        f.write(b"GGUF")
        f.truncate(5 * GiB)
    verdict = preflight(root, 4096, available_bytes=80 * GiB)
    assert verdict.weights is not None and verdict.weights.source == "gguf file sizes"
    assert verdict.weights.bytes == 5 * GiB
    # b"GGUF" and then zeros: version 0, a header this reader refuses, saying so
    assert verdict.verdict == "unknown" and "GGUF header unreadable" in verdict.message
    assert "GGUF version 0 is not read" in verdict.message


def test_a_damaged_header_counts_the_file_size_and_says_so(tmp_path: Path) -> None:
    root = model(tmp_path, model={"w": ("BF16", MiB)})
    (root / "extra.safetensors").write_bytes(struct.pack("<Q", 10**12) + b"{}")
    verdict = preflight(root, 1024, available_bytes=80 * GiB)
    assert verdict.weights is not None
    assert verdict.weights.by_dtype["file size"] == 10
    assert any("extra.safetensors: unreadable safetensors header" in p for p in verdict.problems)
    assert verdict.verdict == "fits"
    with pytest.raises(ValueError, match="not plausible"):
        read_safetensors_header(root / "extra.safetensors")


def test_multimodal_explicit_head_dim_and_mla_shapes(tmp_path: Path) -> None:
    nested = {"torch_dtype": "bfloat16", "text_config": {**LLAMA_8B, "head_dim": 64}}
    verdict = preflight(model(tmp_path, nested, m={"w": ("BF16", MiB)}), 1, available_bytes=None)
    assert verdict.kv_cache is not None and verdict.kv_cache.bytes_per_token == 2 * 32 * 8 * 64 * 2
    mla = {"num_hidden_layers": 61, "kv_lora_rank": 512, "qk_rope_head_dim": 64, "dtype": "bf16"}
    other = tmp_path / "mla"
    other.mkdir()
    (other / "config.json").write_text(json.dumps(mla))
    write_safetensors(other / "m.safetensors", {"w": ("U8", MiB)})
    verdict = preflight(other, 1, available_bytes=None)
    assert verdict.kv_cache is not None
    assert verdict.kv_cache.bytes_per_token == 61 * 576 * 2  # 'bf16' unknown: float16 assumed
    assert any("'bf16' unknown" in p for p in verdict.problems)


def test_a_missing_directory_is_unknown_not_an_exception(tmp_path: Path) -> None:
    verdict = preflight(tmp_path / "nope", 1024, available_bytes=GiB)
    assert verdict.verdict == "unknown" and "is not a directory" in verdict.message

"""KV cache as vLLM V1 counts it: sliding-window layers keep their window (plus one prefill chunk
and a block), full-attention layers every token. The Gemma 3 fixture is the shape of
google/gemma-3-27b-it's config.json (its text_config omits sliding_window_pattern: 6 applies)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from gpu_helpers import write_safetensors
from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.gpu.capacity import GiB, preflight
from tasks.gpu.kv_cache import AttentionShape, kv_cache_estimate, shape_from_config, sliding_layers

GEMMA3 = json.loads((Path(__file__).parent / "fixtures/gemma3-27b-it.config.json").read_text())


def model(tmp_path: Path, config: dict[str, Any]) -> Path:
    root = tmp_path / "model"
    root.mkdir()
    (root / "config.json").write_text(json.dumps(config))
    write_safetensors(root / "model.safetensors", {"w": ("BF16", 27 * (1 << 29))})
    return root


def test_gemma3_counts_52_sliding_layers_for_their_window_and_10_in_full(tmp_path: Path) -> None:
    verdict = preflight(model(tmp_path, GEMMA3), 32768, available_bytes=80 * GiB)
    kv = verdict.kv_cache
    assert kv is not None and kv.source == "config.json"
    assert (kv.layers, kv.sliding_layers, kv.sliding_window) == (62, 52, 1024)
    # a sliding layer: min(1024 - 1 + 8192, 32768) = 9215 tokens → 576 blocks + 1 → 9232 tokens
    assert kv.sliding_tokens == 9232
    # 2 × 16 KV heads × 128 head dim × 2 bytes = 8192 bytes per token and layer
    assert kv.bytes == 8192 * (10 * 32768 + 52 * 9232)
    full = 8192 * 62 * 32768
    assert kv.bytes_per_token * kv.tokens == full and kv.bytes < 0.4 * full
    assert "10 full layers × 32768 tokens + 52 sliding layers × 9232 tokens" in verdict.message
    assert (
        "[window 1024 - 1 + 8192 prefill chunk, at most 32768, + 1 block of 16]" in verdict.message
    )
    assert verdict.verdict == "fits"


def test_the_old_estimate_would_have_refused_what_vllm_runs(tmp_path: Path) -> None:
    # 27 GiB of bf16 weights; at 131072 tokens every layer in full would need 62 GiB of KV
    # cache (92.7 GiB in all, over 72); vLLM keeps 13.7 GiB of it (44.4 GiB in all)
    verdict = preflight(model(tmp_path, GEMMA3), 131072, available_bytes=72 * GiB)
    assert verdict.kv_cache is not None
    assert verdict.kv_cache.bytes_per_token * 131072 == 62 * GiB
    assert verdict.kv_cache.bytes == 8192 * (10 * 131072 + 52 * 9232)
    assert verdict.verdict == "fits", verdict.message
    assert "44.36 GiB needed" in verdict.message


def test_which_layers_slide_follows_the_config() -> None:
    mistral = {"model_type": "mistral", "sliding_window": 4096}
    assert sliding_layers(mistral, 32) == (32, 4096)
    qwen2 = {"model_type": "qwen2", "sliding_window": 131072, "use_sliding_window": False}
    assert sliding_layers(qwen2, 28) == (0, None)
    qwen2_on = {**qwen2, "use_sliding_window": True, "max_window_layers": 21}
    assert sliding_layers(qwen2_on, 28) == (7, 131072)
    gemma2 = {"model_type": "gemma2", "sliding_window": 4096}
    assert sliding_layers(gemma2, 42) == (21, 4096)  # layers 0, 2, …, 40
    types = ["sliding_attention", "full_attention"] * 12  # gpt-oss
    assert sliding_layers({"sliding_window": 128, "layer_types": types}, 24) == (12, 128)
    assert sliding_layers({"model_type": "llama", "sliding_window": None}, 32) == (0, None)


def test_a_window_on_an_unknown_model_type_counts_in_full_and_says_so() -> None:
    notes: list[str] = []
    assert sliding_layers({"model_type": "phi3", "sliding_window": 2047}, 32, notes) == (0, None)
    assert "not applied" in notes[0] and "upper bound" in notes[0]


SHAPES = st.builds(
    lambda layers, kv_heads, head_dim, sliding, window: AttentionShape(
        layers=layers,
        width=2 * kv_heads * head_dim,
        width_text="w",
        sliding_layers=min(sliding, layers),
        sliding_window=window,
    ),
    st.integers(1, 128),
    st.integers(1, 64),
    st.sampled_from([64, 80, 128, 256]),
    st.integers(0, 128),
    st.integers(1, 1 << 20),
)


@settings(max_examples=300, deadline=None)
@given(
    shape=SHAPES,
    length=st.integers(1, 1 << 20),
    seqs=st.integers(1, 256),
    chunk=st.integers(1, 1 << 16),
    dtype=st.sampled_from(["bfloat16", "fp8", "float32"]),
)
def test_sliding_windows_never_cost_more_than_full_attention(
    shape: AttentionShape, length: int, seqs: int, chunk: int, dtype: str
) -> None:
    kwargs: dict[str, Any] = dict(max_model_len=length, max_num_seqs=seqs, dtype=dtype)
    sliding = kv_cache_estimate(shape, prefill_chunk=chunk, **kwargs)
    full = kv_cache_estimate(shape.model_copy(update={"sliding_layers": 0}), **kwargs)
    assert 0 < sliding.bytes <= full.bytes
    assert sliding.bytes <= sliding.bytes_per_token * -(-length // 16) * 16 * seqs
    wider = kv_cache_estimate(shape, prefill_chunk=chunk, **{**kwargs, "max_model_len": length + 1})
    assert wider.bytes >= sliding.bytes  # a longer context never needs less


def test_shape_from_config_reads_nested_text_configs() -> None:
    shape = shape_from_config(GEMMA3)
    assert (shape.layers, shape.width, shape.context_length) == (62, 2 * 16 * 128, 131072)

"""How much KV cache a model needs for one (or more) max-model-len sequences, as vLLM counts it.

vLLM V1 sizes each attention layer by its KV cache spec (``vllm/v1/kv_cache_interface.py``):
``FullAttentionSpec.max_memory_usage_bytes`` keeps every token, ``cdiv(max_model_len,
block_size) × page_size``; ``SlidingWindowSpec.max_memory_usage_bytes`` keeps only the window
plus the tokens of one prefill chunk, ``(cdiv(min(sliding_window - 1 + max_num_batched_tokens,
max_model_len), block_size) + 1) × page_size`` — "+1 because the sliding window may not start
from the beginning of the block". A page is ``2 × block_size × KV heads × head dim × dtype
bytes``. vLLM's own start-up check (``check_enough_kv_cache_memory``) sums these over the layers;
so does this module.

Which layers slide, from config.json, in the order transformers and vLLM decide it:
``layer_types`` (``"sliding_attention"`` per layer: Gemma 3, gpt-oss, newer configs); else none
when ``use_sliding_window`` is false (Qwen2 ships a ``sliding_window`` it does not use); else,
with a ``sliding_window``: every layer but each ``sliding_window_pattern``-th (Gemma 3: 6, Cohere2:
4, Gemma 2: 2, transformers' defaults where config.json omits it), layers from
``max_window_layers`` on when ``use_sliding_window`` is true (Qwen2), or all of them (Mistral 7B
v0.1). A window on any other model type counts in full, and the estimate says it is an upper
bound: never less than vLLM keeps.
A GGUF file's metadata names its shape but not which layers slide: all count in full there, an
upper bound that the estimate says it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from tasks.gpu.gguf import GgufError, read_gguf_metadata

BLOCK_TOKENS = 16  # vLLM's default --block-size on CUDA
#: vLLM's default --max-num-batched-tokens for the OpenAI server on GPUs of 70 GiB and more
#: (vllm/engine/arg_utils.py, get_batch_defaults; 2048 below that): the larger, so never short
DEFAULT_PREFILL_CHUNK = 8192
NESTED_TEXT_CONFIGS = ("text_config", "llm_config", "language_config")

#: bytes per element of config.json / --kv-cache-dtype names
KV_DTYPE_BYTES: dict[str, float] = {
    "float64": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1,
}  # fmt: skip


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KvCacheEstimate(_Frozen):
    bytes: int
    bytes_per_token: int  # per token of every layer, as if none slid: bytes ≤ this × tokens
    tokens: int  # max_model_len × max_num_seqs
    dtype: str
    formula: str  # the multiplication, with the model's numbers
    layers: int = 0
    sliding_layers: int = 0
    sliding_window: int | None = None
    sliding_tokens: int | None = None  # tokens a sliding layer keeps per sequence
    source: str = "config.json"  # or "GGUF metadata of <file>"


class AttentionShape(_Frozen):
    """What the KV cache depends on: per-layer width and which layers slide."""

    layers: int
    width: int  # elements per token per layer: 2 × KV heads × head dim, or the MLA latent
    width_text: str  # how the width came about, for the formula
    sliding_layers: int = 0
    sliding_window: int | None = None
    context_length: int | None = None  # the model's own limit on max-model-len


def kv_cache_estimate(
    shape: AttentionShape,
    *,
    max_model_len: int,
    max_num_seqs: int,
    dtype: str,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    source: str = "config.json",
) -> KvCacheEstimate:
    """The KV cache of ``max_num_seqs`` full-length sequences (pure; see the module docstring)."""
    size = KV_DTYPE_BYTES[dtype]
    per_layer_token = shape.width * size
    full_layers = shape.layers - shape.sliding_layers
    full_tokens = _blocks(max_model_len) * BLOCK_TOKENS
    what = f"{shape.width_text} × {size:g} bytes ({dtype})"
    if shape.sliding_layers and shape.sliding_window:
        kept = min(shape.sliding_window - 1 + prefill_chunk, max_model_len)
        # vLLM's +1 block; capped at what full attention keeps: a window as long as the context
        # would cost 16 tokens more than no window in vLLM's count, never worth a verdict
        sliding_tokens = min((_blocks(kept) + 1) * BLOCK_TOKENS, full_tokens)
        per_seq = full_layers * full_tokens + shape.sliding_layers * sliding_tokens
        formula = (
            f"{what} × ({full_layers} full layers × {full_tokens} tokens + "
            f"{shape.sliding_layers} sliding layers × {sliding_tokens} tokens [window "
            f"{shape.sliding_window} - 1 + {prefill_chunk} prefill chunk, at most "
            f"{max_model_len}, + 1 block of {BLOCK_TOKENS}]) × {max_num_seqs} sequence(s)"
        )
    else:
        sliding_tokens = None
        per_seq = shape.layers * full_tokens
        formula = f"{shape.layers} layers × {what} × {full_tokens * max_num_seqs} tokens"
    return KvCacheEstimate(
        bytes=int(per_layer_token * per_seq * max_num_seqs),
        bytes_per_token=int(shape.layers * per_layer_token),
        tokens=max_model_len * max_num_seqs,
        dtype=dtype,
        formula=formula,
        layers=shape.layers,
        sliding_layers=shape.sliding_layers if sliding_tokens else 0,
        sliding_window=shape.sliding_window if sliding_tokens else None,
        sliding_tokens=sliding_tokens,
        source=source,
    )


def shape_from_config(config: dict[str, Any], notes: list[str] | None = None) -> AttentionShape:
    """The attention shape of a transformers config.json (KeyError/ValueError when it lacks one)."""
    for nested in NESTED_TEXT_CONFIGS:  # multimodal models keep the language model's shape here
        if "num_hidden_layers" not in config and isinstance(config.get(nested), dict):
            config = {**config, **config[nested]}
    layers = int(config["num_hidden_layers"])
    if config.get("kv_lora_rank"):  # multi-head latent attention: one compressed "head"
        width = int(config["kv_lora_rank"]) + int(config.get("qk_rope_head_dim") or 0)
        return AttentionShape(layers=layers, width=width, width_text=f"({width} latent width)")
    heads = int(config["num_attention_heads"])
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
    sliding, window = sliding_layers(config, layers, notes)
    context = config.get("max_position_embeddings")
    return AttentionShape(
        layers=layers,
        width=2 * kv_heads * head_dim,
        width_text=f"2 × {kv_heads} KV heads × {head_dim} head dim",
        sliding_layers=sliding,
        sliding_window=window if sliding else None,
        context_length=context if isinstance(context, int) else None,
    )


#: transformers' default sliding_window_pattern of model types whose config.json may omit it
#: (Gemma3TextConfig 6, Cohere2Config 4; Gemma 2 alternates, layer 0 sliding)
DEFAULT_PATTERNS = {"gemma3_text": 6, "gemma3": 6, "cohere2": 4, "gemma2": 2}
#: model types whose sliding_window applies to every layer (Mistral 7B v0.1's config.json)
ALL_LAYERS_SLIDE = {"mistral", "mixtral", "starcoder2"}


def sliding_layers(
    config: dict[str, Any], layers: int, notes: list[str] | None = None
) -> tuple[int, int | None]:
    """How many of ``layers`` attend over a sliding window, and the window (see the docstring).
    A window whose layers cannot be told counts every layer in full, with a note why."""
    window = config.get("sliding_window")
    if not isinstance(window, int) or isinstance(window, bool) or window <= 0:
        return 0, None
    types = config.get("layer_types")
    if isinstance(types, list) and types:
        return sum(t == "sliding_attention" for t in types[:layers]), window
    if config.get("use_sliding_window") is False:
        return 0, None
    model_type = str(config.get("model_type") or "")
    pattern = config.get("sliding_window_pattern") or DEFAULT_PATTERNS.get(model_type)
    if isinstance(pattern, int) and not isinstance(pattern, bool) and pattern > 0:
        return sum(1 for i in range(layers) if (i + 1) % pattern), window
    max_window_layers = config.get("max_window_layers")
    if config.get("use_sliding_window") is True and isinstance(max_window_layers, int):
        return max(0, layers - max_window_layers), window  # Qwen2: the upper layers slide
    if model_type in ALL_LAYERS_SLIDE:
        return layers, window
    if notes is not None:
        notes.append(
            f"sliding window {window} of model type {model_type or '(none)'!r} not applied (which "
            "layers slide is not known); the KV estimate is an upper bound"
        )
    return 0, None


#: GGUF metadata keys (llama.cpp gguf-py constants.py, Keys.LLM / Keys.Attention)
GGUF_SHAPE_KEYS = (
    "block_count", "attention.head_count", "attention.head_count_kv", "embedding_length",
    "context_length", "attention.key_length", "attention.value_length", "attention.sliding_window",
)  # fmt: skip


def shape_from_gguf(path: Path, problems: list[str]) -> AttentionShape | None:
    """The attention shape from a GGUF file's metadata, or None with the reason in ``problems``."""
    try:
        arch = read_gguf_metadata(path, {"general.architecture"}).get("general.architecture")
        if not isinstance(arch, str):
            raise GgufError("no general.architecture in its metadata")
        wanted = {f"{arch}.{k}" for k in GGUF_SHAPE_KEYS}
        meta = {k.removeprefix(f"{arch}."): v for k, v in read_gguf_metadata(path, wanted).items()}
    except (OSError, GgufError) as exc:
        problems.append(f"{path.name}: GGUF header unreadable ({exc}): KV cache size unknown")
        return None
    missing = [
        f"{arch}.{k}"
        for k in ("block_count", "attention.head_count", "embedding_length")
        if not isinstance(meta.get(k), int)
    ]
    if missing:
        problems.append(f"{path.name}: GGUF metadata lacks {', '.join(missing)}: KV cache unknown")
        return None
    layers, heads = int(meta["block_count"]), int(meta["attention.head_count"])
    kv = meta.get("attention.head_count_kv", heads)
    if isinstance(kv, list):  # per-layer KV heads (some hybrid models): the widest counts
        kv = max(kv) if kv else heads
    key_dim = meta.get("attention.key_length") or int(meta["embedding_length"]) // heads
    value_dim = meta.get("attention.value_length") or key_dim
    if meta.get("attention.sliding_window"):
        problems.append(
            f"{path.name}: sliding window {meta['attention.sliding_window']} not applied (GGUF "
            "metadata does not say which layers slide); the KV estimate is an upper bound"
        )
    return AttentionShape(
        layers=layers,
        width=int(kv) * (int(key_dim) + int(value_dim)),
        width_text=f"{kv} KV heads × ({key_dim} key + {value_dim} value dims)",
        context_length=meta.get("context_length")
        if isinstance(meta.get("context_length"), int)
        else None,
    )


def read_config(model_dir: Path, problems: list[str]) -> dict[str, Any] | None:
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"cannot read {path} ({exc.__class__.__name__}): KV cache size unknown")
        return None
    if not isinstance(config, dict):
        problems.append(f"{path} is not a JSON object: KV cache size unknown")
        return None
    return config


def config_dtype(config: dict[str, Any]) -> str:
    for source in (config, *(config.get(n) for n in NESTED_TEXT_CONFIGS)):
        if isinstance(source, dict) and (source.get("torch_dtype") or source.get("dtype")):
            return str(source.get("torch_dtype") or source.get("dtype"))
    return ""


def _blocks(tokens: int) -> int:
    return -(-tokens // BLOCK_TOKENS)

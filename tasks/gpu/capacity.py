"""Capacity preflight: does a model directory, served with a given context length, fit a GPU?

Pure: files and numbers in, a verdict with every number out; no GPU, Prefect or network needed
(scripts/gpu-check.sh runs it beside the real NVML client). The estimate, as vLLM spends memory:

    needed = weights + KV cache + overhead
    weights   safetensors headers (8-byte length + JSON header only; tensor bytes summed by dtype),
              else the sizes of *.gguf files, else of other weight files (*.bin, *.pt, *.pth)
    KV cache  2 × layers × KV heads × head dim × dtype bytes × max_model_len × max_num_seqs
              (from config.json; MLA models, e.g. DeepSeek: layers × (kv_lora_rank +
              qk_rope_head_dim) × dtype bytes × tokens)
    overhead  1 GiB (CUDA context, CUDA graphs) + 10 % of the weights (activation peak of the
              profiling run) — a stated rule of thumb, overridable

vLLM needs at least one sequence of max_model_len in its KV cache to start, hence max_num_seqs=1
by default; more concurrent full-length sequences need proportionally more. The verdict is
"unknown" (never a guess) when the weights, the model's shape or the free memory are not known.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

GiB = 1 << 30
DEFAULT_OVERHEAD_BYTES = GiB
DEFAULT_OVERHEAD_FRACTION = 0.10
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on header size

#: bytes per element of safetensors dtypes and of config.json / --kv-cache-dtype names
DTYPE_BYTES: dict[str, float] = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F4": 0.5, "F6_E2M3": 0.75,
    "float64": 8, "float32": 4, "float": 4, "float16": 2, "half": 2, "bfloat16": 2,
    "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "int8": 1,
}  # fmt: skip
_OTHER_WEIGHTS = ("*.bin", "*.pt", "*.pth")
_NESTED_TEXT_CONFIGS = ("text_config", "llm_config", "language_config")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WeightsEstimate(_Frozen):
    bytes: int
    source: Literal["safetensors headers", "gguf file sizes", "file sizes"]
    files: int
    by_dtype: dict[str, int] = {}


class KvCacheEstimate(_Frozen):
    bytes: int
    bytes_per_token: int
    tokens: int  # max_model_len × max_num_seqs
    dtype: str
    formula: str  # the multiplication, with the model's numbers


class CapacityVerdict(_Frozen):
    schema_version: int = 1
    model_dir: str
    max_model_len: int
    max_num_seqs: int
    verdict: Literal["fits", "does not fit", "unknown"]
    weights: WeightsEstimate | None
    kv_cache: KvCacheEstimate | None
    overhead_bytes: int | None
    needed_bytes: int | None
    available_bytes: int | None
    available_from: str | None  # e.g. "GPU 0 (NVIDIA H100 80GB HBM3) free memory"
    problems: list[str]
    message: str

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"


def read_safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file: reads 8 bytes of length and the header only."""
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError("shorter than the 8-byte header length")
        (length,) = struct.unpack("<Q", raw)
        if not 2 <= length <= _MAX_HEADER:
            raise ValueError(f"header length {length} is not plausible")
        header = json.loads(f.read(length))
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header


def estimate_weights(model_dir: Path, problems: list[str]) -> WeightsEstimate | None:
    """Weight bytes from safetensors headers, else GGUF or other weight file sizes."""
    tensors = _safetensors_files(model_dir)
    if tensors:
        by_dtype: dict[str, int] = {}
        for path in tensors:
            try:
                header = read_safetensors_header(path)
                for name, info in header.items():
                    if name == "__metadata__":
                        continue
                    begin, end = info["data_offsets"]
                    by_dtype[info["dtype"]] = by_dtype.get(info["dtype"], 0) + end - begin
            except (OSError, ValueError, KeyError, TypeError) as exc:
                problems.append(
                    f"{path.name}: unreadable safetensors header ({exc}); counted its size"
                )
                by_dtype["file size"] = by_dtype.get("file size", 0) + path.stat().st_size
        return WeightsEstimate(
            bytes=sum(by_dtype.values()),
            source="safetensors headers",
            files=len(tensors),
            by_dtype=by_dtype,
        )
    gguf = sorted(model_dir.glob("*.gguf"))
    other = sorted(f for pattern in _OTHER_WEIGHTS for f in model_dir.glob(pattern))
    if gguf or other:
        files = gguf or other
        return WeightsEstimate(
            bytes=sum(f.stat().st_size for f in files),
            source="gguf file sizes" if gguf else "file sizes",
            files=len(files),
        )
    problems.append(f"no weight files (*.safetensors, *.gguf, *.bin, *.pt) in {model_dir}")
    return None


def estimate_kv_cache(
    model_dir: Path, tokens: int, kv_cache_dtype: str, problems: list[str]
) -> KvCacheEstimate | None:
    """KV cache bytes for ``tokens`` tokens from config.json (see the module docstring)."""
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        problems.append(f"cannot read {path} ({exc.__class__.__name__}): KV cache size unknown")
        return None
    for nested in _NESTED_TEXT_CONFIGS:  # multimodal models keep the language model's shape here
        if "num_hidden_layers" not in config and isinstance(config.get(nested), dict):
            config = {**config, **config[nested]}
    dtype = (
        kv_cache_dtype
        if kv_cache_dtype != "auto"
        else str(config.get("torch_dtype") or config.get("dtype") or "")
    )
    if dtype not in DTYPE_BYTES:
        problems.append(
            f"KV cache dtype {dtype or '(none in config.json)'!r} unknown; assumed float16"
        )
        dtype = "float16"
    size = DTYPE_BYTES[dtype]
    try:
        layers = int(config["num_hidden_layers"])
        if config.get("kv_lora_rank"):  # multi-head latent attention: one compressed "head"
            width = int(config["kv_lora_rank"]) + int(config.get("qk_rope_head_dim") or 0)
            per_token = int(layers * width * size)
            formula = f"{layers} layers × ({width} latent width) × {size:g} bytes ({dtype})"
        else:
            heads = int(config["num_attention_heads"])
            kv_heads = int(config.get("num_key_value_heads") or heads)
            head_dim = int(config.get("head_dim") or int(config["hidden_size"]) // heads)
            per_token = int(2 * layers * kv_heads * head_dim * size)
            formula = (
                f"2 × {layers} layers × {kv_heads} KV heads × {head_dim} head dim × "
                f"{size:g} bytes ({dtype})"
            )
    except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
        problems.append(f"{path} lacks the model's shape ({exc!r}): KV cache size unknown")
        return None
    return KvCacheEstimate(
        bytes=per_token * tokens,
        bytes_per_token=per_token,
        tokens=tokens,
        dtype=dtype,
        formula=f"{formula} × {tokens} tokens",
    )


def preflight(
    model_dir: Path,
    max_model_len: int,
    *,
    available_bytes: int | None,
    available_from: str | None = None,
    max_num_seqs: int = 1,
    kv_cache_dtype: str = "auto",
    overhead_fixed_bytes: int = DEFAULT_OVERHEAD_BYTES,
    overhead_fraction: float = DEFAULT_OVERHEAD_FRACTION,
) -> CapacityVerdict:
    """Does ``model_dir`` at ``max_model_len`` fit ``available_bytes`` (a GPU's free VRAM)?"""
    problems: list[str] = []
    if not model_dir.is_dir():
        problems.append(f"{model_dir} is not a directory")
        weights, kv = None, None
    else:
        weights = estimate_weights(model_dir, problems)
        kv = estimate_kv_cache(model_dir, max_model_len * max_num_seqs, kv_cache_dtype, problems)
    overhead = overhead_fixed_bytes + int(overhead_fraction * weights.bytes) if weights else None
    needed = (
        weights.bytes + kv.bytes + overhead if weights and kv and overhead is not None else None
    )
    if available_bytes is None:
        problems.append("free GPU memory unknown (no GPU reading; pass the free memory to compare)")
    parts = []
    if weights:
        dtypes = ", ".join(f"{d} {_gib(b)}" for d, b in sorted(weights.by_dtype.items()))
        parts.append(
            f"weights {_gib(weights.bytes)} ({weights.source} of {weights.files} file(s)"
            + (f": {dtypes})" if dtypes else ")")
        )
    if kv:
        parts.append(f"KV cache {_gib(kv.bytes)} ({kv.formula})")
    if overhead is not None:
        parts.append(
            f"overhead {_gib(overhead)} ({_gib(overhead_fixed_bytes)} + "
            f"{overhead_fraction:.0%} of the weights)"
        )
    head = f"{model_dir} at max-model-len {max_model_len} × {max_num_seqs} sequence(s): "
    body = " + ".join(parts) + (f" = {_gib(needed)} needed" if needed is not None else "")
    if available_bytes is not None:
        body += f"; {available_from or 'available'}: {_gib(available_bytes)}"
    verdict: Literal["fits", "does not fit", "unknown"]
    if needed is None or available_bytes is None:
        verdict, tail = "unknown", "verdict unknown: " + "; ".join(problems)
    elif needed <= available_bytes:
        verdict, tail = "fits", f"fits ({_gib(available_bytes - needed)} to spare)"
    else:
        verdict = "does not fit"
        tail = (
            f"does NOT fit (short by {_gib(needed - available_bytes)}); lower --max-model-len, "
            "use a smaller or quantized model, or free GPU memory"
        )
    return CapacityVerdict(
        model_dir=str(model_dir),
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        verdict=verdict,
        weights=weights,
        kv_cache=kv,
        overhead_bytes=overhead,
        needed_bytes=needed,
        available_bytes=available_bytes,
        available_from=available_from,
        problems=problems,
        message=head + (body + "; " if body else "") + tail + ".",
    )


def _safetensors_files(model_dir: Path) -> list[Path]:
    """The shards vLLM would load: those the index names, else every top-level *.safetensors."""
    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            return sorted({model_dir / name for name in weight_map.values()})
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a broken index: fall back to the files themselves
    return sorted(model_dir.glob("*.safetensors"))


def _gib(n: int | float) -> str:
    return f"{n / GiB:.2f} GiB"

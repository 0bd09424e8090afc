"""Capacity preflight: does a model (a directory, or a GGUF file) at a given context length fit
what vLLM would give it on a GPU?

Pure: files and numbers in, a verdict with every number out; no GPU, Prefect or network needed
(scripts/gpu-check.sh runs it beside the real NVML client). The estimate, as vLLM spends memory:

    needed = weights + KV cache + overhead  ≤  budget = total × --gpu-memory-utilization
    weights   safetensors headers (8-byte length + JSON header only; tensor bytes summed by dtype),
              else the sizes of the *.gguf files, else of other weight files (*.bin, *.pt, *.pth)
    KV cache  per layer, full attention for max_model_len tokens, sliding-window layers for their
              window only (tasks/gpu/kv_cache.py); the shape from config.json, or from a GGUF
              file's metadata (tasks/gpu/gguf.py)
    overhead  1 GiB (CUDA graphs, buffers) + 10 % of the weights (activation peak of the
              profiling run) — a stated rule of thumb, overridable
    budget    tasks/gpu/budget.py: what vLLM V1 requests, and whether it starts at all beside the
              other processes on the GPU

vLLM needs at least one sequence of max_model_len in its KV cache to start, hence max_num_seqs=1
by default; more concurrent full-length sequences need proportionally more. The verdict is
"unknown" (never a guess) when the weights, the model's shape or the GPU are not known.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from tasks.gpu.budget import GpuBudget
from tasks.gpu.kv_cache import (
    DEFAULT_PREFILL_CHUNK,
    KV_DTYPE_BYTES,
    KvCacheEstimate,
    config_dtype,
    kv_cache_estimate,
    read_config,
    shape_from_config,
    shape_from_gguf,
)

GiB = 1 << 30
DEFAULT_OVERHEAD_BYTES = GiB
DEFAULT_OVERHEAD_FRACTION = 0.10
_MAX_HEADER = 100 * 1024 * 1024  # the safetensors format's own limit on header size
_OTHER_WEIGHTS = ("*.bin", "*.pt", "*.pth")

__all__ = ["CapacityVerdict", "GiB", "KvCacheEstimate", "WeightsEstimate", "preflight"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WeightsEstimate(_Frozen):
    bytes: int
    source: Literal["safetensors headers", "gguf file sizes", "file sizes"]
    files: int
    by_dtype: dict[str, int] = {}


class CapacityVerdict(_Frozen):
    schema_version: int = 2  # 2: budget (vLLM's total × utilization) and KV sliding windows
    model_dir: str
    max_model_len: int
    max_num_seqs: int
    verdict: Literal["fits", "does not fit", "unknown"]
    weights: WeightsEstimate | None
    kv_cache: KvCacheEstimate | None
    overhead_bytes: int | None
    needed_bytes: int | None
    available_bytes: int | None  # the budget the need is compared with
    available_from: str | None  # how that budget came about, in one line
    budget: GpuBudget | None = None  # a GPU's numbers, when read from one
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


def estimate_weights(model_path: Path, problems: list[str]) -> WeightsEstimate | None:
    """Weight bytes from safetensors headers, else GGUF or other weight file sizes."""
    tensors = _safetensors_files(model_path) if model_path.is_dir() else []
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
    gguf = gguf_files(model_path)
    other = (
        sorted(f for pattern in _OTHER_WEIGHTS for f in model_path.glob(pattern))
        if model_path.is_dir()
        else []
    )
    if gguf or other:
        files = gguf or other
        return WeightsEstimate(
            bytes=sum(f.stat().st_size for f in files),
            source="gguf file sizes" if gguf else "file sizes",
            files=len(files),
        )
    problems.append(f"no weight files (*.safetensors, *.gguf, *.bin, *.pt) in {model_path}")
    return None


def estimate_kv_cache(
    model_path: Path,
    max_model_len: int,
    max_num_seqs: int,
    kv_cache_dtype: str,
    problems: list[str],
    *,
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
) -> KvCacheEstimate | None:
    """KV cache for ``max_num_seqs`` sequences of ``max_model_len`` tokens. A GGUF model's shape
    comes from its metadata (config.json beside it only when that is unreadable); any other
    model's from config.json. tasks/gpu/kv_cache.py has the rules."""
    gguf = gguf_files(model_path)
    shape = shape_from_gguf(gguf[0], problems) if gguf else None
    source, config = (f"GGUF metadata of {gguf[0].name}", None) if gguf else ("", None)
    if shape is None and (not gguf or (model_path / "config.json").is_file()):
        config = read_config(model_path, problems)
        if config is None:
            return None
        try:
            shape, source = shape_from_config(config, problems), "config.json"
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            problems.append(f"config.json lacks the model's shape ({exc!r}): KV cache size unknown")
            return None
    if shape is None:
        return None
    if shape.context_length and max_model_len > shape.context_length:
        problems.append(
            f"max-model-len {max_model_len} is above the model's context length "
            f"{shape.context_length}: vLLM refuses it unless VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"
        )
    dtype = kv_cache_dtype
    if dtype == "auto" and config is None:
        dtype = "float16"
        problems.append(f"{source} names no KV cache dtype: float16 assumed")
    elif dtype == "auto":
        dtype = config_dtype(config or {})
    if dtype not in KV_DTYPE_BYTES:
        problems.append(
            f"KV cache dtype {dtype or '(none in config.json)'!r} unknown; assumed float16"
        )
        dtype = "float16"
    return kv_cache_estimate(
        shape,
        max_model_len=max_model_len,
        max_num_seqs=max_num_seqs,
        dtype=dtype,
        prefill_chunk=prefill_chunk,
        source=source,
    )


def preflight(
    model_dir: Path,
    max_model_len: int,
    *,
    available_bytes: int | None = None,
    available_from: str | None = None,
    budget: GpuBudget | None = None,
    max_num_seqs: int = 1,
    kv_cache_dtype: str = "auto",
    prefill_chunk: int = DEFAULT_PREFILL_CHUNK,
    overhead_fixed_bytes: int = DEFAULT_OVERHEAD_BYTES,
    overhead_fraction: float = DEFAULT_OVERHEAD_FRACTION,
) -> CapacityVerdict:
    """Does the model at ``model_dir`` (a directory or a .gguf file) at ``max_model_len`` fit
    ``budget`` (a GPU's, as vLLM computes it) or ``available_bytes`` (a number given)?"""
    problems: list[str] = []
    weights: WeightsEstimate | None = None
    kv: KvCacheEstimate | None = None
    if not (model_dir.is_dir() or (model_dir.is_file() and model_dir.suffix == ".gguf")):
        problems.append(f"{model_dir} is not a directory or a .gguf file")
    else:
        weights = estimate_weights(model_dir, problems)
        kv = estimate_kv_cache(
            model_dir, max_model_len, max_num_seqs, kv_cache_dtype, problems,
            prefill_chunk=prefill_chunk,
        )  # fmt: skip
    overhead = overhead_fixed_bytes + int(overhead_fraction * weights.bytes) if weights else None
    needed = (
        weights.bytes + kv.bytes + overhead if weights and kv and overhead is not None else None
    )
    if budget is not None:
        available_bytes, available_from = budget.requested_bytes, budget.explain()
    if available_bytes is None:
        problems.append("GPU memory unknown (no GPU reading; pass --free-gib to compare)")
    parts = []
    if weights:
        dtypes = ", ".join(f"{d} {_gib(b)}" for d, b in sorted(weights.by_dtype.items()))
        parts.append(
            f"weights {_gib(weights.bytes)} ({weights.source} of {weights.files} file(s)"
            + (f": {dtypes})" if dtypes else ")")
        )
    if kv:
        parts.append(f"KV cache {_gib(kv.bytes)} ({kv.source}: {kv.formula})")
    if overhead is not None:
        parts.append(
            f"overhead {_gib(overhead)} ({_gib(overhead_fixed_bytes)} + "
            f"{overhead_fraction:.0%} of the weights)"
        )
    head = f"{model_dir} at max-model-len {max_model_len} × {max_num_seqs} sequence(s): "
    body = " + ".join(parts) + (f" = {_gib(needed)} needed" if needed is not None else "")
    if available_bytes is not None:
        where = budget.explain() if budget else f"{available_from or 'available'}: "
        body += "; " + where + ("" if budget else _gib(available_bytes))
    verdict: Literal["fits", "does not fit", "unknown"]
    if budget is not None and not budget.starts:
        verdict = "does not fit"
        tail = (
            f"does NOT fit: vLLM would stop at start-up ('Free memory on device … is less than "
            f"desired GPU memory utilization'); set --gpu-memory-utilization to at most "
            f"{budget.highest_utilization:.2f} or stop what else holds memory on {budget.gpu}"
        )
    elif needed is None or available_bytes is None:
        verdict, tail = "unknown", "verdict unknown: " + "; ".join(problems)
    elif needed <= available_bytes:
        verdict = "fits"
        spare = _gib(available_bytes - needed)
        tail = f"fits ({_gib(needed)} ≤ {_gib(available_bytes)}, {spare} to spare)"
    else:
        verdict = "does not fit"
        tail = (
            f"does NOT fit (short by {_gib(needed - available_bytes)}); lower --max-model-len, "
            "use a smaller or quantized model, raise --gpu-memory-utilization, or free GPU memory"
        )
    notes = f" Notes: {'; '.join(problems)}." if problems and verdict != "unknown" else ""
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
        budget=budget,
        problems=problems,
        message=head + (body + "; " if body else "") + tail + "." + notes,
    )


def gguf_files(model_path: Path) -> list[Path]:
    """A .gguf file itself, or a directory's *.gguf files (split files sorted: the first holds
    the metadata)."""
    if model_path.is_file():
        return [model_path] if model_path.suffix == ".gguf" else []
    return sorted(model_path.glob("*.gguf")) if model_path.is_dir() else []


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

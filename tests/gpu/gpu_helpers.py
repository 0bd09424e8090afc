"""Shared by the GPU tests: synthetic model files, fake GPU specs, the sbx CLI in a subprocess."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

MiB = 1 << 20
LLAMA_8B = {
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_size": 4096,
    "torch_dtype": "bfloat16",
}
ITEM = {"BF16": 2, "F16": 2, "F32": 4, "I32": 4, "U8": 1}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, int]]) -> None:
    """A .safetensors file with real header and sparse data: {name: (dtype, element count)}."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, count) in tensors.items():
        size = count * ITEM[dtype]
        header[name] = {"dtype": dtype, "shape": [count], "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)


def write_model(root: Path, config: dict[str, Any] = LLAMA_8B, bf16_gib: int = 14) -> Path:
    """A model directory: config.json and one sparse safetensors file of ``bf16_gib`` GiB."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(config))
    write_safetensors(root / "model.safetensors", {"w": ("BF16", bf16_gib * (1 << 29))})
    return root


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    path.write_text(json.dumps(spec))
    return path


def run_sbx(
    *args: str, prefect_api: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The sbx CLI in a subprocess; Prefect settings and SBX_* from the caller's environment
    are dropped, so only what the test names applies."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    base.update(COLUMNS="200", **(env or {}))
    if prefect_api:
        base["PREFECT_API_URL"] = prefect_api
    done = subprocess.run(
        [sys.executable, "-m", "sbx", *args], capture_output=True, text=True, env=base, timeout=300
    )
    assert "Starting temporary server" not in done.stderr, done.stderr
    return done

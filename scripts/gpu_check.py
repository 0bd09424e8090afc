"""The Python half of scripts/gpu-check.sh: read the real GPUs, run the capacity preflight.

Runs on a GPU machine with only pydantic and nvidia-ml-py besides the standard library: it
imports tasks.clients.gpu and tasks.gpu.capacity (and, through them, sbx.errors) and checks at the
end that nothing heavier (prefect, docker, httpx, pydantic-settings) came along.

    python3 scripts/gpu_check.py read [--wait-pid PID]   print the reading as JSON; exit 0 with
                                                         GPUs, 3 without, 1 when NVML failed
    python3 scripts/gpu_check.py fit                     preflight of synthetic models against
                                                         vLLM's budget on GPU 0 (total × 0.9)
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
from pathlib import Path

from tasks.clients.gpu import GpuInventory, read_inventory
from tasks.gpu.budget import DEFAULT_GPU_MEMORY_UTILIZATION, GpuBudget
from tasks.gpu.capacity import GiB, preflight

NO_GPU = 3
HEAVY = ("prefect", "docker", "httpx", "pydantic_settings", "qdrant_client", "boto3")


def read(wait_pid: int | None) -> int:
    inventory = read_inventory(xid_wait_ms=100)
    if wait_pid is not None and inventory.available:
        # the background CUDA process needs a moment before NVML lists it
        for _ in range(60):
            if any(p.pid == wait_pid for g in inventory.gpus for p in g.processes):
                break
            time.sleep(0.5)
            inventory = read_inventory(xid_wait_ms=100)
        else:
            print(
                f"warning: pid {wait_pid} never appeared among the GPU processes", file=sys.stderr
            )
    print(inventory.model_dump_json(indent=2))
    print(_summary(inventory), file=sys.stderr)
    if not inventory.available:
        return NO_GPU
    return 1 if inventory.failures else 0


def fit() -> int:
    inventory = read_inventory()
    gpu = inventory.gpus[0] if inventory.gpus else None
    budget = (
        GpuBudget(
            gpu=f"GPU 0 ({gpu.name})",
            total_bytes=gpu.memory_total_bytes,
            utilization=DEFAULT_GPU_MEMORY_UTILIZATION,
            utilization_from="vLLM's default",
            used_bytes=gpu.memory_used_bytes,
            given_back_bytes=0,
            given_back_by=None,
        )
        if gpu
        else None
    )
    failed = 0
    with tempfile.TemporaryDirectory(prefix="sbx-gpu-check-") as tmp:
        # Llama-3-8B's shape with 15 GiB of bf16 weights; a 1 TiB model that fits nowhere
        small = _model(Path(tmp) / "llama-8b", 15 * GiB)
        huge = _model(Path(tmp) / "huge", 1024 * GiB)
        for name, root, length, expect in (
            ("8B at 8192", small, 8192, None),
            ("8B at 131072 x 4", small, 131072, None),
            ("1 TiB model", huge, 8192, "does not fit"),
        ):
            seqs = 4 if "x 4" in name else 1
            verdict = preflight(root, length, budget=budget, max_num_seqs=seqs)
            print(json.dumps({"case": name, **verdict.model_dump(mode="json")}, indent=2))
            print(f"{name}: {verdict.verdict}: {verdict.message}", file=sys.stderr)
            if gpu is None and verdict.verdict != "unknown":
                failed += 1  # without a GPU the free memory is unknown: never a guess
            if gpu is not None and (
                verdict.verdict == "unknown" or (expect and verdict.verdict != expect)
            ):
                failed += 1
    return 1 if failed else (0 if gpu else NO_GPU)


def _model(root: Path, weight_bytes: int) -> Path:
    root.mkdir()
    config = {
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "hidden_size": 4096,
        "torch_dtype": "bfloat16",
    }
    (root / "config.json").write_text(json.dumps(config))
    header = json.dumps(
        {"w": {"dtype": "BF16", "shape": [weight_bytes // 2], "data_offsets": [0, weight_bytes]}}
    ).encode()
    with (root / "model.safetensors").open("wb") as f:  # sparse: the header is all that is read
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + weight_bytes)
    return root


def _summary(inventory: GpuInventory) -> str:
    if not inventory.available:
        return f"NO GPU: {inventory.reason}"
    lines = [f"driver {inventory.driver_version}, CUDA {inventory.cuda_driver_version}"]
    for g in inventory.gpus:
        lines.append(
            f"GPU {g.index} {g.name}: {g.memory_used_bytes / GiB:.1f}/"
            f"{g.memory_total_bytes / GiB:.1f} GiB used, util {g.utilization_gpu_pct} %, "
            f"{g.temperature_c} °C, {g.power_w} W, throttle {g.throttle_reasons}, "
            f"processes {[(p.pid, p.used_memory_bytes) for p in g.processes]}, "
            f"not supported {g.not_supported}"
        )
    lines += [f"GPU {f.index} FAILED: {f.message}" for f in inventory.failures]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["read", "fit"])
    parser.add_argument("--wait-pid", type=int)
    args = parser.parse_args()
    code = read(args.wait_pid) if args.step == "read" else fit()
    heavy = sorted(m for m in HEAVY if m in sys.modules)
    if heavy:
        print(f"FAIL: imported {heavy}; the GPU client must stay light", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

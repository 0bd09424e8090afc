"""`sbx model swap` on a running copy of the example stack, GPU readings from the fake NVML.

The swap edits env/stack.env, which compose interpolates into the worker's upstream arguments
(services.yml); the stand-in vLLM serves the --served-model-name it is started with and answers
400 when a prompt plus max_tokens exceed its --max-model-len, like vLLM: a swap to a too-short
context fails the example prompt suite's long-context prompt, a real regression to roll back.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from bed import RunningStack

from tasks.changelog import read_changes, verify_changes
from tasks.clients.gpu_fake import GiB, h100
from tasks.gpu.check import FAKE_ENV

OLD = "Qwen/Qwen2.5-7B-Instruct-AWQ"
LLAMA = {
    "architectures": ["LlamaForCausalLM"],
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_size": 4096,
    "torch_dtype": "bfloat16",
}


def write_model(stack: Path, name: str, bf16_gib: float) -> None:
    """data/models/<name>: config.json and a sparse safetensors file of ``bf16_gib`` GiB."""
    root = stack / "data" / "models" / name
    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps(LLAMA))
    size = int(bf16_gib * GiB)
    header = json.dumps({"w": {"dtype": "BF16", "shape": [size // 2], "data_offsets": [0, size]}})
    with (root / "model.safetensors").open("wb") as f:
        f.write(struct.pack("<Q", len(header)) + header.encode())
        f.truncate(8 + len(header) + size)


def swap(
    stack: RunningStack, prefect_api: str, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    # one H100 with 10 GiB held by what stays beside the worker (the stand-in holds none): vLLM
    # starts at the worker's 0.85 (80 − 10 − 0.5 = 69.5 GiB free ≥ 68) with a 68 GiB budget
    spec = tmp_path / "gpus.json"
    spec.write_text(json.dumps({"gpus": [h100(0, memory_used=10 * GiB)]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
    env.update(stack.compose_env, PREFECT_API_URL=prefect_api, COLUMNS="200")
    env[FAKE_ENV] = str(spec)
    done = subprocess.run(
        [sys.executable, "-m", "sbx", "model", "swap", "--service", "worker",
         "--stack", str(stack.path), *args],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert "Starting temporary server" not in done.stderr, done.stderr
    return done


def served(stack: RunningStack) -> list[str]:
    import httpx  # tests may use SDKs directly; the layering rule is for sbx's own code

    body = httpx.get(stack.url("worker") + "/v1/models", headers=stack.auth("worker"), timeout=10)
    body = body.json()
    return [m["id"] for m in body["data"]]


def worker_args(stack: RunningStack) -> list[str]:
    """The arguments the worker's container was started with (Docker's own record)."""
    name = stack.compose("ps", "-q", "worker").stdout.strip()
    done = subprocess.run(
        ["docker", "inspect", "--format", "{{json .Args}}", name],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    args: list[str] = json.loads(done.stdout)
    return args


def test_a_model_that_does_not_fit_is_refused_with_the_numbers(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    write_model(running_stack.path, "Big-33B", 62)  # 70.2 GiB at 8192 tokens, 68 GiB budget
    env_file = running_stack.path / "env" / "stack.env"
    before = env_file.read_bytes()
    done = swap(running_stack, prefect_server, tmp_path, "--model", "org/Big-33B",
                "--max-model-len", "8192")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "refused, nothing was changed" in done.stderr
    assert "does NOT fit (short by 2.20 GiB)" in done.stderr and "GiB needed" in done.stderr
    assert (
        "GPU 0 (NVIDIA H100 80GB HBM3): budget 80.00 GiB × 0.85 (--gpu-memory-utilization in "
        "worker's command) = 68.00 GiB; other processes hold 10.00 GiB" in done.stderr
    )
    assert env_file.read_bytes() == before
    assert not list(env_file.parent.glob("stack.env.pre-swap-*"))
    assert served(running_stack) == [OLD]
    assert read_changes(running_stack.path) == []


def test_a_swap_that_fails_the_prompt_suite_is_rolled_back(
    running_stack: RunningStack, prefect_server: str, tmp_path: Path
) -> None:
    write_model(running_stack.path, "Small-1B", 0.5)
    env_file = running_stack.path / "env" / "stack.env"
    before = env_file.read_bytes()
    started_with = worker_args(running_stack)
    assert started_with[started_with.index("--served-model-name") + 1] == OLD
    # 24 tokens of context: the suite's long-context prompt no longer fits
    done = swap(running_stack, prefect_server, tmp_path, "--model", "org/Small-1B",
                "--max-model-len", "24")  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "rolled back: prompt suite regressed: long-context" in done.stderr
    assert "maximum context length is 24 tokens" in done.stderr
    assert env_file.read_bytes() == before
    [kept] = env_file.parent.glob("stack.env.pre-swap-*")
    assert kept.read_bytes() == before
    assert served(running_stack) == [OLD]  # restarted on the old model, answering
    assert worker_args(running_stack) == started_with
    [entry] = read_changes(running_stack.path)
    assert (entry.action, entry.target) == ("model-swap-rolled-back", "worker")
    assert entry.before["served_model_name"] == OLD
    assert entry.before["env_file"] == "env/stack.env"
    assert entry.after["served_model_name"] == "org/Small-1B"
    assert entry.flow_run_id  # recorded from inside the flow run
    assert verify_changes(running_stack.path).intact

    # the same model with enough context passes the suite and stays
    done = swap(running_stack, prefect_server, tmp_path, "--model", "org/Small-1B",
                "--max-model-len", "2048")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert served(running_stack) == ["org/Small-1B"]
    lines = env_file.read_text().splitlines()
    assert {"WORKER_MODEL=org/Small-1B", "WORKER_MODEL_DIR=/models/Small-1B"} <= set(lines)
    assert {"WORKER_MAX_MODEL_LEN=2048", "WORKER_QUANTIZATION=awq"} <= set(lines)
    args = worker_args(running_stack)  # upstream's arguments, interpolated from env/stack.env
    assert args[args.index("--model") + 1] == "/models/Small-1B"
    assert args[args.index("--served-model-name") + 1] == "org/Small-1B"
    assert args[args.index("--max-model-len") + 1] == "2048"
    entries = read_changes(running_stack.path)
    assert [e.action for e in entries] == ["model-swap-rolled-back", "model-swap"]
    assert verify_changes(running_stack.path).intact

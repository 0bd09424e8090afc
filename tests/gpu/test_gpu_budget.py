"""vLLM's budget on a GPU: total × --gpu-memory-utilization, if what else holds the GPU lets it
start (vLLM V1's "Free memory on device … is less than desired GPU memory utilization"); the
utilization from the service's compose command, the stand-in's environment, or vLLM's 0.9."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from gpu_helpers import write_model, write_spec
from hypothesis import given, settings
from hypothesis import strategies as st

from blocks.config import load_config
from tasks.clients.compose import compose_binary
from tasks.clients.gpu_fake import GiB, h100
from tasks.gpu.budget import CUDA_CONTEXT_BYTES, GpuBudget, service_utilization
from tasks.gpu.capacity import preflight
from tasks.gpu.check import FAKE_ENV, preflight_on_box


def budget(used: int, utilization: float = 0.9, given_back: int = 0, total: int = 80 * GiB):
    return GpuBudget(
        gpu="GPU 0 (NVIDIA H100 80GB HBM3)",
        total_bytes=total,
        utilization=utilization,
        utilization_from="--gpu-memory-utilization in worker's command",
        used_bytes=used,
        given_back_bytes=given_back,
        given_back_by="worker" if given_back else None,
    )


def test_the_budget_line_is_arithmetic_an_operator_can_redo() -> None:
    line = budget(used=72 * GiB, utilization=0.85, given_back=70 * GiB).explain()
    assert line == (
        "GPU 0 (NVIDIA H100 80GB HBM3): budget 80.00 GiB × 0.85 (--gpu-memory-utilization in "
        "worker's command) = 68.00 GiB; other processes hold 2.00 GiB (72.00 GiB used − 70.00 "
        "GiB that worker gives back); vLLM starts: 80.00 GiB total − 2.00 GiB others − 0.50 GiB "
        "CUDA context = 77.50 GiB free at start ≥ 68.00 GiB"
    )


def test_other_processes_do_not_shrink_the_budget_but_can_stop_vllm(tmp_path: Path) -> None:
    model = write_model(tmp_path / "llama", bf16_gib=14)  # 17.4 GiB needed at 8192
    # a watchdog vLLM at 0.1 holds 8 GiB: the worker at 0.85 still gets 68 GiB (V1 semantics)
    beside = preflight(
        model, 8192, budget=budget(used=8 * GiB - CUDA_CONTEXT_BYTES, utilization=0.85)
    )
    assert beside.verdict == "fits" and beside.available_bytes == int(80 * GiB * 0.85)
    assert "17.40 GiB ≤ 68.00 GiB" in beside.message
    # 20 GiB held elsewhere: 80 − 20 − 0.5 = 59.5 GiB free at start, less than 0.9 × 80 = 72
    crowded = budget(used=20 * GiB, utilization=0.9)
    refused = preflight(model, 8192, budget=crowded)
    assert not crowded.starts and refused.verdict == "does not fit"
    assert "vLLM would stop at start-up" in refused.message
    assert "set --gpu-memory-utilization to at most 0.74" in refused.message  # 59.5 / 80
    assert budget(used=20 * GiB, utilization=0.74).starts
    again = type(refused).model_validate_json(refused.model_dump_json())  # the --json output
    assert again == refused and json.loads(refused.model_dump_json())["budget"]["starts"] is False
    assert not budget(used=20 * GiB, utilization=0.75).starts


@settings(max_examples=300, deadline=None)
@given(
    total=st.integers(1 * GiB, 200 * GiB),
    used=st.integers(0, 200 * GiB),
    low=st.floats(0.01, 1.0),
    high=st.floats(0.01, 1.0),
)
def test_budget_grows_with_utilization_and_starting_gets_harder(
    total: int, used: int, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    small, large = budget(used, low, total=total), budget(used, high, total=total)
    assert small.requested_bytes <= large.requested_bytes <= total
    assert large.starts <= small.starts  # whatever starts at high starts at low
    assert (
        budget(used, small.highest_utilization, total=total).starts
        or small.highest_utilization == 0
    )


def test_utilization_from_command_list_string_env_or_default() -> None:
    assert service_utilization(
        {"command": ["--model", "m", "--gpu-memory-utilization", "0.7"]}, "w"
    ) == (
        0.7,
        "--gpu-memory-utilization in w's command",
    )
    assert service_utilization({"command": "--model m --gpu-memory-utilization=0.6"}, "w")[0] == 0.6
    entry = {"entrypoint": ["vllm", "serve", "--gpu-memory-utilization", "0.5"], "command": None}
    assert service_utilization(entry, "w")[0] == 0.5
    last = {"command": ["--gpu-memory-utilization", "0.5", "--gpu-memory-utilization=0.4"]}
    assert service_utilization(last, "w")[0] == 0.4  # argparse: the last one wins
    # no variable: upstream vLLM reads none (the stand-in parses the same arguments)
    env = {"command": ["--model", "m"], "environment": {"GPU_MEMORY_UTILIZATION": "0.85"}}
    assert service_utilization(env, "w")[0] == 0.9
    assert service_utilization({}, "w") == (
        0.9,
        "vLLM's default; w sets no --gpu-memory-utilization",
    )
    bad, why = service_utilization({"command": ["--gpu-memory-utilization", "85"]}, "w")
    assert bad == 0.9 and "'85', not a fraction" in why


def test_preflight_on_box_reads_the_services_arguments_through_compose(
    tmp_path: Path, monkeypatch
) -> None:
    """A real `docker compose config` (no daemon needed) over a compose file with upstream's
    arguments, and the fake NVML: the swapped service's own memory is not counted as "other"."""
    stack = tmp_path / "stack"
    (stack / "env").mkdir(parents=True)
    (stack / "docker-compose.yml").write_text(
        "services:\n"
        "  worker:\n"
        "    image: vllm/vllm-openai\n"
        "    command: --model /models/m --gpu-memory-utilization 0.80 --max-model-len 8192\n"
        "  watchdog:\n"
        "    image: vllm/vllm-openai\n"
        "    command: [--model, /models/w, --gpu-memory-utilization=0.10]\n"
    )
    spec = h100(0, memory_used=10 * GiB)  # no process listed: nothing is given back
    monkeypatch.setenv(FAKE_ENV, str(write_spec(tmp_path / "gpus.json", {"gpus": [spec]})))
    model = write_model(tmp_path / "llama", bf16_gib=14)
    config = load_config(stack)
    worker = preflight_on_box(config, model, 8192, replacing="worker")
    assert worker.budget is not None and worker.budget.utilization == 0.8
    assert "× 0.8 (--gpu-memory-utilization in worker's command) = 64.00 GiB" in worker.message
    assert worker.verdict == "fits"  # 80 − 10 − 0.5 = 69.5 free ≥ 64
    watchdog = preflight_on_box(config, model, 8192, replacing="watchdog")
    assert "× 0.1 (--gpu-memory-utilization in watchdog's command) = 8.00 GiB" in watchdog.message
    assert watchdog.verdict == "does not fit" and "short by 9.40 GiB" in watchdog.message
    assert preflight_on_box(config, model, 8192).budget.utilization == 0.9  # type: ignore[union-attr]
    given = preflight_on_box(config, model, 8192, replacing="worker", gpu_memory_utilization=0.5)
    assert given.budget is not None and given.budget.requested_bytes == 40 * GiB
    # the same compose file through the CLI's own compose: the test's premise holds
    done = subprocess.run([*compose_binary(), "config", "--format", "json"], cwd=stack,
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(done.stdout)["services"]["worker"]["command"][-3] == "0.80"

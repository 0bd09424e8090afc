"""`sbx gpu` on the running example stack: a GPU process that is really the worker container's
pid is named by its compose service (/proc cgroup → Docker labels), and a pegged GPU is judged
with the stand-in vLLM's real /metrics (no request running → stuck)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bed import RunningStack
from gpu_helpers import run_sbx, write_model, write_spec

from blocks.config import load_config
from tasks.clients.gpu_fake import GiB, h100
from tasks.gpu.check import FAKE_ENV, preflight_on_box

if TYPE_CHECKING:
    import pytest
    from docker import DockerClient


def service_pid(engine: DockerClient, project: str, service: str) -> int:
    [container] = engine.containers.list(
        filters={
            "label": [
                f"com.docker.compose.project={project}",
                f"com.docker.compose.service={service}",
            ]
        }
    )
    return int(container.attrs["State"]["Pid"])


def test_pegged_gpu_held_by_the_worker_while_it_serves_nothing_fails(
    running_stack: RunningStack, docker_engine: DockerClient, prefect_server: str, tmp_path: Path
) -> None:
    worker = service_pid(docker_engine, running_stack.project, "worker")
    spec = h100(
        0,
        memory_used=72 * GiB,
        utilization={"gpu": 99, "memory": 70},
        processes={"compute": [{"pid": worker, "used": 70 * GiB}, {"pid": 1, "used": GiB}]},
    )
    fake = write_spec(tmp_path / "gpus.json", {"gpus": [spec]})
    done = run_sbx(
        "gpu", "--json", "--stack", str(running_stack.path),
        prefect_api=prefect_server, env={**running_stack.compose_env, FAKE_ENV: str(fake)},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    by_pid = {p["pid"]: p for p in report["processes"]}
    assert by_pid[worker]["service"] == "worker"
    assert by_pid[worker]["project"] == running_stack.project
    assert by_pid[worker]["container"].startswith(running_stack.project)
    assert by_pid[1]["service"] is None and by_pid[1]["container"] is None
    serving = {s["service"]: s for s in report["serving"]}
    assert set(serving) == {"worker", "watchdog"}
    assert serving["worker"]["url"] == running_stack.url("worker") + "/metrics"
    assert serving["worker"]["requests_running"] == 0.0 and serving["worker"]["error"] is None
    [pegged] = [c for c in report["checks"] if c["name"] == "pegged-while-idle"]
    assert pegged["status"] == "fail"
    assert "while no request runs on worker, watchdog" in pegged["message"]
    [headroom] = [c for c in report["checks"] if c["name"] == "vram-headroom"]
    assert headroom["status"] == "pass"  # 10 % free: what vLLM leaves at 0.9 utilisation


def test_a_model_swap_preflight_counts_what_the_replaced_service_holds(
    running_stack: RunningStack,
    docker_engine: DockerClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker = service_pid(docker_engine, running_stack.project, "worker")
    spec = h100(0, memory_used=72 * GiB, processes={"compute": [{"pid": worker, "used": 70 * GiB}]})
    monkeypatch.setenv(FAKE_ENV, str(write_spec(tmp_path / "gpus.json", {"gpus": [spec]})))
    model = write_model(tmp_path / "llama", bf16_gib=14)  # 17.4 GiB needed at 8192
    config = load_config(running_stack.path)
    alone = preflight_on_box(config, model, 8192)  # a second vLLM at 0.9 beside the worker
    assert alone.verdict == "does not fit" and "vLLM would stop at start-up" in alone.message
    swap = preflight_on_box(config, model, 8192, replacing="worker")
    # the example's worker passes --gpu-memory-utilization 0.85 (services.yml)
    assert swap.verdict == "fits" and swap.available_bytes == int(80 * GiB * 0.85)
    assert "72.00 GiB used − 70.00 GiB that worker gives back" in swap.message
    assert "vLLM starts" in swap.message
    other = preflight_on_box(config, model, 8192, replacing="watchdog")
    assert other.budget is not None and other.budget.given_back_by is None
    assert (
        "other processes hold 72.00 GiB (no GPU process of watchdog found on it)" in other.message
    )
    assert "vLLM would stop at start-up" in other.message  # the worker's 70 GiB stay

"""examples/stack is a real box's compose file: upstream images and arguments without the
override, the stand-ins with it (issue 19). `docker compose config` needs no daemon."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from tasks.clients.compose import compose_binary

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "stack"


def resolved(*files: str) -> dict[str, Any]:
    """The model compose resolves for ``files``, run from elsewhere as an operator might."""
    args = [a for f in files for a in ("-f", str(EXAMPLE / f))]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMPOSE_", "SBX_", "WORKER_"))}
    done = subprocess.run(
        [*compose_binary(), *args, "config", "--format", "json"],
        cwd="/", capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip
    services: dict[str, Any] = json.loads(done.stdout)["services"]
    return services


def flag(spec: dict[str, Any], name: str) -> str:
    command: list[str] = spec["command"]
    return command[command.index(name) + 1]


def test_without_the_override_the_box_runs_upstream_images_and_arguments() -> None:
    services = resolved("docker-compose.yml")
    images = {name: spec["image"] for name, spec in services.items()}
    assert images["worker"] == images["watchdog"] == "vllm/vllm-openai:v0.6.3"
    assert images["qdrant"] == "qdrant/qdrant:v1.20.0"
    assert images["open-webui"] == "ghcr.io/open-webui/open-webui:v0.3.35"
    worker = services["worker"]
    # interpolated from env/stack.env through the include's env_file
    assert flag(worker, "--model") == "/models/Qwen2.5-7B-Instruct-AWQ"
    assert flag(worker, "--served-model-name") == "Qwen/Qwen2.5-7B-Instruct-AWQ"
    assert (flag(worker, "--quantization"), flag(worker, "--max-model-len")) == ("awq", "4096")
    assert flag(worker, "--gpu-memory-utilization") == "0.85"
    assert flag(worker, "--api-key") == "example-worker-key-change-me"
    assert worker["ipc"] == "host"
    (device,) = worker["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert "QDRANT__SERVICE__API_KEY" in services["qdrant"]["environment"]
    webui = services["open-webui"]["environment"]
    assert webui["OPENAI_API_BASE_URL"] == "http://worker:8000/v1"
    assert webui["OPENAI_API_KEY"] == flag(worker, "--api-key")


def test_the_override_swaps_only_the_images_and_the_gpu() -> None:
    upstream = resolved("docker-compose.yml")
    standins = resolved("docker-compose.yml", "compose.standins.yml")
    for name in ("worker", "watchdog"):
        assert standins[name]["image"] == "sbx-standin-vllm:dev"
        assert standins[name]["command"] == upstream[name]["command"]  # the same arguments
        assert "ipc" not in standins[name] and not standins[name]["deploy"].get("resources")
    assert standins["qdrant"]["image"] == "sbx-standin-qdrant:dev"
    assert standins["open-webui"]["image"] == "sbx-standin-webui:dev"
    assert standins["qdrant"]["environment"] == upstream["qdrant"]["environment"]

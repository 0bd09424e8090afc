"""Drill on one GPU, the scratch project itself (#19 deliverable 6): GPU services have no
container there, restored consumers reach the live ones by the names they always used, read
only; ``start_gpu_services = true`` starts them as any other service."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from bed import RunningStack
from bed.stack import prepare_stack

from blocks.config import DrillConfig, SbxConfig
from tasks.drill.project import (
    OVERRIDE_FILE,
    ScratchProject,
    plan_scratch,
    prepare_project,
    start_project,
    tear_down,
)

if TYPE_CHECKING:
    from docker import DockerClient

GPU = ["watchdog", "worker"]


def scratch_copy(stack: RunningStack, tmp_path: Path, drill: DrillConfig) -> ScratchProject:
    """A scratch project planned over a copy of the live stack's tree (as a restore makes)."""
    config = SbxConfig(
        stack_dir=stack.path, drill=drill.model_copy(update={"scratch_dir": tmp_path})
    )
    scratch = plan_scratch(config, "T1")
    shutil.copytree(
        stack.path, scratch.stack_dir, symlinks=True, ignore=shutil.ignore_patterns("qdrant")
    )
    return prepare_project.fn(config, scratch)


def services_of(docker: DockerClient, project: str) -> dict[str, str]:
    found = docker.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    return {c.labels["com.docker.compose.service"]: c.name for c in found}


def test_gpu_services_are_not_started_and_consumers_reach_the_live_ones_read_only(
    running_stack: RunningStack, docker_engine: DockerClient, tmp_path: Path
) -> None:
    live_worker = services_of(docker_engine, running_stack.project)["worker"]
    scratch = scratch_copy(running_stack, tmp_path, DrillConfig(gpu_services=GPU))
    try:
        assert [h.service for h in scratch.held_back] == GPU
        assert {h.relay for h in scratch.held_back} == {"sbx-live-worker", "sbx-live-watchdog"}
        start_project.fn(scratch)
        scratch.compose().run("up", "-d", "--wait", "--wait-timeout", "120")

        running = services_of(docker_engine, scratch.project)
        # no container for a GPU service: only a relay stands in for each
        assert not set(GPU) & set(running), running
        assert {"sbx-live-worker", "sbx-live-watchdog", "proxy", "open-webui"} <= set(running)
        # the restored proxy calls http://worker:8000 as it always did: the live worker answers
        worker = docker_engine.containers.get(live_worker)
        before = worker.logs().decode().count('"GET /v1/models HTTP/1.1" 200')
        proxy = scratch_url(docker_engine, running["proxy"], 443)
        key = next(iter(running_stack.proxy_keys().values()))
        with httpx.Client(verify=running_stack.proxy_tls(), trust_env=False) as client:
            auth = {"Authorization": f"Bearer {key}"}
            listed = client.get(f"{proxy}/v1/models", headers=auth, timeout=30)
            assert listed.status_code == 200, listed.text
            assert [m["id"] for m in listed.json()["data"]] == ["Qwen/Qwen2.5-7B-Instruct-AWQ"]
            # ... and only reads pass: a completion would load the live GPU
            chat = client.post(
                f"{proxy}/v1/chat/completions",
                headers=auth,
                json={"model": "x", "messages": [{"role": "user", "content": "hi"}]},
                timeout=30,
            )
            assert chat.status_code == 405, chat.text
            assert "read-only" in chat.json()["message"]
        # the request reached the live worker container (its access log), from the relay's
        # address on the live network, not from the host's loopback
        lines = worker.logs().decode().splitlines()
        listed_lines = [line for line in lines if '"GET /v1/models HTTP/1.1" 200' in line]
        assert len(listed_lines) == before + 1, lines[-20:]
        assert not listed_lines[-1].startswith("127.0.0.1"), listed_lines[-1]
        assert not any("POST /v1/chat/completions" in line for line in lines)
    finally:
        assert tear_down.fn(scratch) == []
    assert services_of(docker_engine, scratch.project) == {}


def test_start_gpu_services_starts_them_as_any_other(tmp_path: Path, run_id: str) -> None:
    stack = prepare_stack(tmp_path / "live", run_id)  # compose config only: not started
    drill = DrillConfig(gpu_services=GPU, start_gpu_services=True)
    scratch = scratch_copy(stack, tmp_path, drill)
    try:
        assert scratch.held_back == []
        override = (scratch.stack_dir / OVERRIDE_FILE).read_text()
        assert "profiles" not in override and "sbx-live-" not in override
        services = scratch.compose().run("config", "--services").stdout.split()
        assert set(GPU) <= set(services)
    finally:
        tear_down.fn(scratch)


def scratch_url(docker: DockerClient, container: str, port: int) -> str:
    ports = docker.containers.get(container).attrs["NetworkSettings"]["Ports"]
    (published,) = ports[f"{port}/tcp"]
    return f"https://127.0.0.1:{published['HostPort']}"

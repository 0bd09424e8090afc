"""GPU checks: read the GPUs, name the compose service behind each GPU process, judge the readings
against ``[gpu]`` in sbx.toml. ``check_gpus(config) -> GpuReport`` is the entry point (the GPU
flow and the health flow call it); ``evaluate`` is the pure judgement, tested directly.

Tests replace NVML with the fake (tasks/clients/gpu_fake.py) by setting ``SBX_TEST_GPU_FAKE`` to
a spec file; the report's ``inventory.source`` then says ``fake:<file>``, so a fake reading can
never pass for a real one.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig, ServiceKind
from sbx.errors import GpuError, SbxError
from tasks.clients.gpu import GpuInventory, read_inventory
from tasks.clients.vllm_metrics import ServingLoad, read_serving_load
from tasks.gpu.budget import DEFAULT_GPU_MEMORY_UTILIZATION, GpuBudget, service_utilization
from tasks.gpu.capacity import CapacityVerdict, preflight
from tasks.gpu.rules import GpuCheck, GpuProcessOwner, evaluate
from tasks.retry import retry_if_transient

FAKE_ENV = "SBX_TEST_GPU_FAKE"
# a container id in /proc/<pid>/cgroup: ".../docker-<id>.scope" (systemd) or ".../docker/<id>"
_CONTAINER_ID = re.compile(r"(?:docker[-/]|containerd[-/]|cri-containerd-|libpod-)([0-9a-f]{64})")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuReport(_Frozen):
    schema_version: int = 1
    inventory: GpuInventory
    processes: list[GpuProcessOwner]
    serving: list[ServingLoad]
    checks: list[GpuCheck]

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[GpuCheck]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def findings(self) -> list[GpuCheck]:
        """What an operator should look at: failures, warnings and checks that could not run."""
        return [c for c in self.checks if c.status in ("fail", "warn", "unknown")]


def read_gpus(config: SbxConfig) -> GpuInventory:
    """Every GPU as NVML reads it ("no GPU" without a driver); the fake when a test asks."""
    fake = os.environ.get(FAKE_ENV)
    if fake:
        from tasks.clients.gpu_fake import FakeNvml

        nvml, source = FakeNvml.from_file(fake), f"fake:{fake}"
        return read_inventory(nvml, source=source, xid_wait_ms=config.gpu.xid_wait_ms)
    return read_inventory(xid_wait_ms=config.gpu.xid_wait_ms)


def container_of_pid(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The container id a host pid runs in, from its cgroup path; None outside containers."""
    try:
        text = (proc / str(pid) / "cgroup").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None  # gone, or another pid namespace (sbx itself in a container)
    found = _CONTAINER_ID.search(text)
    return found.group(1) if found else None


def owners(inventory: GpuInventory, proc: Path = Path("/proc")) -> list[GpuProcessOwner]:
    """GPU processes with their container and compose service where Docker can say."""
    listed = [(gpu.index, p) for gpu in inventory.gpus for p in gpu.processes]
    ids = {pid: container_of_pid(pid, proc) for pid in {p.pid for _, p in listed}}
    labels: dict[str, tuple[str, str | None, str | None]] = {}
    if any(ids.values()):
        from tasks.clients.docker_engine import (
            COMPOSE_PROJECT_LABEL,
            COMPOSE_SERVICE_LABEL,
            connect,
        )

        try:
            with connect(timeout_s=10) as engine:
                for cid in {c for c in ids.values() if c}:
                    try:
                        attrs = engine.inspect(cid)
                    except SbxError:
                        continue  # the container went away between NVML and Docker
                    tags = attrs.get("Config", {}).get("Labels") or {}
                    labels[cid] = (
                        str(attrs.get("Name", cid[:12])).lstrip("/"),
                        tags.get(COMPOSE_SERVICE_LABEL),
                        tags.get(COMPOSE_PROJECT_LABEL),
                    )
        except SbxError:
            pass  # no Docker: the processes stay pids
    result = []
    for index, p in listed:
        name, service, project = labels.get(ids[p.pid] or "", (None, None, None))
        result.append(
            GpuProcessOwner(
                gpu_index=index,
                pid=p.pid,
                kind=p.kind,
                used_memory_bytes=p.used_memory_bytes,
                container=name,
                service=service,
                project=project,
            )
        )
    return result


def serving_load(config: SbxConfig) -> list[ServingLoad]:
    """Requests running on each serving service (vLLM /metrics), or why that is unknown."""
    names = config.gpu.serving_services
    services = config.enabled_services()
    if names is None:
        names = [n for n, s in services.items() if s.kind == ServiceKind.OPENAI]
    urls: dict[str, str | None] = {n: services[n].url for n in names if n in services}
    if any(url is None for url in urls.values()):
        try:  # derive the missing URLs from the running containers' published ports
            from tasks.status import read_stack_status

            found = {s.name: s.url for s in read_stack_status(config).services}
            urls = {n: url or found.get(n) for n, url in urls.items()}
        except SbxError:
            pass  # no Docker or no compose file: only configured URLs can be asked
    return [
        read_serving_load(n, urls.get(n), timeout_s=config.probe_timeout_s)
        if n in urls
        else ServingLoad(service=n, url=None, error="not a configured, enabled service")
        for n in names
    ]


@task(
    name="check-gpus",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=retry_if_transient,
)
def check_gpus(config: SbxConfig) -> GpuReport:
    """Read every GPU, map its processes to services, and judge against ``[gpu]`` thresholds.

    Never raises for what it reads: failing thresholds are ``fail`` checks (``report.ok`` is
    False); a machine without a GPU is one ``info`` check; an unusable NVML (a driver/library
    mismatch after an upgrade, say) is one ``fail`` check. Only NVML's transient errors (timeout,
    "unknown") raise, so that Prefect retries them.
    """
    try:
        inventory = read_gpus(config)
    except GpuError as exc:
        if exc.retryable:
            raise
        unusable = GpuInventory(
            read_at=datetime.now(UTC), source="nvml", available=False, reason=str(exc)
        )
        check = GpuCheck(name="nvml", gpu=None, status="fail", message=str(exc))
        return GpuReport(inventory=unusable, processes=[], serving=[], checks=[check])
    if not inventory.available:
        return GpuReport(
            inventory=inventory,
            processes=[],
            serving=[],
            checks=evaluate(inventory, [], [], config.gpu),
        )
    processes = owners(inventory)
    pegged = any(
        (g.utilization_gpu_pct or 0) >= config.gpu.pegged_utilization_pct for g in inventory.gpus
    )
    serving = serving_load(config) if pegged else []
    return GpuReport(
        inventory=inventory,
        processes=processes,
        serving=serving,
        checks=evaluate(inventory, processes, serving, config.gpu),
    )


def preflight_on_box(
    config: SbxConfig,
    model_dir: Path,
    max_model_len: int,
    *,
    max_num_seqs: int = 1,
    kv_cache_dtype: str = "auto",
    gpu_index: int | None = None,
    replacing: str | None = None,
    gpu_memory_utilization: float | None = None,
    free_bytes: int | None = None,
) -> CapacityVerdict:
    """The capacity preflight against this box's GPUs (or ``free_bytes`` when given).

    vLLM's budget on each GPU is total × --gpu-memory-utilization (``gpu_memory_utilization``,
    else the ``replacing`` service's own, read from the compose model, else vLLM's default),
    provided what stays on the GPU lets it start (tasks/gpu/budget.py). With ``replacing``, what
    that compose service's processes hold is given back first: a model swap stops it. The GPU
    compared with is the one whose budget is largest among those where vLLM would start.
    """
    if free_bytes is not None:
        return preflight(
            model_dir, max_model_len, available_bytes=free_bytes,
            available_from="given free memory", max_num_seqs=max_num_seqs,
            kv_cache_dtype=kv_cache_dtype,
        )  # fmt: skip
    inventory = read_gpus(config)
    if gpu_memory_utilization is not None:
        utilization, source = gpu_memory_utilization, "--gpu-memory-utilization given"
    elif replacing:
        utilization, source = service_utilization(_compose_service(config, replacing), replacing)
    else:
        utilization, source = DEFAULT_GPU_MEMORY_UTILIZATION, "vLLM's default"
    held: dict[int, int] = {}
    unreported: dict[int, int] = {}  # processes whose memory NVML does not say (no privileges)
    if replacing:
        for p in owners(inventory):
            if p.service == replacing:
                held[p.gpu_index] = held.get(p.gpu_index, 0) + (p.used_memory_bytes or 0)
                unreported[p.gpu_index] = unreported.get(p.gpu_index, 0) + (
                    p.used_memory_bytes is None
                )

    def note(index: int) -> str | None:
        if not replacing:
            return None
        if index not in held:
            return f"no GPU process of {replacing} found on it"
        if unreported.get(index):
            return (
                f"the memory of {unreported[index]} process(es) of {replacing} is not reported "
                "by NVML and counts as staying"
            )
        return None

    budgets = [
        GpuBudget(
            gpu=f"GPU {g.index} ({g.name})",
            total_bytes=g.memory_total_bytes,
            utilization=utilization,
            utilization_from=source,
            used_bytes=g.memory_used_bytes,
            given_back_bytes=held.get(g.index, 0),
            given_back_by=replacing if g.index in held else None,
            note=note(g.index),
        )
        for g in inventory.gpus
        if gpu_index is None or g.index == gpu_index
    ]
    best = max(budgets, key=lambda b: (b.starts, b.requested_bytes, -b.others_bytes), default=None)
    return preflight(
        model_dir, max_model_len, budget=best, max_num_seqs=max_num_seqs,
        kv_cache_dtype=kv_cache_dtype,
    )  # fmt: skip


def _compose_service(config: SbxConfig, service: str) -> dict[str, Any] | None:
    """The service as ``docker compose config --format json`` resolves it (None when unreadable:
    the utilization then falls back to vLLM's default, and the line says so)."""
    from tasks.status import compose_for  # Docker's SDK only when a service is named

    try:
        done = compose_for(config).run("config", "--format", "json")
        spec = (json.loads(done.stdout).get("services") or {}).get(service)
    except (SbxError, ValueError):
        return None
    return spec if isinstance(spec, dict) else None


__all__ = [
    "GpuCheck",
    "GpuProcessOwner",
    "GpuReport",
    "check_gpus",
    "evaluate",
    "preflight_on_box",
]

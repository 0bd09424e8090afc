"""Container CPU and memory from the Docker stats API, one call per running container."""

from __future__ import annotations

from functools import partial
from typing import Any

from blocks.config import SbxConfig
from sbx.errors import SbxError
from tasks.clients.docker_engine import DockerEngine
from tasks.health.checks import Check, Outcome, failing, info, ok
from tasks.health.model import HealthContext, ServiceTarget

GiB = 1 << 30


def plan(config: SbxConfig, ctx: HealthContext, engine: DockerEngine | None) -> list[Check]:
    if engine is None:
        return []
    return [
        Check(
            "stats",
            target.name,
            partial(_observe, target, engine, config),
            parents=(f"container:{target.name}",),
        )
        for target in ctx.services.values()
        if target.container is not None
    ]


def usage(raw: dict[str, Any]) -> tuple[float | None, float, float]:
    """(CPU % of the whole box or None without a previous sample, memory bytes, limit bytes).

    Memory leaves out the reclaimable page cache (``inactive_file``), as ``docker stats`` does.
    """
    cpu, pre = raw.get("cpu_stats") or {}, raw.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - (
        pre.get("cpu_usage") or {}
    ).get("total_usage", 0)
    system_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    cpu_percent = cpu_delta / system_delta * 100 if system_delta > 0 and pre else None
    mem = raw.get("memory_stats") or {}
    details = mem.get("stats") or {}
    cache = details.get("inactive_file", details.get("total_inactive_file", 0))
    used = max(0.0, float(mem.get("usage", 0)) - float(cache))
    return cpu_percent, used, float(mem.get("limit", 0))


def _observe(target: ServiceTarget, engine: DockerEngine, config: SbxConfig) -> Outcome:
    assert target.container is not None
    if not target.container.running:
        return info(f"not measured: container is {target.container.state}")
    try:
        raw = engine.stats(target.container.id)
    except SbxError as exc:
        return failing(f"no stats: {exc}", "Check the Docker daemon ('docker stats').")
    cpu, used, limit = usage(raw)
    mem_percent = used / limit * 100 if limit else 0.0
    measures = {"memory_bytes": used, "memory_percent": mem_percent}
    if cpu is not None:
        measures["cpu_percent"] = cpu
    cpu_text = f"CPU {cpu:.1f} % of the box" if cpu is not None else "CPU not sampled yet"
    observed = f"{cpu_text}, memory {used / GiB:.2f} GiB = {mem_percent:.1f} % of its limit"
    limits = config.health
    if mem_percent > limits.memory_max_percent:
        return failing(
            f"{observed} (limit {limits.memory_max_percent:g} %)",
            "Find what grows ('docker stats'); raise the memory limit or restart the service.",
            **measures,
        )
    if cpu is not None and cpu > limits.cpu_max_percent:
        return failing(
            f"{observed} (limit {limits.cpu_max_percent:g} % CPU)",
            "Find the busy process ('docker top'); a pegged CPU starves the other services.",
            **measures,
        )
    return ok(observed, **measures)

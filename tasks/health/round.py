"""A round of health checks: the families, run concurrently, then dependency suppression.

Each family opens the clients it needs (httpx, docker-py, each with its own timeouts) and runs
its checks, one per service or resource, in a thread pool; the flow submits the families as
concurrent Prefect tasks, :func:`run_round` does the same without Prefect (benchmarks, tests).
A round therefore takes about as long as its slowest check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from blocks.config import SbxConfig
from sbx.errors import SbxError
from sbx.stopping import stoppable_pool
from tasks.clients.docker_engine import DockerEngine, connect
from tasks.clients.health_http import HealthHttp
from tasks.health import (
    backups,
    containers,
    disk,
    exposure,
    gpu,
    http_services,
    stats,
    verdicts,
)
from tasks.health.checks import Check, MultiCheck, failing, run_any
from tasks.health.context import DOCKER_TIMEOUT_S
from tasks.health.model import CheckResult, HealthContext

#: family -> what it checks (the Prefect task of each is named check-<family>)
FAMILIES: dict[str, str] = {
    "containers": "Docker and every configured container running and healthy",
    "services": "HTTP answers of worker, watchdog, qdrant and open-webui",
    "stats": "container CPU and memory (Docker stats API)",
    "disk": "free space of the stack's and the repository's filesystems",
    "backups": "age of the newest snapshot, and of the off-box copy's, against the RPO",
    "exposure": "published addresses beyond loopback, the proxy's TLS certificate",
    "verdicts": "the watchdog's verdict log",
    "gpu": "GPU memory, utilisation, temperature, errors (NVML; 'no GPU' is information)",
}
MAX_THREADS = 16


@contextlib.contextmanager
def _engine(ctx: HealthContext) -> Iterator[DockerEngine | None]:
    if ctx.docker_error:
        yield None
        return
    try:
        with connect(timeout_s=DOCKER_TIMEOUT_S) as engine:
            yield engine
    except SbxError:
        yield None


def plan_family(
    family: str, config: SbxConfig, ctx: HealthContext, repository: str, stack: contextlib.ExitStack
) -> Sequence[Check | MultiCheck]:
    """The checks of one family; clients it opens are closed with ``stack``."""
    if family == "containers":
        return containers.plan(config, ctx)
    if family == "services":
        http = stack.enter_context(HealthHttp(timeout_s=config.probe_timeout_s))
        return http_services.plan(config, ctx, http)
    if family == "stats":
        return stats.plan(config, ctx, stack.enter_context(_engine(ctx)))
    if family == "disk":
        return disk.plan(config, repository)
    if family == "backups":
        return backups.plan(config, repository)
    if family == "exposure":
        return exposure.plan(config, ctx)
    if family == "verdicts":
        return verdicts.plan(config)
    if family == "gpu":
        return gpu.plan(config)
    raise ValueError(f"unknown check family {family!r}")


def run_family(
    family: str, config: SbxConfig, ctx: HealthContext, repository: str
) -> list[CheckResult]:
    """Every check of one family, concurrently."""
    with contextlib.ExitStack() as stack:
        try:
            checks = plan_family(family, config, ctx, repository, stack)
        except Exception as exc:  # one family that cannot even start must not hide the others
            outcome = failing(
                f"the {family} checks could not start: {type(exc).__name__}: {exc}",
                "Run 'sbx health' by hand to see it; report it if it persists.",
            )
            crashed = Check(family, "plan", lambda: outcome)
            return run_any(crashed)
        if len(checks) <= 1:
            return [r for c in checks for r in run_any(c)]
        with stoppable_pool(min(MAX_THREADS, len(checks))) as pool:  # a SIGTERM does not wait
            return [r for results in pool.map(run_any, checks) for r in results]


def run_round(config: SbxConfig, ctx: HealthContext, repository: str) -> list[CheckResult]:
    """Every family concurrently, without Prefect; results with suppression applied."""
    with stoppable_pool(len(FAMILIES)) as pool:
        futures = [pool.submit(run_family, f, config, ctx, repository) for f in FAMILIES]
        results = [r for future in futures for r in future.result()]
    return suppress(results)


def suppress(results: list[CheckResult]) -> list[CheckResult]:
    """A failing check whose parent fails is reported as suppressed by the root cause.

    qdrant's container down → ``service:qdrant`` is "suppressed by container:qdrant": one
    finding, one alert. Parents come from the check kinds (a service's HTTP check depends on its
    container, a container on Docker) and compose ``depends_on``.
    """
    by_id = {r.id: r for r in results}

    def cause(check_id: str, seen: frozenset[str]) -> str | None:
        for parent in by_id[check_id].parents:
            found = by_id.get(parent)
            if found is not None and found.state == "failing" and parent not in seen:
                return cause(parent, seen | {parent}) or parent
        return None

    out = []
    for result in results:
        root = cause(result.id, frozenset({result.id})) if result.state == "failing" else None
        out.append(
            result
            if root is None
            else result.model_copy(update={"state": "suppressed", "suppressed_by": root})
        )
    return out

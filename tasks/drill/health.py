"""Health of the scratch project: the service checks of ``sbx health``, aimed at its containers.

The same check code as the health flow (tasks/health): the containers family (every configured
container running, healthy where it has a check) and the services family (model listed and a
one-token completion, Qdrant ready with its collections, Open WebUI's login page), read against
the scratch project's compose model and published ports. Host-wide families (disk, GPU,
backups, exposure) describe the box, not the restored copy, and are left to ``sbx health``.
"""

from __future__ import annotations

import time

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import SbxConfig
from tasks.health.context import read_context
from tasks.health.model import CheckResult, HealthContext, ServiceTarget
from tasks.health.round import run_family, suppress

FAMILIES = ("containers", "services")
POLL_S = 2.0


def health_round(config: SbxConfig) -> tuple[list[CheckResult], HealthContext]:
    ctx = read_context(config)
    results = [r for family in FAMILIES for r in run_family(family, config, ctx, "")]
    return suppress([*results, *_not_yet_healthy(ctx)]), ctx


def _not_yet_healthy(ctx: HealthContext) -> list[CheckResult]:
    """A drill's "healthy" means healthy: a container whose own HEALTHCHECK still says
    "starting" (or anything but "healthy") fails the round, as in the upgrade gate, although
    `sbx health` shows it as running."""
    failing = []
    for name, target in sorted(ctx.services.items()):
        info = target.container
        if info is None or not info.running or info.health in (None, "healthy"):
            continue
        failing.append(
            CheckResult(
                id=f"container-health:{name}",
                family="container",
                target=name,
                state="failing",
                observed=f"running, but its Docker healthcheck says {info.health}, not healthy",
                next_step=f"Wait for it, or read its log: 'docker logs {info.name}'.",
            )
        )
    return failing


@task(name="wait-scratch-healthy", cache_policy=NO_CACHE)
def wait_healthy(
    config: SbxConfig, timeout_s: float
) -> tuple[bool, list[CheckResult], HealthContext]:
    """Health rounds until every check passes or ``timeout_s`` is over; the last round's results."""
    deadline = time.monotonic() + timeout_s
    while True:
        results, ctx = health_round(config)
        healthy = not any(r.failed for r in results)
        if healthy or time.monotonic() >= deadline:
            return healthy, results, ctx
        time.sleep(POLL_S)


def service_target(ctx: HealthContext, service: str | None) -> ServiceTarget | None:
    """The scratch service whose data ``service`` names (a part's service): its URL and the
    keys it expects (the restored compose file's)."""
    if service is None:
        return None
    for name, target in ctx.services.items():
        if service in (name, target.config.compose_service):
            return target
    return None

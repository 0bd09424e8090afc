"""Docker itself, and every configured container: running, and healthy where it has a check."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from blocks.config import SbxConfig
from tasks.health.checks import Check, Outcome, failing, info, ok
from tasks.health.model import HealthContext, ServiceTarget

ENGINE = "docker:engine"


def container_id(target: ServiceTarget) -> str:
    return f"container:{target.name}"


def plan(config: SbxConfig, ctx: HealthContext) -> list[Check]:
    checks = [Check("docker", "engine", lambda: _engine(ctx))]
    if ctx.compose_error:
        checks.append(Check("compose", "project", lambda: _compose(ctx)))
    checks += [
        Check("container", t.name, partial(_container, t, ctx), parents=(ENGINE,))
        for t in ctx.services.values()
    ]
    return checks


def _engine(ctx: HealthContext) -> Outcome:
    if ctx.docker_error:
        return failing(ctx.docker_error, "Start Docker ('systemctl start docker').")
    if ctx.compose_error:
        return info("not asked: the compose project could not be read")
    return ok(f"answers; project {ctx.project}")


def _compose(ctx: HealthContext) -> Outcome:
    return failing(ctx.compose_error or "", "Fix the compose files, then 'sbx health' again.")


def _container(target: ServiceTarget, ctx: HealthContext) -> Outcome:
    svc = target.config
    required = svc.required
    if not target.in_compose:
        return failing(
            f"service '{svc.compose_service}' is not in the compose file",
            f"Add it, or set services.{target.name}.enabled = false in sbx.toml.",
        )
    if ctx.docker_error:
        return failing("unknown: Docker does not answer", "Start Docker.")
    info_ = target.container
    start = f"Start it: 'docker compose up -d {svc.compose_service}' in {ctx.stack_dir}."
    if info_ is None:
        if not required:
            return info("optional service: no container")
        return failing("no container", start)
    if not info_.running:
        exit_note = f", exit code {info_.exit_code}" if info_.exit_code else ""
        observed = f"container {info_.name} is {info_.state}{exit_note}"
        if not required:
            return info(f"optional service: {observed}")
        return failing(observed, f"{start} Check its logs: 'docker logs {info_.name}'.")
    up = ""
    if info_.started_at is not None:
        up_s = (datetime.now(UTC) - info_.started_at).total_seconds()
        up = f", up {_duration(up_s)}"
    restarts = f", {info_.restart_count} restarts" if info_.restart_count else ""
    measures = {"restarts": float(info_.restart_count)}
    if info_.health == "unhealthy":
        return failing(
            f"running but its Docker healthcheck reports unhealthy{up}{restarts}",
            f"Read why: 'docker inspect --format \"{{{{json .State.Health}}}}\" {info_.name}'.",
            **measures,
        )
    health = f" ({info_.health})" if info_.health else ""
    return Outcome("ok", f"running{health}{up}{restarts}", measures=measures)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"

"""Shared by the health tests: a webhook receiver in a thread, report and target builders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from blocks.config import ServiceConfig
from tasks.clients.docker_engine import ContainerInfo, PublishedPort
from tasks.health.model import CheckResult, HealthReport, ServiceTarget


def result(
    check_id: str, state: str = "ok", parents: list[str] | None = None, **extra: Any
) -> CheckResult:
    family, _, target = check_id.partition(":")
    return CheckResult(
        id=check_id,
        family=family,
        target=target,
        state=state,  # type: ignore[arg-type]
        observed=extra.pop("observed", f"{check_id} is {state}"),
        next_step=extra.pop("next_step", "do the next thing" if state == "failing" else None),
        parents=parents or [],
        **extra,
    )


def report(*checks: CheckResult, stack: Path = Path("/srv/stack")) -> HealthReport:
    return HealthReport(
        stack_dir=stack,
        project="stack",
        host="box",
        started_at=datetime.now(UTC),
        duration_s=0.1,
        checks=list(checks),
    )


def container(
    name: str, *, state: str = "running", ports: list[tuple[str, int, int]] | None = None
) -> ContainerInfo:
    return ContainerInfo(
        id=f"id-{name}",
        name=f"stack-{name}-1",
        service=name,
        state=state,
        health=None,
        exit_code=0,
        restart_count=0,
        started_at=datetime.now(UTC),
        image_ref="img",
        image_id="sha256:0",
        repo_digests=[],
        ports=[
            PublishedPort(container_port=c, protocol="tcp", host_ip=ip, host_port=h)
            for ip, h, c in ports or []
        ],
    )


def target(
    name: str,
    kind: str,
    *,
    url: str | None = None,
    info: ContainerInfo | None = None,
    **config: Any,
) -> ServiceTarget:
    return ServiceTarget(
        name=name,
        config=ServiceConfig(compose_service=name, kind=kind, **config),  # type: ignore[arg-type]
        in_compose=True,
        depends_on=[],
        container=info,
        url=url,
    )

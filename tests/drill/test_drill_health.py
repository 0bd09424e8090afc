"""A drill's health means healthy: "running (starting)" is not (#23 finding 9)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from blocks.config import SbxConfig, ServiceConfig
from tasks.clients.docker_engine import ContainerInfo
from tasks.drill import health
from tasks.health.model import HealthContext, ServiceTarget


def worker(docker_health: str | None) -> ServiceTarget:
    info = ContainerInfo(
        id="id-worker",
        name="scratch-worker-1",
        service="worker",
        state="running",
        health=docker_health,
        exit_code=0,
        restart_count=0,
        started_at=datetime.now(UTC),
        image_ref="img",
        image_id="sha256:0",
        repo_digests=[],
        ports=[],
    )
    return ServiceTarget(
        name="worker",
        config=ServiceConfig(compose_service="worker", kind="openai"),  # type: ignore[arg-type]
        in_compose=True,
        depends_on=[],
        container=info,
        url=None,
    )


@pytest.mark.parametrize(
    ("docker_health", "healthy"),
    [("starting", False), ("unhealthy", False), ("healthy", True), (None, True)],
)
def test_a_starting_container_is_not_healthy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_health: str | None, healthy: bool
) -> None:
    ctx = HealthContext(
        stack_dir=tmp_path, project="scratch", services={"worker": worker(docker_health)}
    )
    monkeypatch.setattr(health, "read_context", lambda config: ctx)
    monkeypatch.setattr(health, "run_family", lambda *a: [])  # every other check passes
    got, results, _ = health.wait_healthy.fn(SbxConfig(stack_dir=tmp_path), 0)
    assert got is healthy, [r.observed for r in results]
    if not healthy:
        (failing,) = results
        assert str(docker_health) in failing.observed and failing.target == "worker"

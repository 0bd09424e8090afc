"""A health round against services that trickle, stall, half-answer or speak no HTTP: every
check fails in bounded time, the round ends (#23 finding 2: `sbx health` hung 11 minutes)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from faults.figures import FIGURES

from blocks.config import SbxConfig, ServiceConfig
from tasks.health.model import HealthContext, ServiceTarget
from tasks.health.round import run_family

from .servers import hostile_server

TIMEOUT_S = 0.5


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with hostile_server() as url:
        yield url


def target(name: str, kind: str, url: str, health_path: str = "/health") -> ServiceTarget:
    return ServiceTarget(
        name=name,
        config=ServiceConfig(compose_service=name, kind=kind, health_path=health_path),  # type: ignore[arg-type]
        in_compose=True,
        depends_on=[],
        container=None,
        url=url,
    )


@pytest.mark.parametrize("path", ["/trickle", "/silent", "/slowheaders", "/half", "/garbage"])
def test_the_services_round_ends_on_time(
    tmp_path: Path, base: str, path: str, request: pytest.FixtureRequest
) -> None:
    FIGURES.add(request.node.name, hostile_examples=1)
    url = base + path
    services = {
        "worker": target("worker", "openai", url),
        "qdrant": target("qdrant", "qdrant", url, "/readyz"),
        "open-webui": target("open-webui", "webui", url),
    }
    config = SbxConfig(
        stack_dir=tmp_path,
        probe_timeout_s=TIMEOUT_S,
        health={"completion_timeout_s": TIMEOUT_S, "models": {"worker": "m"}},  # type: ignore[arg-type]
    )
    ctx = HealthContext(stack_dir=tmp_path, project="p", services=services)
    started = time.monotonic()
    results = run_family("services", config, ctx, "")
    took = time.monotonic() - started
    # concurrent checks, each at most two answers of at most 2 * TIMEOUT_S
    assert took < 4 * TIMEOUT_S + 1.5, f"the round took {took:.1f} s"
    assert {r.target: r.state for r in results} == dict.fromkeys(services, "failing"), results

"""The upgrade gate's soak window ends on time against a trickling worker (#23 finding 2: the
gate was still "gating" after 10 minutes)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from faults.figures import FIGURES

from blocks.config import SbxConfig, ServiceConfig
from tasks.health.model import HealthContext, ServiceTarget
from tasks.upgrade import gate

from .servers import hostile_server


@pytest.mark.parametrize("path", ["/trickle", "/slowheaders"])
def test_the_soak_window_ends_on_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, request: pytest.FixtureRequest
) -> None:
    FIGURES.add(request.node.name, hostile_examples=1)
    with hostile_server() as base:
        worker = ServiceTarget(
            name="worker",
            config=ServiceConfig(compose_service="worker", kind="openai"),  # type: ignore[arg-type]
            in_compose=True,
            depends_on=[],
            container=None,
            url=base + path,
        )
        ctx = HealthContext(stack_dir=tmp_path, project="p", services={"worker": worker})
        monkeypatch.setattr(gate, "read_context", lambda config: ctx)
        # the configured timeouts (probe 10 s, completion 60 s) are far longer than the window
        config = SbxConfig(
            stack_dir=tmp_path,
            probe_timeout_s=10,
            upgrade={"soak_window_s": 2, "interval_s": 0.5, "passes": 2},  # type: ignore[arg-type]
            health={"completion_timeout_s": 60},  # type: ignore[arg-type]
        )
        started = time.monotonic()
        result = gate.run_gate(config, ["worker"])
        took = time.monotonic() - started
    assert not result.passed
    assert took < 2 * 2 + 2, f"a 2 s soak window took {took:.1f} s"

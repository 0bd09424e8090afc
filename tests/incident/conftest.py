"""The freeze/preserve tests' running stack: one bring-up shared by their modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from bed import RunningStack
from bed.stack import stop_stack

from .incident_bed import prepare_incident_stack


@pytest.fixture(scope="session")
def incident_stack(
    standin_images: dict[str, str], run_id: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningStack]:
    """``worker`` and ``proxy`` (on 0.0.0.0) of a copy of the example stack, up and healthy."""
    stack = prepare_incident_stack(tmp_path_factory.mktemp("incident") / "stack", run_id)
    up = ("up", "-d", "--wait", "--wait-timeout", "150", "worker", "proxy")
    try:
        if stack.compose(*up, check=False, timeout=240).returncode != 0:
            # a healthcheck (3 s timeout) can miss on a machine at load 25: unhealthy is not
            # final for Docker, so one more wait; a second failure fails with compose's output
            stack.compose(*up, timeout=240)
        yield stack
    finally:
        stop_stack(stack)

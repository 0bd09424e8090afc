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
    try:
        stack.compose("up", "-d", "--wait", "--wait-timeout", "150", "worker", "proxy", timeout=240)
        yield stack
    finally:
        stop_stack(stack)

"""Incident tests: a running stack with the proxy (freeze, preserve), a files-only stack and the
sbx CLI in a subprocess on the test's Prefect server (blast-radius, contain)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from bed import RunningStack
from bed.stack import create_mount_sources, stop_stack

from .incident_bed import close_current, prepare_incident_stack

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"
Sbx = Callable[..., CompletedProcess[str]]


@pytest.fixture
def files_stack(tmp_path: Path, run_id: str) -> Path:
    """The example stack's files, no containers (its compose project name is unique)."""
    dest = tmp_path / f"files-{run_id}"
    shutil.copytree(
        EXAMPLE, dest, symlinks=True,
        ignore=shutil.ignore_patterns("open-webui", "qdrant", ".sbx", "*.log", ".env"),
    )  # fmt: skip
    return create_mount_sources(dest)


@pytest.fixture
def run_sbx(prefect_server: str) -> Sbx:
    """The sbx CLI in a subprocess, on the test's Prefect server (never a temporary one)."""

    def run(
        *args: str, timeout: float = 300, env: dict[str, str] | None = None
    ) -> CompletedProcess[str]:
        full = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
        full.update(PREFECT_API_URL=prefect_server, COLUMNS="200", **(env or {}))
        done = subprocess.run(
            [sys.executable, "-m", "sbx", *args],
            capture_output=True, text=True, env=full, timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert "Starting temporary server" not in done.stderr, done.stderr
        return done

    return run


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


@pytest.fixture
def frozen_clean(incident_stack: RunningStack) -> Iterator[RunningStack]:
    """Each test opens its own incident and leaves the proxy running for the next one."""
    close_current(incident_stack.path)
    yield incident_stack
    incident_stack.compose("start", "proxy")
    close_current(incident_stack.path)

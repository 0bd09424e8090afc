"""Drill tests: the sbx CLI on the test's Prefect server, and Docker state read for comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from subprocess import CompletedProcess

import pytest
from drill_helpers import Sbx


@pytest.fixture
def run_sbx(prefect_server: str) -> Sbx:
    """The sbx CLI in a subprocess, on the test's Prefect server (never a temporary one)."""

    def run(
        *args: str, timeout: float = 600, env: dict[str, str] | None = None
    ) -> CompletedProcess[str]:
        extra = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
        env.update(PREFECT_API_URL=prefect_server, COLUMNS="200", **extra)
        done = subprocess.run(
            [sys.executable, "-m", "sbx", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        assert "Starting temporary server" not in done.stderr, done.stderr
        return done

    return run

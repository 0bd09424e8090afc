"""Health tests: the stand-in servers as local processes, and the sbx CLI against Prefect."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from subprocess import CompletedProcess

import pytest
from standins.conftest import start_standin  # noqa: F401  (a fixture, used by name)

Sbx = Callable[..., CompletedProcess[str]]


@pytest.fixture
def run_sbx(prefect_server: str) -> Sbx:
    """The sbx CLI in a subprocess, on the test's Prefect server (never a temporary one)."""

    def run(*args: str, timeout: float = 300) -> CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API", "SBX_"))}
        env.update(PREFECT_API_URL=prefect_server, COLUMNS="200")
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

"""Fixtures of the log rotation tests: a writer process (killed at teardown)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from log_helpers import WRITER, StartWriter


@pytest.fixture
def start_writer() -> Iterator[StartWriter]:
    """Start writer.py as a separate process; it is killed at teardown if still running."""
    started: list[subprocess.Popen[str]] = []

    def start(path: Path, rate: float, seconds: float) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WRITER), str(path), str(rate), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

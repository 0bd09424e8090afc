"""Fixtures of the flow tests: a files-only copy of the example stack, a CLI pointed at Prefect."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from bed.stack import create_mount_sources
from helpers import cli_env, sbx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"

Sbx = Callable[..., CompletedProcess[str]]


@pytest.fixture
def files_stack(tmp_path: Path, run_id: str) -> Path:
    """The example stack's files, no containers (its compose project name is unique)."""
    dest = tmp_path / f"files-{run_id}"
    shutil.copytree(
        EXAMPLE,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("open-webui", "qdrant", ".sbx", "*.log"),
    )
    (dest / "data" / "qdrant" / "storage").mkdir(parents=True)
    (dest / "data" / "qdrant" / "storage" / "segment.bin").write_bytes(b"q" * 50_000)
    return create_mount_sources(dest)


@pytest.fixture
def run_sbx(prefect_server: str) -> Sbx:
    """sbx CLI in a subprocess, using the test's Prefect server (never a temporary one)."""

    def run(
        *args: str, timeout: float = 300, env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> CompletedProcess[str]:
        done = sbx(*args, env=cli_env(prefect_server, env), timeout=timeout, cwd=cwd)
        assert "Starting temporary server" not in done.stderr, done.stderr
        # the command's events went out before it exited (sbx.cli._flush_prefect_events)
        assert "Still processing items" not in done.stderr, done.stderr
        return done

    return run

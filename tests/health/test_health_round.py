"""A whole round on a files-only stack with Docker unreachable: one root cause, the rest follows."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from blocks.config import load_config
from tasks.health.context import read_context
from tasks.health.round import run_round

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"


def test_docker_down_is_one_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = tmp_path / "files-only"
    shutil.copytree(EXAMPLE, stack, ignore=shutil.ignore_patterns("images", "data"))
    (stack / "sbx.toml").write_text(f'[repository]\nlocation = "{tmp_path / "repo"}"\n')
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-docker.sock'}")
    config = load_config(stack)
    ctx = read_context(config)  # compose reads the files without a daemon
    assert ctx.docker_error and "Docker is not reachable" in ctx.docker_error
    results = {r.id: r for r in run_round(config, ctx, config.repository.location)}
    assert [r.id for r in results.values() if r.state == "failing"] == ["docker:engine"]
    for name in ("worker", "watchdog", "qdrant", "open-webui"):
        assert results[f"container:{name}"].suppressed_by == "docker:engine"
        assert results[f"service:{name}"].suppressed_by == "docker:engine"
    assert results["service:open-webui"].parents == [
        "container:open-webui",
        "container:qdrant",
        "container:worker",
    ]  # compose depends_on
    assert results["disk:stack"].state == "ok"
    assert results["backup:newest-snapshot"].state == "info"


def test_a_family_that_cannot_start_is_one_failing_check(tmp_path: Path) -> None:
    from blocks.config import SbxConfig
    from tasks.health.model import HealthContext
    from tasks.health.round import run_family

    ctx = HealthContext(stack_dir=tmp_path, project="p", services={})
    (got,) = run_family("no-such-family", SbxConfig(stack_dir=tmp_path), ctx, str(tmp_path))
    assert got.id == "no-such-family:plan" and got.state == "failing"
    assert "could not start: ValueError" in got.observed

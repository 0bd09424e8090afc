"""Fixtures of the off-box tests: small repositories (from the repository tests), a files-only
stack, the CLI against the test Prefect server, age keys, and the remote (a directory or S3)."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from repository.conftest import memory_repo, repo, repo_dir, src

from offbox.keys import AgeKey, make_key

# the flow tests' helpers (tree comparison, the CLI runner) live in a folder that is no package
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flows"))
from bed.stack import create_mount_sources
from helpers import cli_env, sbx

__all__ = ["memory_repo", "repo", "repo_dir", "src"]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "stack"
Sbx = Callable[..., CompletedProcess[str]]


@pytest.fixture
def files_stack(tmp_path: Path, run_id: str) -> Path:
    """The example stack's files, no containers."""
    dest = tmp_path / f"files-{run_id}"
    shutil.copytree(
        EXAMPLE,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("open-webui", "qdrant", ".sbx", "*.log"),
    )
    return create_mount_sources(dest)


@pytest.fixture
def age_key(tmp_path: Path) -> AgeKey:
    return make_key(tmp_path / "keys")


@pytest.fixture
def run_sbx(prefect_server: str) -> Sbx:
    """sbx CLI in a subprocess, using the test's Prefect server."""

    def run(
        *args: str, timeout: float = 300, env: dict[str, str] | None = None
    ) -> CompletedProcess[str]:
        done = sbx(*args, env=cli_env(prefect_server, env), timeout=timeout)
        assert "Starting temporary server" not in done.stderr, done.stderr
        return done

    return run


@dataclass
class Remote:
    """Where a test's off-box copy goes, and every (name, body) stored there."""

    url: str
    env: dict[str, str]
    read_all: Callable[[], dict[str, bytes]]


def _dir_remote(tmp_path: Path) -> Remote:
    root = tmp_path / "offbox"

    def read_all() -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    return Remote(str(root), {}, read_all)


@pytest.fixture(params=["dir", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Remote]:
    if request.param == "dir":
        yield _dir_remote(tmp_path)
        return
    s3_server = request.getfixturevalue("s3_server")
    bucket = s3_server.make_bucket()
    client = s3_server.client()

    def read_all() -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
                out[item["Key"]] = body
        return out

    yield Remote(f"s3://{bucket}/box1", s3_server.env(), read_all)

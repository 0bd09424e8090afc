"""Shared by the drill tests: seeding Qdrant, reading containers, small repositories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess
from typing import TYPE_CHECKING

from sbx.repository import Repository, SnapshotManifest

if TYPE_CHECKING:
    from docker import DockerClient

DRILL_LABEL = "sbx.drill"
Sbx = Callable[..., CompletedProcess[str]]


def live_containers(docker: DockerClient, project: str) -> dict[str, tuple[str, str]]:
    """name -> (container id, State.StartedAt) of every container of ``project``."""
    found = docker.containers.list(
        all=True, filters={"label": f"com.docker.compose.project={project}"}
    )
    return {c.name: (c.id, c.attrs["State"]["StartedAt"]) for c in found}


def drill_containers(docker: DockerClient) -> list[str]:
    """Names of any container a drill started (they carry the drill label), in any state."""
    return [c.name for c in docker.containers.list(all=True, filters={"label": DRILL_LABEL})]


def small_snapshot(repo: Repository, src: Path, text: str) -> SnapshotManifest:
    (src / "notes").mkdir(parents=True, exist_ok=True)
    (src / "notes" / "note.md").write_text(text)
    with repo.writer(command="pytest") as writer:
        writer.begin_snapshot(previous=None, tags={}, stack_dir=src)
        with writer.part("notes", "copy") as part:
            part.add_tree(src / "notes", "notes")
        return writer.commit(box={})

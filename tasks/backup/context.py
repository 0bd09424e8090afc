"""What capturing a part needs to know about the box, and adding a part's paths to it.

Shared by the capture task (tasks/backup/capture.py) and its methods (tasks/backup/methods.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from blocks.config import PartConfig, SbxConfig
from sbx.repository import PartWriter
from tasks.status import ServiceStatus, StackStatus

if TYPE_CHECKING:
    from tasks.backup.sources import Source


@dataclass(frozen=True)
class CaptureContext:
    """What capturing needs to know about the box (status is None without Docker)."""

    config: SbxConfig
    status: StackStatus | None
    #: part name -> what the compose model names for it (tasks/backup/sources.py)
    sources: dict[str, list[Source]] = field(default_factory=dict)
    #: why the compose model could not be read (the configs part fails with it), or None
    compose_problem: str | None = None

    @property
    def stack_dir(self) -> Path:
        return self.config.stack_dir

    def service(self, name: str | None) -> ServiceStatus | None:
        if self.status is None or name is None:
            return None
        svc_config = self.config.services.get(name)
        compose_name = svc_config.compose_service if svc_config else name
        for svc in self.status.services:
            if svc.compose_service == compose_name:
                return svc
        return None


def path_exists(path: Path) -> bool:
    """True for a path or a link, even a dangling one."""
    return path.exists() or path.is_symlink()


def add_paths(
    out: PartWriter,
    stack_dir: Path,
    paths: list[str],
    part: PartConfig,
    *,
    sha256: bool = False,
    exclude_paths: dict[str, set[str]] | None = None,
) -> None:
    """Add each of ``paths``; ``exclude_paths[rel]``: exact paths below ``rel`` left out."""
    for rel in paths:
        out.add_tree(
            stack_dir / rel,
            rel,
            include=part.include,
            exclude=part.exclude,
            exclude_paths=(exclude_paths or {}).get(rel, ()),
            sha256=sha256,
        )


def stop_writers(stack: ExitStack, ctx: CaptureContext, services: Iterable[str], part: str) -> None:
    """Stop ``services`` (compose names) until ``stack`` closes, which starts them again — also
    on failure. Without Docker (no status), or without a container, nothing runs that could be
    stopped."""
    from tasks.clients.docker_engine import connect as connect_docker
    from tasks.services import stopped_service

    if ctx.status is None:
        return
    # a service without a container writes nothing: copied as it is
    present = {s.compose_service for s in ctx.status.services if s.container is not None}
    names = sorted(set(services) & present)
    if not names:
        return
    engine = stack.enter_context(connect_docker())
    for service in names:
        stack.enter_context(
            stopped_service(
                engine,
                ctx.stack_dir,
                ctx.status.project,
                service,
                reason=f"sbx backup: cold copy of part {part}",
            )
        )

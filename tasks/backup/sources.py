"""Which part each thing the compose model names goes into (design.md, "Parts of a backup").

The configured parts (``DEFAULT_PARTS`` and ``[parts]``) are only the grouping: every bind mount
of every service, every named volume, every compose file in use, ``.env`` and every ``env_file:``
is captured, whatever the parts' paths say. A source inside the stack directory goes to the
part whose paths cover it; otherwise compose's files go to ``configs`` and bind mounts to
``mounts``, both stored at their stack-relative path. A source outside the stack goes to
``outside``, stored as ``outside/<its absolute path>``; a named volume to ``volumes``, stored as
``volumes/<volume name>/`` (read and restored through Docker: tasks/backup/volumes.py). That is
also the layout ``sbx restore --to DIR`` writes.

Kernel paths (``/proc``, ``/sys``, ``/dev``, ``/run``, ``/var/run``) and Docker's socket are
runtime plumbing, not state: they are listed as not captured, never walked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from blocks.config import SbxConfig
from sbx.errors import ComposeError, StackError
from tasks.clients.compose import COMPOSE_FILE_NAMES, ComposeModel
from tasks.clients.compose_files import ComposeFileRef

SourceKind = Literal["bind", "volume", "compose-file", "dotenv", "env-file"]
OUTSIDE = "outside"
VOLUMES = "volumes"
MOUNTS = "mounts"
CONFIGS = "configs"
FILLED_PARTS = (VOLUMES, OUTSIDE, MOUNTS)  # parts only the compose model fills, shared by services
RUNTIME_PATHS = ("/proc", "/sys", "/dev", "/run", "/var/run")


class Source(BaseModel):
    """One thing the compose model names, and where it goes in the snapshot."""

    model_config = ConfigDict(frozen=True)

    kind: SourceKind
    origin: str  # who names it: "service app: /data", "compose file in use", ...
    location: str  # absolute host path, or the Docker volume's name
    stored_as: str  # path inside the snapshot (the same below a --to directory)
    part: str
    required: bool = True
    services: list[str] = []  # compose services that mount it (stopped around a restore)
    writers: list[str] = []  # those that mount it read-write (stopped for its capture)
    image: str | None = None  # a volume's helper image: the image of a service that mounts it
    note: str | None = None  # why it is listed but not captured

    @property
    def outside(self) -> bool:
        return self.stored_as.startswith(f"{OUTSIDE}/")


def plan_sources(
    config: SbxConfig, model: ComposeModel, files: list[ComposeFileRef]
) -> list[Source]:
    """Every source of the compose model with its part (see the module docstring)."""
    sources: dict[str, Source] = {}
    for ref in files:
        kind: SourceKind = ref.kind  # type: ignore[assignment]
        src = _file_source(config, kind, ref.path, ref.origin, ref.required, CONFIGS)
        sources.setdefault(src.location, src)
    for name, service in sorted(model.services.items()):
        for mount in service.mounts:
            origin = f"service {name}: {mount.target}"
            if mount.type == "volume":
                key = f"volume:{mount.source}"
                if key not in sources:
                    sources[key] = Source(
                        kind="volume",
                        origin=origin,
                        location=mount.source,
                        stored_as=f"{VOLUMES}/{mount.source}",
                        part=VOLUMES,
                        image=service.image,
                    )
            else:
                key = mount.source
                if key not in sources:
                    path = Path(mount.source)
                    sources[key] = _file_source(config, "bind", path, origin, True, MOUNTS)
            sources[key] = _mounted_by(sources[key], name, writes=not mount.read_only)
    return list(sources.values())


def _mounted_by(src: Source, service: str, *, writes: bool) -> Source:
    services = src.services if service in src.services else [*src.services, service]
    writers = src.writers if not writes or service in src.writers else [*src.writers, service]
    return src.model_copy(update={"services": services, "writers": writers})


def _file_source(
    config: SbxConfig, kind: SourceKind, path: Path, origin: str, required: bool, fallback: str
) -> Source:
    path = Path(os.path.normpath(path))
    stack = Path(os.path.normpath(config.stack_dir))
    note = None
    if any(path.is_relative_to(p) for p in RUNTIME_PATHS) or path.name == "docker.sock":
        note = "not captured: runtime path (kernel, socket), not state"
    elif path == stack:
        note = "not captured separately: the stack directory, captured as its parts"
    elif stack.is_relative_to(path):
        # '/:/host:ro' or '/srv:/srv' around a stack in /srv/stack: walking it would copy the
        # whole disk (and the repository), swapping it back would move the stack itself
        note = "NOT captured: it holds the stack directory; give what it needs its own mount"
    if note:
        return Source(
            kind=kind, origin=origin, location=str(path), stored_as="", part=MOUNTS, note=note
        )
    if path.is_relative_to(stack):
        rel = path.relative_to(stack).as_posix()
        part = covering_part(config, rel) or fallback
        return Source(
            kind=kind,
            origin=origin,
            location=str(path),
            stored_as=rel,
            part=part,
            required=required,
        )
    return Source(
        kind=kind,
        origin=origin,
        location=str(path),
        stored_as=f"{OUTSIDE}/{path.as_posix().lstrip('/')}",
        part=OUTSIDE,
        required=required,
    )


def covering_part(config: SbxConfig, rel: str) -> str | None:
    """The enabled part one of whose paths is ``rel`` or a directory above it."""
    for name, part in config.enabled_parts().items():
        for path in part.paths:
            if rel == path or rel.startswith(f"{path.rstrip('/')}/"):
                return name
    return None


def covered_below(config: SbxConfig, rel: str) -> set[str]:
    """Paths of other parts (and sbx's own ``.sbx``) below the stack directory ``rel``,
    relative to it: a mount of a whole directory leaves them to their own parts."""
    inner = {".sbx"} | {p for part in config.enabled_parts().values() for p in part.paths}
    if rel in (".", ""):
        return {p.rstrip("/") for p in inner}
    prefix = f"{rel.rstrip('/')}/"
    return {p[len(prefix) :].rstrip("/") for p in inner if p.startswith(prefix)}


def sources_by_part(sources: list[Source]) -> dict[str, list[Source]]:
    grouped: dict[str, list[Source]] = {}
    for src in sources:
        grouped.setdefault(src.part, []).append(src)
    return grouped


def read_sources(config: SbxConfig) -> tuple[list[Source], str | None]:
    """The compose model's sources, or none and why when the model cannot be read.

    A stack without any compose file has nothing to discover (its parts are as configured);
    a compose file compose cannot read is a problem the ``configs`` part reports.
    """
    from tasks.clients.compose_files import files_in_use
    from tasks.status import compose_for

    try:
        model = compose_for(config).model()
        files = files_in_use(config.stack_dir, config.compose.files)
    except (StackError, ComposeError) as exc:
        if isinstance(exc, ComposeError) or _has_compose_file(config):
            return [], str(exc)
        return [], None
    return plan_sources(config, model, files), None


def _has_compose_file(config: SbxConfig) -> bool:
    return any((config.stack_dir / name).is_file() for name in COMPOSE_FILE_NAMES)

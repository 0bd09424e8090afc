"""Capturing the parts of a backup, each by its consistency method (design.md, "Parts").

One Prefect task run per part (never per file). A part none of whose paths exist is recorded as
skipped; a part that fails after its retries is recorded as failed with the reason, and the
flow reports it — the other parts are still stored. A failure of the repository's storage
(disk full, S3 refusing) is no part's failure: it ends the backup, no snapshot is written.
Methods:

    copy, growing-log  files as they are (a file that grows while read is recorded as read)
    immutable          models: SHA256SUMS per model directory written or checked
    qdrant-snapshot    Qdrant's snapshot API when it answers; else stop, copy, start
    sqlite-online      SQLite online backup of every database, other files copied
    stop-copy          stop the part's service, copy, start it again
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import ConsistencyMethod, PartConfig, SbxConfig
from sbx.errors import SbxError, StorageError
from sbx.progress import reporter
from sbx.repository import PartRecord, PartWriter, SnapshotWriter
from tasks.status import ServiceStatus, StackStatus


@dataclass(frozen=True)
class CaptureContext:
    """What capturing needs to know about the box (status is None without Docker)."""

    config: SbxConfig
    status: StackStatus | None

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


@task(name="capture-part", task_run_name="capture-{name}", cache_policy=NO_CACHE)
def capture_part(
    writer: SnapshotWriter, name: str, part: PartConfig, ctx: CaptureContext, of: int = 1
) -> PartRecord:
    """Capture one part into the open snapshot; returns its record (captured/skipped/failed)."""
    from tasks import capture_methods

    reporter().begin(name, of)  # `of`: how many parts this backup captures (progress)
    with writer.part(name, part.method.value) as out:
        present = [p for p in part.paths if _exists(ctx.stack_dir / p)]
        if not present:
            out.skip(f"not present: none of {', '.join(part.paths)} in {ctx.stack_dir}")
            reporter().done(name, "skipped")
            return out.close()
        try:
            capture_methods.METHODS[part.method](out, present, part, ctx)
        except StorageError:
            raise  # the repository failed, not this part: every later part would fail too
        except SbxError as exc:
            out.fail(str(exc))
    record = out.close()
    reporter().done(name, f"{record.status}, {record.stats.files} files")
    return record


def _exists(path: Path) -> bool:
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


__all__ = ["CaptureContext", "ConsistencyMethod", "add_paths", "capture_part"]

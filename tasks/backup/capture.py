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

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import ConsistencyMethod, PartConfig
from sbx.errors import SbxError, StorageError
from sbx.progress import reporter
from sbx.repository import PartRecord, SnapshotWriter
from tasks.backup.context import CaptureContext, add_paths, path_exists
from tasks.backup.methods import METHODS


@task(name="capture-part", task_run_name="capture-{name}", cache_policy=NO_CACHE)
def capture_part(
    writer: SnapshotWriter, name: str, part: PartConfig, ctx: CaptureContext, of: int = 1
) -> PartRecord:
    """Capture one part into the open snapshot; returns its record (captured/skipped/failed)."""
    reporter().begin(name, of)  # `of`: how many parts this backup captures (progress)
    with writer.part(name, part.method.value) as out:
        present = [p for p in part.paths if path_exists(ctx.stack_dir / p)]
        if not present:
            out.skip(f"not present: none of {', '.join(part.paths)} in {ctx.stack_dir}")
            reporter().done(name, "skipped")
            return out.close()
        try:
            METHODS[part.method](out, present, part, ctx)
        except StorageError:
            raise  # the repository failed, not this part: every later part would fail too
        except SbxError as exc:
            out.fail(str(exc))
    record = out.close()
    reporter().done(name, f"{record.status}, {record.stats.files} files")
    return record


__all__ = ["CaptureContext", "ConsistencyMethod", "add_paths", "capture_part"]

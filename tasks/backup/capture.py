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

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from blocks.config import ConsistencyMethod, PartConfig
from sbx.errors import SbxError, StorageError
from sbx.progress import reporter
from sbx.repository import PartRecord, PartWriter, SnapshotWriter
from tasks.backup.context import CaptureContext, add_paths, path_exists, stop_writers
from tasks.backup.methods import METHODS
from tasks.backup.sources import CONFIGS, Source, covered_below


@task(name="capture-part", task_run_name="capture-{name}", cache_policy=NO_CACHE)
def capture_part(
    writer: SnapshotWriter, name: str, part: PartConfig, ctx: CaptureContext, of: int = 1
) -> PartRecord:
    """Capture one part into the open snapshot; returns its record (captured/skipped/failed)."""
    reporter().begin(name, of)  # `of`: how many parts this backup captures (progress)
    with writer.part(name, part.method.value) as out:
        present = [p for p in part.paths if path_exists(ctx.stack_dir / p)]
        sources = ctx.sources.get(name, [])
        files = [s for s in sources if s.kind != "volume" and not s.note]
        missing = [s for s in files if not path_exists(Path(s.location))]
        extra = [s for s in files if s not in missing and not _covered(s.stored_as, present)]
        volumes = [s for s in sources if s.kind == "volume"]
        out.detail["sources"] = [_line(s, missing) for s in sources]
        absent = [s for s in missing if s.required and not part.optional]
        if absent or (ctx.compose_problem and name == CONFIGS):
            out.fail(_missing_message(name, absent) if absent else _unread(ctx.compose_problem))
            reporter().done(name, "failed")
            return out.close()
        if not present and not extra and not volumes:
            listed = ", ".join(part.paths) or "nothing in the compose model"
            out.skip(f"not present: none of {listed} in {ctx.stack_dir}")
            reporter().done(name, "skipped")
            return out.close()
        try:
            if present or volumes:
                METHODS[part.method](out, present, part, ctx)
            # a mount a service writes is copied with that service stopped (and always
            # started again); one every service mounts read-only is copied as it is
            with ExitStack() as running_again:
                writers = sorted({w for s in extra for w in s.writers})
                stop_writers(running_again, ctx, writers, name)
                if writers and ctx.status is not None:
                    out.detail["writers"] = writers  # stopped for the copy if they had run
                for src in extra:
                    _add_source(out, src, part, ctx)
        except StorageError:
            raise  # the repository failed, not this part: every later part would fail too
        except SbxError as exc:
            out.fail(str(exc))
    record = out.close()
    reporter().done(name, f"{record.status}, {record.stats.files} files")
    return record


def _covered(rel: str, paths: list[str]) -> bool:
    return any(rel == p or rel.startswith(f"{p.rstrip('/')}/") for p in paths)


def _add_source(out: PartWriter, src: Source, part: PartConfig, ctx: CaptureContext) -> None:
    """A file or directory the compose model names that the part's paths do not cover."""
    below = set() if src.outside else covered_below(ctx.config, src.stored_as)
    out.add_tree(
        Path(src.location),
        src.stored_as,
        include=part.include,
        exclude=part.exclude,
        exclude_paths=below,
    )


def _line(src: Source, missing: list[Source]) -> dict[str, Any]:
    """One row of the report's table of what the compose model names."""
    if src.note:
        status = src.note
    elif src in missing:
        status = "missing" + ("" if src.required else " (not required)")
    else:
        status = "captured"
    return {
        "kind": src.kind,
        "origin": src.origin,
        "from": src.location,
        "stored_as": src.stored_as,
        "status": status,
        "services": src.services,  # stopped around an in-place restore
        "image": src.image,  # a volume's helper image
    }


def _unread(problem: str | None) -> str:
    return (
        f"the compose model could not be read ({problem}), so the bind mounts, volumes and env "
        "files it names are not in this snapshot. Fix the compose file ('docker compose "
        "config' shows the error) and back up again."
    )


def _missing_message(part: str, absent: list[Source]) -> str:
    named = "; ".join(f"{s.location} ({s.origin})" for s in absent)
    return (
        f"named by the compose file but missing: {named}. Restore or create it, remove it from "
        f"the compose file, or mark the part optional ([parts.{part}] optional = true)."
    )


__all__ = ["CaptureContext", "ConsistencyMethod", "add_paths", "capture_part"]

"""Backup commands: backup, snapshots, verify, prune (restore: sbx/cli/restore.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from sbx.cli.options import (
    ConfigOption,
    JsonOption,
    PartOption,
    RepoOption,
    StackOption,
    err,
    out,
)
from sbx.cli.runner import open_box

if TYPE_CHECKING:
    from sbx.repository import PruneReport


def backup(
    stack: StackOption = None,
    config: ConfigOption = None,
    repo: RepoOption = None,
    part: PartOption = None,
    json_: JsonOption = False,
) -> None:
    """Snapshot every part of the stack consistently; last stdout line: the snapshot id (with
    --json: the report, its snapshot_id included)."""
    box = open_box(stack, config, repo=repo, keys=True)
    from flows.backup import backup_stack
    from sbx.errors import BackupIncomplete
    from tasks.reports import BackupReport

    try:
        with parts_progress():
            report: BackupReport = backup_stack(
                repo=box.location,
                parts=part or None,
                stack=box.stack_param,
                config_file=box.config_param,
            )
    except BackupIncomplete as exc:
        _show_backup(exc.report, json_)
        err.print(f"[bold red]error:[/] {escape(str(exc))}")
        raise typer.Exit(1) from None
    _show_backup(report, json_)


def _show_backup(report: Any, json_: bool) -> None:
    """The report as JSON, or its table on stderr and the snapshot id last on stdout."""
    from sbx.cli.backup_output import print_backup, print_drift

    if json_:
        out.print_json(report.model_dump_json())
        print_drift(report)  # a warning, on stderr: scripts reading stdout still get only JSON
        return
    print_backup(report)
    out.print(report.snapshot_id)


def snapshots(
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """List the snapshots in a repository (only complete ones exist)."""
    door = open_box(stack, config, repo=repo, api=False)
    from sbx.repository import Repository
    from tasks.repository import open_encrypted

    # an encrypted off-box copy needs its age identity (opened the way flows open it)
    repository = Repository.open(open_encrypted(door.config, door.location))
    # a manifest that cannot be read is a row saying so, not an error hiding the others
    rows = [_snapshot_row(listed) for listed in repository.snapshot_summaries()]
    if json_:
        out.print_json(json.dumps(rows))
        return
    from sbx.cli.lines import fit, shorten
    from tasks.units import human_bytes

    lines = []
    for row in rows:
        if row["damaged"]:
            i = row["id"]  # its id still says when it was made: YYYYMMDDTHHMMSSZ-...
            made = f"{i[4:6]}-{i[6:8]} {i[9:11]}:{i[11:13]}"
            lines.append((i, made, "damaged: manifest unreadable", "", ""))
            continue
        failed, partial = row["failed_parts"], row["incomplete_parts"]
        parts = (
            str(len(row["parts"]))
            + (f" (failed: {', '.join(failed)})" if failed else "")
            + (f" (incomplete: {', '.join(partial)})" if partial else "")
        )
        lines.append((row["id"], row["created_at"][5:16].replace("T", " "), parts,
                      str(row["files"]), human_bytes(row["bytes"])))  # fmt: skip
    title = f"snapshots in {repository.location} (times UTC)"
    out.print(escape(shorten(title, out.width)), soft_wrap=True)
    head = ("id", "created", "parts", "files", "size")  # the id holds the year; times UTC
    for line in fit(head, lines, out.width, flex=2, caps={}):
        out.print(escape(line), soft_wrap=True)
    for row in rows:
        if row["damaged"]:  # the reason names the snapshot and the next step
            err.print(f"[yellow]warning:[/] {escape(row['damaged'])}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Backups")(backup)
    app.command(rich_help_panel="Backups")(snapshots)


def verify(
    snapshot: Annotated[str | None, typer.Argument(help="ID or 'latest' (default).")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every snapshot.")] = False,
    sample: Annotated[
        float | None, typer.Option(help="Re-read only this fraction of the objects.")
    ] = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Re-read and re-hash a snapshot; exit 1 on any damage, naming part and path."""
    if all_ and snapshot is not None:  # --all used to win silently
        raise typer.BadParameter(
            f"--all and snapshot {snapshot!r} exclude each other; give one of them.",
            param_hint="'--all'",
        )
    box = open_box(stack, config, repo=repo, keys=True)  # before Prefect reads the API URL
    from flows.verify import verify_repository
    from sbx.errors import DamageFound

    try:
        report = verify_repository(
            snapshot=None if all_ else (snapshot or "latest"),
            repo=box.location,
            sample=sample,
            stack=box.stack_param,
            config_file=box.config_param,
        )
    except DamageFound as exc:
        if json_:
            out.print_json(exc.report.model_dump_json())
            raise
        for damage in exc.report.damaged[:200]:
            out.print(f"DAMAGED {escape(damage.describe())}", soft_wrap=True)
        if len(exc.report.damaged) > 200:
            out.print(f"... and {len(exc.report.damaged) - 200} more")
        for object_id in exc.report.replaced_by_next_backup:
            out.print(f"REPLACED BY NEXT BACKUP {object_id}")
        if exc.report.replaced_by_next_backup:
            err.print(
                f"The next 'sbx backup' stores {len(exc.report.replaced_by_next_backup)} "
                "of the damaged objects again (those whose files are still in the stack)."
            )
        raise
    if json_:
        out.print_json(report.model_dump_json())
    err.print(
        f"[green]ok[/]: {len(report.snapshots)} snapshot(s), {report.objects_checked} "
        f"objects and {report.files_checked} files re-hashed, no damage"
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True)


def prune(
    # min=0: a negative count is a usage error naming the flag (exit 2), never a prune
    keep_last: Annotated[int | None, typer.Option(min=0, help="Newest N.")] = None,
    keep_daily: Annotated[int | None, typer.Option(min=0, help="One per day, N days.")] = None,
    keep_weekly: Annotated[int | None, typer.Option(min=0, help="One per week, N weeks.")] = None,
    keep_monthly: Annotated[
        int | None, typer.Option(min=0, help="One per month, N months.")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show what would go.")] = False,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Delete snapshots outside the retention policy, then unreferenced objects.

    Any --keep-* flag replaces the configured [retention] policy whole (a flag not given is 0).
    """
    box = open_box(stack, config, repo=repo, keys=True)
    from flows.prune import prune_repository
    from sbx.repository.retention import describe_policy, with_overrides
    from tasks.units import human_bytes

    flags = {
        "keep_last": keep_last,
        "keep_daily": keep_daily,
        "keep_weekly": keep_weekly,
        "keep_monthly": keep_monthly,
    }
    # said before anything is planned or deleted, in a dry run too
    policy = with_overrides(box.config.retention, flags)
    from_flags = any(value is not None for value in flags.values())
    err.print(escape(describe_policy(policy, from_flags=from_flags)), soft_wrap=True)
    report = prune_repository(
        keep_last=keep_last,
        keep_daily=keep_daily,
        keep_weekly=keep_weekly,
        keep_monthly=keep_monthly,
        dry_run=dry_run,
        repo=box.location,
        stack=box.stack_param,
        config_file=box.config_param,
    )
    verb = "would remove" if dry_run else "removed"
    if json_:
        out.print_json(report.model_dump_json())
    else:
        for snapshot_id in report.removed:
            out.print(f"{verb} {snapshot_id}")
        for snapshot_id, until in sorted(report.locked.items()):
            out.print(f"locked {snapshot_id}  (Object Lock until {until:%Y-%m-%d %H:%M} UTC)")
        for snapshot_id, why in sorted(report.kept.items()):
            out.print(escape(f"keep   {snapshot_id}  ({', '.join(why)})"))
    freed = report.gc.bytes_freed + report.manifest_bytes_freed
    err.print(
        f"{verb} {len(report.removed)} snapshot(s) and {report.gc.objects_deleted} "
        f"objects, {human_bytes(freed)}"
    )
    if report.gc.skipped:
        err.print(f"[yellow]warning:[/] {escape(report.gc.skipped)}")
    if report.locked or report.gc.objects_locked:
        err.print(escape(locked_line(report)), soft_wrap=True)


def locked_line(report: PruneReport) -> str:
    """What Object Lock made prune leave, and when it can go."""
    dates = [*report.locked.values(), *filter(None, [report.gc.locked_until])]
    last = max(dates).strftime("%Y-%m-%d") if dates else "?"
    return (
        f"left {len(report.locked)} snapshot(s) and {report.gc.objects_locked} object(s) that "
        f"S3 Object Lock holds (until {last} at the latest); a prune after that date removes "
        "them (docs/repository.md, 'Object Lock')"
    )


def register_checks(app: typer.Typer) -> None:
    app.command(rich_help_panel="Backups")(verify)
    app.command(rich_help_panel="Backups")(prune)


@contextmanager
def parts_progress() -> Iterator[None]:
    """A progress bar over the parts of a backup, drawn on stderr while the flow runs."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from sbx.progress import reporting_to

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )

    class Bar:
        task: Any = None

        def begin(self, step: str, total_steps: int) -> None:
            if self.task is None:
                self.task = progress.add_task("parts", total=total_steps)
            progress.update(self.task, description=f"capturing {step}")

        def done(self, step: str, summary: str) -> None:
            progress.advance(self.task)

    with progress, reporting_to(Bar()):
        yield


def _snapshot_row(manifest: Any) -> dict[str, Any]:
    if not hasattr(manifest, "parts"):  # UnreadableSnapshot: its id and why, nothing else
        return {"id": manifest.id, "damaged": manifest.reason}
    return {
        "damaged": None,
        "id": manifest.id,
        "created_at": manifest.created_at.isoformat(),
        "stack_dir": manifest.stack_dir,
        "host": manifest.host,
        "parts": [p.name for p in manifest.parts if p.status == "captured"],
        "failed_parts": [p.name for p in manifest.parts if p.status == "failed"],
        # a directory vanished while it was read: stored, but not a complete copy of the part
        "incomplete_parts": [p.name for p in manifest.parts if getattr(p, "incomplete", None)],
        "files": manifest.stats.files,
        "bytes": manifest.stats.bytes,
        "new_bytes": manifest.stats.new_bytes,
        "tags": manifest.tags,
    }

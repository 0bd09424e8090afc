"""Backup commands: backup, snapshots (verify, restore, prune join as they are built)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sbx.cli.common import ConfigOption, JsonOption, PartOption, RepoOption, StackOption, err, out


def repo_location(repo: str | None, stack: Path | None, config: Path | None) -> str:
    """--repo, else the configuration's repository (sbx.toml / SBX_REPOSITORY__LOCATION)."""
    from blocks.config import load_config

    config_repo = load_config(stack, config).repository.location  # also validates the config
    location = repo or config_repo
    if location.startswith("s3://"):
        return location
    return str(Path(location).expanduser().absolute())


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Backups")
    def backup(
        stack: StackOption = None,
        config: ConfigOption = None,
        repo: RepoOption = None,
        part: PartOption = None,
    ) -> None:
        """Snapshot every part of the stack consistently; last stdout line: the snapshot id."""
        location = run_setup(repo, stack, config)  # a bad configuration stops here, before a run
        from flows.backup import BackupIncomplete, backup_stack
        from tasks.reports import BackupReport

        try:
            with parts_progress():
                report: BackupReport = backup_stack(
                    stack=str(stack) if stack else None,
                    repo=location,
                    parts=part or None,
                    config_file=str(config) if config else None,
                )
        except BackupIncomplete as exc:
            _print_backup(exc.report)
            err.print(f"[bold red]error:[/] {exc}")
            out.print(exc.report.snapshot_id)
            raise typer.Exit(1) from None
        _print_backup(report)
        out.print(report.snapshot_id)

    @app.command(rich_help_panel="Backups")
    def snapshots(
        repo: RepoOption = None,
        stack: StackOption = None,
        config: ConfigOption = None,
        json_: JsonOption = False,
    ) -> None:
        """List the snapshots in a repository (only complete ones exist)."""
        location = repo_location(repo, stack, config)
        from blocks.config import load_config
        from sbx.repository import Repository
        from tasks.offbox import open_encrypted

        # an encrypted off-box copy needs its age identity (opened the way flows open it)
        repository = Repository.open(open_encrypted(load_config(stack, config), location))
        rows = [_snapshot_row(repository.snapshot_summary(i)) for i in repository.list_snapshots()]
        if json_:
            out.print_json(json.dumps(rows))
            return
        from rich import box

        from tasks.reports import human_bytes

        table = Table(
            title=f"snapshots in {repository.location}", title_justify="left", box=box.SIMPLE_HEAD
        )
        for column in ("id", "created (UTC)", "parts", "files", "size"):
            table.add_column(column, no_wrap=True, min_width=5 if column == "parts" else None)
        for row in rows:
            failed = row["failed_parts"]
            parts = str(len(row["parts"])) + (
                f" [red](failed: {', '.join(failed)})[/]" if failed else ""
            )
            table.add_row(
                row["id"],
                row["created_at"][:16].replace("T", " "),
                parts,
                str(row["files"]),
                human_bytes(row["bytes"]),
            )
        out.print(table)


def register_checks(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Backups")
    def verify(
        snapshot: Annotated[str | None, typer.Argument(help="ID or 'latest' (default).")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Every snapshot.")] = False,
        sample: Annotated[
            float | None, typer.Option(help="Re-read only this fraction of the objects.")
        ] = None,
        repo: RepoOption = None,
        stack: StackOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Re-read and re-hash a snapshot; exit 1 on any damage, naming part and path."""
        location = run_setup(repo, stack, config)  # before Prefect is imported: it reads the URL
        from flows.verify import DamageFound, verify_repository

        try:
            report = verify_repository(
                snapshot=None if all_ else (snapshot or "latest"),
                repo=location,
                sample=sample,
                stack=_opt(stack),
                config_file=_opt(config),
            )
        except DamageFound as exc:
            for damage in exc.report.damaged[:200]:
                out.print(f"DAMAGED {damage.describe()}", soft_wrap=True)
            if len(exc.report.damaged) > 200:
                out.print(f"... and {len(exc.report.damaged) - 200} more")
            raise
        err.print(
            f"[green]ok[/]: {len(report.snapshots)} snapshot(s), {report.objects_checked} "
            f"objects and {report.files_checked} files re-hashed, no damage"
        )

    @app.command(rich_help_panel="Backups")
    def restore(
        snapshot: Annotated[str, typer.Argument(help="ID or 'latest'.")],
        to: Annotated[
            Path | None, typer.Option("--to", help="Restore into this new or empty directory.")
        ] = None,
        in_place: Annotated[
            bool,
            typer.Option(
                "--in-place", help="Verify, then swap into the live stack (old data kept aside)."
            ),
        ] = False,
        force: Annotated[
            bool, typer.Option("--force", help="Allow a non-empty --to directory.")
        ] = False,
        part: PartOption = None,
        repo: RepoOption = None,
        stack: StackOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Restore a snapshot into a directory or, verified first, into the live stack."""
        location = run_setup(repo, stack, config)
        from flows.restore import restore_snapshot

        outcome = restore_snapshot(
            snapshot=snapshot,
            to=str(to) if to else None,
            in_place=in_place,
            parts=part or None,
            force=force,
            repo=location,
            stack=_opt(stack),
            config_file=_opt(config),
        )
        r = outcome.restored
        err.print(
            f"restored {outcome.snapshot_id} ({', '.join(r.parts)}): {r.files} files, "
            f"{r.bytes} bytes, every hash verified"
        )
        for warning in r.warnings:  # metadata the target could not hold, one line per kind
            err.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True)
        if outcome.swapped:
            for live, aside in outcome.swapped.moved:
                err.print(f"  {live}: previous data kept as {aside or '(none before)'}")
        out.print(outcome.target)

    @app.command(rich_help_panel="Backups")
    def prune(
        keep_last: Annotated[int | None, typer.Option(help="Newest N.")] = None,
        keep_daily: Annotated[int | None, typer.Option(help="One per day, N days.")] = None,
        keep_weekly: Annotated[int | None, typer.Option(help="One per week, N weeks.")] = None,
        keep_monthly: Annotated[int | None, typer.Option(help="One per month, N months.")] = None,
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Only show what would go.")
        ] = False,
        repo: RepoOption = None,
        stack: StackOption = None,
        config: ConfigOption = None,
    ) -> None:
        """Delete snapshots outside the retention policy, then unreferenced objects."""
        location = run_setup(repo, stack, config)
        from flows.prune import prune_repository
        from tasks.reports import human_bytes

        report = prune_repository(
            keep_last=keep_last,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            dry_run=dry_run,
            repo=location,
            stack=_opt(stack),
            config_file=_opt(config),
        )
        verb = "would remove" if dry_run else "removed"
        for snapshot_id in report.removed:
            out.print(f"{verb} {snapshot_id}")
        for snapshot_id, why in sorted(report.kept.items()):
            out.print(f"keep   {snapshot_id}  ({', '.join(why)})")
        freed = report.gc.bytes_freed + report.manifest_bytes_freed
        err.print(
            f"{verb} {len(report.removed)} snapshot(s) and {report.gc.objects_deleted} "
            f"objects, {human_bytes(freed)}"
        )


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


def run_setup(repo: str | None, stack: Path | None, config: Path | None) -> str:
    """Validate configuration, find the repository, make the Prefect API ready."""
    location = repo_location(repo, stack, config)
    from sbx.local_server import ensure_api

    ensure_api()
    # an encrypted off-box copy: a missing or wrong age key stops here, before any flow run
    from blocks.config import load_config
    from tasks.offbox import open_encrypted

    open_encrypted(load_config(stack, config), location)
    return location


def _opt(path: Path | None) -> str | None:
    return str(path) if path else None


def _snapshot_row(manifest: Any) -> dict[str, Any]:
    return {
        "id": manifest.id,
        "created_at": manifest.created_at.isoformat(),
        "stack_dir": manifest.stack_dir,
        "host": manifest.host,
        "parts": [p.name for p in manifest.parts if p.status == "captured"],
        "failed_parts": [p.name for p in manifest.parts if p.status == "failed"],
        "files": manifest.stats.files,
        "bytes": manifest.stats.bytes,
        "new_bytes": manifest.stats.new_bytes,
        "tags": manifest.tags,
    }


def _print_backup(report: Any) -> None:
    from rich import box

    from tasks.reports import human_bytes

    table = Table(
        "part",
        "method used",
        "status",
        "files",
        "size",
        "new",
        "time",
        box=box.SIMPLE_HEAD,
        title=f"snapshot {report.snapshot_id}",
        title_justify="left",
    )
    for p in report.parts:
        status = p.status if not p.reason else f"{p.status}: {p.reason}"
        table.add_row(
            p.name,
            p.mode,
            status,
            str(p.stats.files),
            human_bytes(p.stats.bytes),
            human_bytes(p.stats.new_bytes),
            f"{p.stats.duration_s:.1f} s",
        )
    err.print(table)
    s = report.stats
    err.print(
        f"{s.files} files, {human_bytes(s.bytes)} ({human_bytes(s.new_bytes)} new) in "
        f"{s.duration_s:.1f} s → {report.repository}"
    )

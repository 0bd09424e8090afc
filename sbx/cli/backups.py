"""Backup commands: backup, snapshots (verify, restore, prune join as they are built)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from sbx.cli.common import ConfigOption, JsonOption, PartOption, RepoOption, StackOption, err, out


def repo_location(repo: str | None, stack: Path | None, config: Path | None) -> str:
    """--repo, else the configuration's repository (sbx.toml / SBX_REPOSITORY__LOCATION)."""
    if repo:
        return repo
    from blocks.config import load_config

    return str(Path(load_config(stack, config).repository.location).expanduser())


def register(app: typer.Typer) -> None:
    @app.command(rich_help_panel="Backups")
    def backup(
        stack: StackOption = None,
        config: ConfigOption = None,
        repo: RepoOption = None,
        part: PartOption = None,
    ) -> None:
        """Snapshot every part of the stack consistently; last stdout line: the snapshot id."""
        from blocks.config import load_config

        load_config(stack, config)  # a configuration error stops here, before any flow run
        from sbx.local_server import ensure_api

        ensure_api()
        from flows.backup import BackupIncomplete, backup_stack
        from tasks.reports import BackupReport

        try:
            report: BackupReport = backup_stack(
                stack=str(stack) if stack else None,
                repo=repo,
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
        from sbx.repository import Repository

        repository = Repository.open(repo_location(repo, stack, config))
        rows = [_snapshot_row(repository.load_snapshot(i)) for i in repository.list_snapshots()]
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

"""`sbx restore SNAPSHOT` (into a directory, or in place) and `sbx restore cleanup` (the old data
in-place restores kept under ``<stack>/.sbx/restores/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer import _click as click  # typer vendors click; its Context is this one
from typer.core import TyperGroup

from sbx.cli.options import (
    ConfigOption,
    JsonOption,
    PartOption,
    RepoOption,
    StackOption,
    check_path,
    err,
    out,
)
from sbx.cli.runner import open_box

#: the hidden subcommand `sbx restore SNAPSHOT …` goes to
RESTORE = "snapshot"


class _RestoreGroup(TyperGroup):
    """`sbx restore cleanup …` is a subcommand; anything else (a snapshot id, 'latest', options,
    --help) is the restore itself, so `sbx restore latest --in-place` reads as it always did."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or args[0] not in self.commands:
            args = [RESTORE, *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_RestoreGroup,
    help="Restore a snapshot into a directory or, verified first, into the live stack; "
    "'sbx restore cleanup' removes the old data in-place restores kept.",
)


@app.command(RESTORE, hidden=True)
def restore(
    snapshot: Annotated[str, typer.Argument(metavar="ID", help="ID or 'latest'.")],
    to: Annotated[
        Path | None,
        typer.Option("--to", help="Restore into this new or empty directory.", callback=check_path),
    ] = None,
    in_place: Annotated[
        bool,
        typer.Option(
            "--in-place",
            help="Verify, then swap into the live stack (old data kept under .sbx/restores/).",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Allow a non-empty --to directory: the restored parts' paths are replaced. "
            "In place: restore data even into an older image than the one that wrote it.",
        ),
    ] = False,
    part: PartOption = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Restore a snapshot into a directory or, verified first, into the live stack.

    In place, the data it replaces is kept under <stack>/.sbx/restores/<UTC time>/ (every path
    is listed) for [restore] keep_days; 'sbx restore cleanup' removes it sooner.
    """
    box = open_box(stack, config, repo=repo, keys=True)
    from flows.restore import restore_snapshot

    outcome = restore_snapshot(
        snapshot=snapshot,
        to=str(to) if to else None,
        in_place=in_place,
        parts=part or None,
        force=force,
        repo=box.location,
        stack=box.stack_param,
        config_file=box.config_param,
    )
    r = outcome.restored
    err.print(
        escape(
            f"restored {outcome.snapshot_id} ({', '.join(r.parts)}): {r.files} files, "
            f"{r.bytes} bytes, every hash verified"
        )
    )
    for warning in r.warnings:  # metadata the target could not hold, one line per kind
        err.print(f"[yellow]warning[/]: {escape(warning)}", soft_wrap=True)
    if outcome.swapped:
        _print_kept(outcome, box.config.restore.keep_days)
    if json_:  # the target is in it, with what was kept aside
        out.print_json(outcome.model_dump_json())
    else:
        out.print(escape(str(outcome.target)))


def _print_kept(outcome: Any, keep_days: int) -> None:
    swapped = outcome.swapped
    shown = set()
    for live, aside in swapped.moved:
        if aside in outcome.kept:
            err.print(escape(f"  {live}: previous data kept as {aside}"), soft_wrap=True)
            shown.add(aside)
        elif aside is None:
            err.print(escape(f"  {live}: (none before)"), soft_wrap=True)
        else:  # the change log: history is not state, the live one stays
            err.print(escape(f"  {live}: the live one kept in place"), soft_wrap=True)
    for path in outcome.kept:
        if path not in shown:
            err.print(escape(f"  kept {path}"), soft_wrap=True)
    if outcome.kept:
        err.print(
            escape(
                f"kept {keep_days} days ([restore] keep_days); 'sbx restore cleanup' "
                "removes them sooner"
            ),
            soft_wrap=True,
        )
    if outcome.cleaned and outcome.cleaned.removed:
        gone = ", ".join(item.path for item in outcome.cleaned.removed)
        err.print(
            escape(f"removed kept restores older than {keep_days} days: {gone}"), soft_wrap=True
        )


@app.command("cleanup")
def cleanup(
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            help="Remove kept restores older than this span: 12h, 7d, 2w "
            "(default: \\[restore] keep_days).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would be removed.")
    ] = False,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Remove the old data in-place restores kept (<stack>/.sbx/restores/<UTC time>/).

    Refused while an in-place restore is swapping (its journal .sbx/swap.json is open).
    """
    from tasks.restore.kept import parse_span

    if older_than is not None:
        parse_span(older_than)  # a bad span: exit 2 before anything starts
    box = open_box(stack, config)
    from flows.restore import cleanup_kept_restores
    from tasks.units import human_bytes

    report = cleanup_kept_restores(
        older_than=older_than,
        dry_run=dry_run,
        stack=box.stack_param,
        config_file=box.config_param,
    )
    verb = "would remove" if dry_run else "removed"
    if json_:
        out.print_json(report.model_dump_json())
    else:
        for item in report.removed:
            out.print(escape(f"{verb} {item.path} ({human_bytes(item.bytes)})"), soft_wrap=True)
    span = older_than or f"{box.config.restore.keep_days}d"
    err.print(
        escape(
            f"{verb} {len(report.removed)} kept restore(s) older than {span}, "
            f"{human_bytes(report.freed_bytes)}; {len(report.kept)} newer kept"
        )
    )


def register(parent: typer.Typer) -> None:
    parent.add_typer(app, name="restore", rich_help_panel="Backups")

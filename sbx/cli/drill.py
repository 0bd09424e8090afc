"""`sbx drill`: restore a snapshot into a scratch compose project, check it, report the RTO."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, RepoOption, StackOption, err, out
from sbx.cli.runner import open_box


def drill(
    stack: StackOption = None,
    config: ConfigOption = None,
    repo: RepoOption = None,
    snapshot: Annotated[
        str, typer.Option("--snapshot", help="Snapshot ID or 'latest'.")
    ] = "latest",
    from_offbox: Annotated[
        bool,
        typer.Option(
            "--from-offbox", help="Drill from the off-box repository (offbox.url in sbx.toml)."
        ),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Restore into a scratch project, health-check it, report the RTO; exit 1 naming what
    failed. The live stack is not touched; the scratch project is always torn down."""
    # from the off-box copy: the flow opens offbox.url (or --repo) with the age identity
    box = open_box(stack, config, repo=repo, keys=not from_offbox)
    location = box.location if not from_offbox else repo
    from flows.drill import drill_restore
    from sbx.errors import DrillFailed
    from tasks.drill.report import DrillReport

    try:
        report: DrillReport = drill_restore(
            snapshot=snapshot,
            from_offbox=from_offbox,
            repo=location,
            stack=box.stack_param,
            config_file=box.config_param,
        )
    except DrillFailed as exc:
        _print(exc.report, json_)
        raise
    _print(report, json_)
    if not json_:
        out.print(f"{report.snapshot_id} drill-passed RTO {report.rto_s:.1f} s")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Backups")(drill)


def _print(report: object, json_: bool) -> None:
    """The report as JSON on stdout, or one line per check on stderr."""
    from tasks.drill.report import DrillReport

    assert isinstance(report, DrillReport)
    if json_:
        out.print_json(report.model_dump_json())
        return
    for check in report.checks:
        colour = {"ok": "green", "info": "dim"}.get(check.state, "red")
        err.print(
            f"[{colour}]{check.state:>10}[/] {escape(check.id)}: {escape(check.observed)}",
            soft_wrap=True,
        )
    for note in report.not_started:
        instead = ", ".join(note.checked_instead) or "nothing"
        err.print(
            f"[dim]not started[/] {escape(note.service)}: {escape(note.reason)}; checked "
            f"instead: {escape(instead)}",
            soft_wrap=True,
        )
    phases = ", ".join(f"{name} {secs:.1f} s" for name, secs in report.phases.items())
    err.print(f"drill {report.drill_id} of {report.snapshot_id}: {phases}")

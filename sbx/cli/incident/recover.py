"""`sbx incident recover`: restore a snapshot if asked (with --yes), then health + prompt suite."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import (
    ConfigOption,
    IncidentOption,
    JsonOption,
    RepoOption,
    StackOption,
    err,
    out,
)
from sbx.cli.runner import open_box


def recover(
    snapshot: Annotated[
        str | None,
        typer.Option(
            "--snapshot",
            help="Restore this snapshot (ID or 'latest') in place first; needs --yes.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm the in-place restore (it replaces data).")
    ] = False,
    service: Annotated[
        str, typer.Option("--service", help="Service the prompt suite runs against.")
    ] = "worker",
    incident_id: IncidentOption = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Restore a snapshot if asked, then run the health checks and the prompt suite.

    Exit 0 when everything passes; 1 naming the restore, failing checks or prompts; 2 when
    --snapshot is given without --yes (nothing is changed).
    """
    from sbx.errors import ConfigError

    if snapshot is not None and not yes:
        raise ConfigError(
            f"Restoring {snapshot} in place replaces the stack's live data; nothing was "
            "changed. Run again with --yes to restore it."
        )
    # with a snapshot: the repository's age key must open, before any flow run
    box = open_box(stack, config, repo=repo, repair=False, keys=snapshot is not None)
    location = box.location
    from flows.incident.recover import incident_recover
    from sbx.errors import RecoveryFailed

    try:
        report = incident_recover(
            incident_id=incident_id,
            snapshot=snapshot,
            yes=yes,
            service=service,
            repo=location,
            stack=box.stack_param,
            config_file=box.config_param,
        )
    except RecoveryFailed as exc:
        report = exc.report
    if json_:
        out.print_json(report.model_dump_json())
    if report.restored:
        err.print(f"restored {escape(report.restored)} in place")
    err.print(
        f"health: {report.health_checks} checks, failing: "
        f"{escape(', '.join(report.health_failing) or 'none')}"
    )
    for warning in report.warnings:
        err.print(f"[yellow]warning:[/] {escape(warning)}", soft_wrap=True)
    for problem in report.problems:
        err.print(f"[red]✗[/] {escape(problem)}", soft_wrap=True)
    if report.ok:
        err.print(f"[green]recovered[/]: incident {escape(report.incident_id)}")
    raise typer.Exit(0 if report.ok else 1)


def register(incident: typer.Typer) -> None:
    incident.command("recover")(recover)

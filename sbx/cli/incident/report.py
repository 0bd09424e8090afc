"""`sbx incident report`: the incident's Markdown report, written and published; --close."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, IncidentOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box
from tasks.incident.text import plain


def report(
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the report to this file.", show_default=False),
    ] = None,
    close: Annotated[
        bool, typer.Option("--close", help="Close the incident, then write the report.")
    ] = False,
    incident_id: IncidentOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Write the incident report from the actions, the change log and the run history.

    Saved as .sbx/incidents/<id>/report.md (and --out), published as a markdown artifact,
    printed on stdout. Open items (still frozen, keys not revoked, ...) are listed on stderr.
    """
    if out_file is not None and out_file.is_dir():
        from sbx.errors import ReportOutRefused

        raise ReportOutRefused(str(out_file))
    box = open_box(stack, config, repair=False)
    from flows.incident.report import incident_report
    from tasks.incident.report import render_markdown

    result = incident_report(
        incident_id=incident_id,
        out=str(out_file.absolute()) if out_file else None,
        close=close,
        stack=box.stack_param,
        config_file=box.config_param,
    )
    if json_:
        out.print_json(result.model_dump_json())
    else:
        out.print(render_markdown(result), markup=False, highlight=False, soft_wrap=True)
    for item in result.open_items:
        err.print(f"[yellow]open:[/] {escape(plain(item))}", soft_wrap=True)
    if not result.flow_runs.available:
        err.print(f"[yellow]flow runs not read:[/] {escape(plain(result.flow_runs.error))}")
    if result.incident.closed_at is not None:
        err.print(f"incident {escape(plain(result.incident.id))} closed")


def register(incident: typer.Typer) -> None:
    incident.command("report")(report)

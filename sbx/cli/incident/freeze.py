"""`sbx incident freeze` and `sbx incident unfreeze` (flows/incident/freeze.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sbx.cli.options import ConfigOption, IncidentOption, JsonOption, StackOption, err, out
from sbx.cli.runner import Box, open_box
from sbx.errors import UnfreezeRefused


def setup_incident(stack: Path | None, config: Path | None) -> Box:
    """The door for incident steps: no leftovers repair (evidence first, see sbx/cli/runner.py)."""
    return open_box(stack, config, repair=False)


def freeze(
    stack: StackOption = None,
    config: ConfigOption = None,
    incident_id: IncidentOption = None,
    agents: Annotated[
        bool | None,
        typer.Option(
            "--agents/--no-agents",
            help="Also stop agent containers (default: incident.stop_agents_on_freeze).",
            show_default=False,
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Stop exposure (proxy, tunnels) and check nothing is published beyond loopback.

    Exit 0 when frozen; 1 naming what still publishes a port or could not be stopped.
    Running it again is safe.
    """
    box = setup_incident(stack, config)
    from flows.incident.freeze import freeze_incident

    report = freeze_incident(
        stack=box.stack_param,
        config_file=box.config_param,
        incident=incident_id,
        agents=agents,
    )
    if json_:
        out.print_json(report.model_dump_json())
        return
    for container in report.stopped:
        err.print(f"stopped {container.name} ({container.service})")
    for name in report.already_stopped:
        err.print(f"already stopped: {name}")
    err.print("[green]frozen[/]: nothing of the stack is published beyond loopback")
    out.print(f"incident {report.incident} frozen")


def unfreeze(
    stack: StackOption = None,
    config: ConfigOption = None,
    incident_id: IncidentOption = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Confirm: start what freeze stopped (exposes the box)."),
    ] = False,
) -> None:
    """Start again what freeze stopped. Refused (exit 2, nothing started) without --yes."""
    if not yes:
        raise UnfreezeRefused("no --yes on the command line")
    box = setup_incident(stack, config)
    from flows.incident.freeze import unfreeze_incident

    report = unfreeze_incident(
        stack=box.stack_param,
        config_file=box.config_param,
        incident=incident_id,
        confirmed=True,
    )
    for name in report.started:
        err.print(f"started {name}")
    out.print(f"incident {report.incident} unfrozen ({len(report.started)} started)")


def register(incident: typer.Typer) -> None:
    incident.command()(freeze)
    incident.command()(unfreeze)

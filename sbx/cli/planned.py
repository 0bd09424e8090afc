"""Commands of the CLI contract (design.md) that are not built yet.

Each takes the options the contract names, so `--help` documents the interface, and exits 2 with
"not implemented yet": never a fake success.
"""

from __future__ import annotations

import typer

from sbx.cli.common import StackOption
from sbx.errors import NotImplementedYet


def register(
    app: typer.Typer, incident: typer.Typer, model: typer.Typer, logs: typer.Typer
) -> None:

    steps = {
        "freeze": "Stop exposure (proxy, tunnels) and check nothing is published.",
        "preserve": "Collect an evidence bundle before anything is restarted.",
        "recover": "Restore a snapshot if asked, then run health checks and the prompt suite.",
        "report": "Write the incident report from the run history and change log.",
    }
    for step, summary in steps.items():
        _planned_step(incident, step, summary)


def _planned_step(incident: typer.Typer, step: str, summary: str) -> None:
    def command(stack: StackOption = None) -> None:
        raise NotImplementedYet(f"incident {step}", 7)

    command.__doc__ = summary
    incident.command(step)(command)

"""`sbx incident run`: the whole playbook in order, asking before each step that changes the box.

Each step runs exactly as an operator would type it (`sbx incident STEP …` in a child process),
so each is its own Prefect flow run and its own line in the run history, and a step that fails
does not hide the ones after it: evidence and the report matter most when something went wrong.

    freeze        (asks)  stop exposure
    preserve              evidence bundle, before anything restarts
    blast-radius          keys, addresses, URLs, collections since --since
    contain       (asks)  the flagged keys and domains (its dry run is shown first)
    recover       (asks when --snapshot is given)  restore, health checks, prompt suite
    report                the incident report
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from sbx.cli.options import ConfigOption, IncidentOption, RepoOption, StackOption, err
from sbx.cli.runner import open_box
from sbx.errors import ConfigError


@dataclass(frozen=True)
class Step:
    name: str
    args: list[str]
    asks: str | None  # the question before a step that changes the box; None: just runs


def plan_steps(since: str, snapshot: str | None, agents: bool | None, service: str) -> list[Step]:
    """The playbook's steps with their arguments, in order."""
    freeze_args = [] if agents is None else ["--agents" if agents else "--no-agents"]
    recover_args = ["--service", service]
    if snapshot:
        recover_args += ["--snapshot", snapshot, "--yes"]
    return [
        Step("freeze", freeze_args, "Stop the box's exposure (proxy, tunnels)?"),
        Step("preserve", [], None),
        Step("blast-radius", ["--since", since], None),
        Step(
            "contain",
            ["--from-blast-radius", "--yes"],
            "Revoke the flagged keys and take the flagged domains off the allowlists (above)?",
        ),
        Step(
            "recover",
            recover_args,
            f"Restore snapshot {snapshot} in place (it replaces live data)?" if snapshot else None,
        ),
        Step("report", [], None),
    ]


def _common(stack: Path | None, config: Path | None, incident: str | None) -> list[str]:
    args = ["--stack", str(stack)] if stack else []
    args += ["--config", str(config)] if config else []
    return args + (["--incident", incident] if incident else [])


def _sbx(step: str, args: list[str]) -> int:
    err.rule(f"sbx incident {step}")
    return subprocess.run(
        [sys.executable, "-m", "sbx", "incident", step, *args], check=False
    ).returncode


def run(
    since: Annotated[
        str,
        typer.Option("--since", help="Start of the blast-radius window: ISO time or 2h, 1d."),
    ] = "1d",
    snapshot: Annotated[
        str | None,
        typer.Option("--snapshot", help="Restore this snapshot in place in the recover step."),
    ] = None,
    agents: Annotated[
        bool | None,
        typer.Option(
            "--agents/--no-agents", help="Also stop agents on freeze.", show_default=False
        ),
    ] = None,
    service: Annotated[
        str, typer.Option("--service", help="Service the prompt suite runs against.")
    ] = "worker",
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before each step.")] = False,
    incident_id: IncidentOption = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
) -> None:
    """Run the playbook: freeze, preserve, blast-radius, contain, recover, report.

    Asks before each step that changes the box (freeze, contain, a restore); a step
    declined is skipped and shows as an open item in the report. Exit 0 when every step
    passed, else 1 naming the steps that failed.
    """
    open_box(
        stack, config, api=False, repair=False
    )  # a bad configuration stops here, before any step
    if not yes and not sys.stdin.isatty():
        raise ConfigError(
            "sbx incident run asks before each step that changes the box, but no terminal "
            "is attached; nothing was run. Run it in a terminal, or pass --yes."
        )
    common = _common(stack, config, incident_id)
    failed: list[str] = []
    for step in plan_steps(since, snapshot, agents, service):
        args = [*step.args, *common]
        if step.name == "recover" and repo:
            args += ["--repo", repo]
        if step.name == "contain" and not yes:
            _sbx("contain", ["--from-blast-radius", "--dry-run", *common])
        if step.asks and not yes and not typer.confirm(step.asks, default=False):
            err.print(f"skipped {step.name} (declined)")
            continue
        if _sbx(step.name, args) != 0:
            failed.append(step.name)
    if failed:
        err.print(f"[red]steps that failed:[/] {', '.join(failed)} (see each step above)")
        raise typer.Exit(1)
    err.print("[green]playbook done[/]: see the report above")


def register(incident: typer.Typer) -> None:
    incident.command("run")(run)

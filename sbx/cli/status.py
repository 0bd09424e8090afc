"""`sbx status`: the stack's services, their state, health and digests, in one fast read."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box

if TYPE_CHECKING:
    from tasks.status import ServiceStatus, StackStatus


def status(
    stack: StackOption = None, config: ConfigOption = None, json_: JsonOption = False
) -> None:
    """The stack's services: state, health, image and digest, ports, whether they answer.

    Exit 1 when a required service is not running or does not answer. Fast, so it runs
    directly rather than as a flow run; only what a killed sbx run left behind is finished
    first, in a flow run, as before every command.
    """
    from tasks.status import read_stack_status

    box = open_box(stack, config, api=False).config
    report = read_stack_status(box)
    _print_open_upgrade(box.stack_dir)
    if json_:
        out.print_json(report.model_dump_json())
    else:
        _print_status(report)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Health")(status)


def _state(svc: ServiceStatus) -> str:
    """``healthy``/``unhealthy``/``starting`` for a running container with a health check,
    else Docker's state (Docker keeps the last verdict of a stopped container: not shown)."""
    if svc.state == "running" and svc.health:
        return svc.health
    return svc.state


def _image(svc: ServiceStatus) -> str:
    """``worker:2026.11@1a2b3c4d``: the image's last path element and tag (the registry and
    path are in --json), with the digest's first 7 hex digits."""
    name = (svc.image or "—").rsplit("/", 1)[-1]
    if not svc.digest:
        return name
    _, _, value = svc.digest.partition(":")
    return f"{name}@{(value or svc.digest)[:7]}"


def _published(svc: ServiceStatus) -> str:
    """``:8000`` on loopback (the box's norm); the whole address where it is wider."""
    ports = [p.split("->")[0].removeprefix("127.0.0.1") for p in svc.ports]
    if not ports:
        return "—"
    return ports[0] + (f" +{len(ports) - 1}" if len(ports) > 1 else "")


def _answers(svc: ServiceStatus) -> str:
    return svc.probe.summary if svc.probe is not None else "—"


def _print_status(report: StackStatus) -> None:
    """One line per service (service, state, image@digest, port, answer), fitting the terminal:
    long values are cut in the middle; --json has them whole."""
    from sbx.cli.lines import fit, shorten

    rows = [
        (svc.name + ("" if svc.required else "?"), _state(svc), _image(svc), _published(svc),
         _answers(svc))
        for svc in report.services
    ]  # fmt: skip
    head = ("service", "state", "image@digest", "published", "answers")
    lines = fit(head, rows, out.width, flex=4, caps={0: 20, 2: 28, 3: 21})
    title = shorten(f"{report.project} — {report.stack_dir}", out.width)
    out.print(escape(title), soft_wrap=True)
    out.print(f"[bold]{escape(lines[0])}[/]", soft_wrap=True)
    for svc, line in zip(report.services, lines[1:], strict=True):
        if svc.ok:
            out.print(escape(line), soft_wrap=True)
        else:
            out.print(f"[red]{escape(line)}[/]", soft_wrap=True)
    if any(not svc.required for svc in report.services):
        out.print("[dim]? optional: not running is not a failure[/]", soft_wrap=True)
    for where in report.foreign:
        err.print(
            f"[yellow]note:[/] containers named for project '{report.project}' run from "
            f"{where}, another stack: ignored. Set [compose] project in sbx.toml to tell "
            "them apart."
        )
    for svc in report.failing:
        err.print(f"[red]✗ {escape(svc.name)}[/]: {escape(str(svc.problem))}")
    if report.ok:
        out.print(
            f"[green]all {sum(s.required for s in report.services)} required services "
            "running and answering[/]"
        )
    sys.stdout.flush()


def _print_open_upgrade(stack_dir: Path) -> None:
    """An upgrade journal entry still open: its run is going (a killed run's entry was finished
    before this command ran: sbx/cli/runner.py)."""
    from tasks.upgrade.journal import read_open

    entry = read_open(stack_dir)
    if entry is None:
        return
    who = "its run is still going" if entry.writer_alive() else "its run was killed"
    err.print(
        f"[yellow]open upgrade journal entry {entry.id}[/]: {entry.action} of "
        f"{', '.join(entry.services)} at phase {entry.phase}, started "
        f"{entry.started_at:%Y-%m-%d %H:%M:%S} UTC (pid {entry.pid}; {who}). If that run dies, "
        "the next sbx command on this stack returns it to the recorded release.",
        soft_wrap=True,
    )

"""`sbx status`: the stack's services, their state, health and digests, in one fast read."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box


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


_STATE_STYLE = {"running": "green", "restarting": "yellow", "paused": "yellow"}


def _print_status(report: object) -> None:
    from rich import box

    from tasks.status import StackStatus

    assert isinstance(report, StackStatus)
    table = Table(
        title=f"{report.project} — {report.stack_dir}", title_justify="left", box=box.SIMPLE_HEAD
    )
    # service, state and address read better whole; image and answer may wrap on narrow screens
    for column, no_wrap in (
        ("service", True),
        ("state", True),
        ("image / digest", False),
        ("published", True),
        ("answers", False),
    ):
        table.add_column(column, overflow="fold", no_wrap=no_wrap)
    for svc in report.services:
        style = _STATE_STYLE.get(svc.state, "red" if svc.required else "dim")
        # Docker keeps the last health verdict of a stopped container: show it only while running
        state = svc.state + (f" ({svc.health})" if svc.health and svc.state == "running" else "")
        if svc.probe is not None:
            answers = (
                f"[green]{svc.probe.summary}[/]" if svc.probe.ok else f"[red]{svc.probe.summary}[/]"
            )
        else:
            answers = "—"
        published = [p.split("->")[0] for p in svc.ports]
        table.add_row(
            escape(svc.name) + ("" if svc.required else " (optional)"),
            f"[{style}]{state}[/]",
            f"{escape(svc.image or '—')}\n[dim]{_short_digest(svc.digest)}[/]",
            escape("\n".join(published) or "—"),
            answers,
        )
    out.print(table)
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


def _short_digest(digest: str | None) -> str:
    if not digest:
        return "—"
    _, _, value = digest.partition(":")
    return (value or digest)[:12]


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

"""`sbx changelog [verify]`: the stack's tamper-evident change log, read and checked locally
(fast, no Prefect); with --publish, as a flow run that also publishes it as an artifact and
checks the head kept in a Prefect Variable."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box

if TYPE_CHECKING:
    from tasks.changelog import ChangeEntry


def changelog(
    action: Annotated[str | None, typer.Argument(help="'verify' to check the hash chain.")] = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
    publish: Annotated[
        bool,
        typer.Option(
            "--publish",
            help="Run as a Prefect flow: publish the log as an artifact and also check the "
            "head kept in a Prefect Variable.",
        ),
    ] = False,
) -> None:
    """Show the tamper-evident change log, or verify it.

    'sbx changelog verify' exits 0 when the chain is intact and 1 naming the first entry
    that was edited, removed, reordered or cut short (or when its end was removed).
    """
    if action not in (None, "verify"):
        raise typer.BadParameter(f"unknown action {action!r}; only 'verify'", param_hint="ACTION")
    from tasks.changelog import read_changes, verify_changes

    door = open_box(stack, config, api=publish)
    box = door.config
    if publish:
        from flows.changelog import show_changelog
        from sbx.errors import ChangeLogDamaged

        try:
            report = show_changelog(stack=door.stack_param, config_file=door.config_param)
        except ChangeLogDamaged:
            report = verify_changes(box.stack_dir)  # the flow run failed; say why below
    else:
        report = verify_changes(box.stack_dir)
    if action is None:
        entries = read_changes(box.stack_dir)
        if json_:
            out.print_json(data=[e.model_dump() for e in entries])
        else:
            _print_table(entries)
    elif json_:
        out.print_json(report.model_dump_json())
    if report.intact:
        err.print(f"[green]ok[/]: {escape(report.describe())}", soft_wrap=True)
    else:
        err.print(f"[bold red]damaged[/]: {escape(report.describe())}", soft_wrap=True)
    raise typer.Exit(0 if report.intact else 1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Changes")(changelog)


def _print_table(entries: list[ChangeEntry]) -> None:
    """A timeline: one line per change (time, kind, target, what, who) that fits the terminal;
    below 100 columns what changed goes on an indented second line. The full entries are in
    ``--json``."""
    from sbx.cli.lines import shorten
    from tasks.changelog_text import what, when, who

    if not entries:
        err.print("the change log is empty")
        return
    rows = [(when(e), e.action, e.target, who(e), what(e)) for e in entries]
    head = ("time (UTC)", "change", "target", "run", "what")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    # the target ("worker, watchdog, proxy") gets at most a fifth of the line
    widths[2] = min(widths[2], max(8, out.width // 5))
    room = out.width - sum(widths) - 4 * 2
    two_lines = room < 40

    def line(cells: tuple[str, ...]) -> None:
        parts = [shorten(c, w).ljust(w) for c, w in zip(cells, widths, strict=False)]
        if not two_lines:
            parts.append(shorten(cells[4], room))
        out.print(escape("  ".join(parts).rstrip()), soft_wrap=True)
        if two_lines and cells is not head:
            out.print(escape("    " + shorten(cells[4], out.width - 4)), soft_wrap=True)

    line(head)
    for row in rows:
        line(row)

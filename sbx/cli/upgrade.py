"""`sbx upgrade [SERVICE]… [--check]` and `sbx rollback [SERVICE]…` (flows/upgrade.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box

ServiceArgs = Annotated[
    list[str] | None, typer.Argument(help="Compose services (default: every registry image).")
]


def upgrade(
    services: ServiceArgs = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    check: Annotated[
        bool, typer.Option("--check", help="Only list newer images; change nothing.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Upgrade services, gated on health; roll back automatically on failure.

    Exit 0 when committed (or nothing was newer); 1 with "rolled back: <gate>" or "rollback
    failed"; 2 when it refused to start (nothing changed).
    """
    box = open_box(stack, config, repair=False)  # the flow finishes an open entry itself
    from flows.upgrade import check_upgrades, upgrade_stack

    params = {
        "services": services or None,
        "stack": box.stack_param,
        "config_file": box.config_param,
    }
    if check:
        found = check_upgrades(**params)  # type: ignore[arg-type]
        if json_:
            out.print_json(found.model_dump_json())
            return
        for service, (running, remote) in sorted(found.newer.items()):
            out.print(
                escape(f"{service}: newer image {remote} (running {running})"), soft_wrap=True
            )
        for service in found.current:
            out.print(escape(f"{service}: current"))
        return
    report = upgrade_stack(**params)  # type: ignore[arg-type]
    if json_:
        out.print_json(report.model_dump_json())
        return
    if not report.changed:
        err.print("every selected service already runs the image its tag names")
    for service, digest in sorted(report.changed.items()):
        out.print(escape(f"{service}: {digest}"), soft_wrap=True)
    if report.data:
        err.print(escape(f"data: {report.data}"), soft_wrap=True)
    err.print(f"[green]committed[/] journal entry {report.entry}")


def rollback(
    services: ServiceArgs = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Roll back even if a compose file changed since the upgrade."),
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Return services to the release before the last committed upgrade (from the journal).

    Exit 2 (nothing changed) when a compose file changed since that upgrade, unless --force.
    The data of the services comes back too: when it changed since the upgrade's pre-upgrade
    snapshot, that snapshot is restored in place before the old images start.
    """
    box = open_box(stack, config, repair=False)
    from flows.upgrade import rollback_stack

    report = rollback_stack(
        services=services or None,
        stack=box.stack_param,
        config_file=box.config_param,
        force=force,
    )
    if json_:
        out.print_json(report.model_dump_json())
        return
    for service, digest in sorted(report.changed.items()):
        out.print(escape(f"{service}: {digest}"), soft_wrap=True)
    err.print(escape(f"data: {report.data or 'no pre-upgrade snapshot'}"), soft_wrap=True)
    err.print(f"[green]rolled back[/] (journal entry {report.entry})")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Changes")(upgrade)
    app.command(rich_help_panel="Changes")(rollback)

"""`sbx setup` and `sbx server start|stop|status`: the Prefect API sbx talks to."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sbx.cli.options import JsonOption, err, out


def setup(json_: JsonOption = False) -> None:
    """Register block types, the work pool and concurrency limits with the Prefect API."""
    from sbx.local_server import ensure_api

    api = ensure_api()
    from deployments.bootstrap import SetupItems, setup_prefect

    if json_:
        out.print_json(SetupItems.dump_json(setup_prefect()).decode())
        return
    table = Table("what", "name", "outcome", title=f"Prefect API {api}")
    for item in setup_prefect():
        table.add_row(item.kind, item.name, item.outcome)
    out.print(table)


def server_start() -> None:
    """Start the local Prefect server unless it is running (harmless to repeat)."""
    from sbx.local_server import LocalServer, waiting_for_server

    state, started = LocalServer().start(waiting_for_server)
    verb = "Started" if started else "Already running:"
    out.print(f"{verb} local Prefect server, UI at {state.url} (pid {state.pid})")


def server_stop(
    force: Annotated[
        bool,
        typer.Option("--force", help="Stop it even when another sbx installation started it."),
    ] = False,
) -> None:
    """Stop the local Prefect server (the one this installation started)."""
    from sbx.local_server import LocalServer

    state = LocalServer().stop(force=force)
    out.print(
        f"Stopped the local Prefect server (pid {state.pid})"
        if state
        else "The local Prefect server is not running."
    )


def server_status(json_: JsonOption = False) -> None:
    """Show the local Prefect server and its UI address; exit 1 when it is not running."""
    from sbx.local_server import LocalServer, server_summary

    state = LocalServer().status()
    if state is None:
        if json_:
            out.print_json(json.dumps({"running": False}))
        else:
            err.print("The local Prefect server is not running; 'sbx server start' starts it.")
        raise typer.Exit(1)
    summary = server_summary(state)
    if json_:
        out.print_json(json.dumps({"running": True, **summary}))
        return
    out.print("local Prefect server: running")
    width = max(len(key) for key in summary)
    for key, value in summary.items():
        out.print(escape(f"  {key.ljust(width)}  {value}"), soft_wrap=True)


def register(app: typer.Typer, server: typer.Typer) -> None:
    app.command(rich_help_panel="Operations")(setup)
    server.command("start")(server_start)
    server.command("stop")(server_stop)
    server.command("status")(server_status)

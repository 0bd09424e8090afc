"""`sbx health`: every health check as a flow run; a table, or JSON; exit 1 naming what fails."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, RepoOption, StackOption, err, out
from sbx.cli.runner import open_box

_STYLE = {"ok": "green", "failing": "bold red", "info": "dim", "suppressed": "yellow"}


def health(
    stack: StackOption = None,
    config: ConfigOption = None,
    repo: RepoOption = None,
    json_: JsonOption = False,
    no_alerts: Annotated[
        bool, typer.Option("--no-alerts", help="Check only; send no alert, keep alert state.")
    ] = False,
    serve_metrics: Annotated[
        int | None,
        typer.Option(
            "--serve-metrics",
            metavar="PORT",
            help="Then serve the newest report as Prometheus metrics on "
            "http://127.0.0.1:PORT/metrics until interrupted (scheduled runs keep it fresh).",
            min=1,
            max=65535,
        ),
    ] = None,
) -> None:
    """Run every health check; exit 1 when any fails, naming it.

    Checks run concurrently: containers, service answers (a one-token completion on the
    LLMs), disk, backup age against the RPO, exposure and TLS, container CPU and memory,
    the watchdog's verdicts. Alerts go to the [alerts] targets of sbx.toml on change only.
    """
    box = open_box(stack, config)
    from flows.health import health_check
    from sbx.errors import HealthChecksFailed
    from tasks.health.model import HealthReport

    try:
        report: HealthReport = health_check(
            stack=box.stack_param,
            config_file=box.config_param,
            repo=repo,
            alerts=not no_alerts,
        )
    except HealthChecksFailed as exc:
        report = exc.report
    if json_:
        out.print_json(report.model_dump_json())
    else:
        print_report(report)
    for check in report.failing:
        err.print(
            f"[red]✗ {escape(check.id)}[/]: {escape(check.observed)}. "
            f"{escape(check.next_step or '')}"
        )
    for delivery in report.deliveries:
        if not delivery.delivered:
            err.print(f"[yellow]alert not delivered:[/] {escape(str(delivery.error))}")
    if serve_metrics is not None:
        _serve(report.stack_dir, serve_metrics)
    raise typer.Exit(0 if report.ok else 1)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Health")(health)


def _serve(stack_dir: Path, port: int) -> None:
    from tasks.health.metrics import metrics_server

    server = metrics_server(stack_dir, port)
    err.print(f"serving metrics on http://127.0.0.1:{port}/metrics (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def print_report(report: object) -> None:
    """One line per check (check, state, what was observed, ms), fitting the terminal: paths
    relative to the stack, long values cut in the middle; --json has them whole."""
    from sbx.cli.lines import fit, shorten
    from tasks.health.model import HealthReport

    assert isinstance(report, HealthReport)
    inside = f"{report.stack_dir}/"
    rows = [
        (check.id, "suppressed" if check.suppressed_by else check.state,
         check.observed.replace(inside, ""), f"{check.duration_ms:.0f}")
        for check in report.checks
    ]  # fmt: skip
    head = ("check", "state", "observed", "ms")
    lines = fit(head, rows, out.width, flex=2, caps={0: 28})
    title = f"health of {report.project or '?'} — {report.stack_dir} ({report.duration_s:.1f} s)"
    out.print(escape(shorten(title, out.width)), soft_wrap=True)
    out.print(f"[bold]{escape(lines[0])}[/]", soft_wrap=True)
    for check, line in zip(report.checks, lines[1:], strict=True):
        out.print(f"[{_STYLE[check.state]}]{escape(line)}[/]", soft_wrap=True)
    for check in report.checks:
        if check.suppressed_by:
            out.print(escape(f"{check.id}: suppressed by {check.suppressed_by}"), soft_wrap=True)
    sent = [d for d in report.deliveries if d.delivered]
    if sent:
        out.print(
            escape(f"alerts sent: {', '.join(f'{d.event} {d.check} → {d.target}' for d in sent)}"),
            soft_wrap=True,
        )
    if report.ok:
        out.print(f"[green]all {len(report.checks)} checks pass[/]")

"""`sbx incident blast-radius` and `sbx incident contain` (flows/incident/radius.py,
flows/incident/contain.py)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape as _markup

from sbx.cli.options import ConfigOption, IncidentOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box
from tasks.incident.text import plain

if TYPE_CHECKING:
    from blocks.config import SbxConfig
    from tasks.incident.contain import ContainPlan
    from tasks.incident.radius import BlastRadiusReport


def blast_radius(
    since: Annotated[
        str, typer.Option("--since", help="ISO 8601 time, or a span before now: 30m, 2h, 1d.")
    ],
    until: Annotated[
        str | None, typer.Option("--until", help="End of the window (default: now).")
    ] = None,
    incident_id: IncidentOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Which keys, addresses, URLs and collections were touched since a time.

    Exit 0 whatever it finds (findings are the answer, not a failure); FLAGGED rows are
    what 'sbx incident contain --from-blast-radius' acts on.
    """
    from tasks.incident.logs import parse_window

    door = open_box(
        stack, config, api=False, repair=False
    )  # configuration and times before the API starts
    parse_window(since, until)
    from sbx.local_server import ensure_api

    ensure_api()
    from flows.incident.radius import incident_blast_radius

    report = incident_blast_radius(
        since=since,
        until=until,
        incident=incident_id,
        stack=door.stack_param,
        config_file=door.config_param,
    )
    if json_:
        out.print_json(report.model_dump_json())
    else:
        _print_report(report)


def contain(
    revoke_key: Annotated[
        list[str] | None, typer.Option("--revoke-key", help="Key NAME or fingerprint.")
    ] = None,
    block_domain: Annotated[
        list[str] | None,
        typer.Option("--block-domain", help="Domain to remove from agent allowlists."),
    ] = None,
    recreate: Annotated[
        list[str] | None,
        typer.Option("--recreate", help="Service to recreate from its clean digest."),
    ] = None,
    from_blast_radius: Annotated[
        bool,
        typer.Option(
            "--from-blast-radius",
            help="Also the flagged keys and domains of the saved blast-radius report.",
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask before changing.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what it would do; change nothing.")
    ] = False,
    incident_id: IncidentOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Revoke keys, take domains off allowlists, recreate containers from clean digests.

    Exit 0 when done (or nothing was left to do), 2 when it refused (nothing changed).
    """

    door = open_box(stack, config, api=False, repair=False)
    box = door.config
    revoke, block = revoke_key or [], block_domain or []
    services = recreate or []
    if not (revoke or block or services or from_blast_radius):
        raise typer.BadParameter(
            "name something to contain: --revoke-key, --block-domain, --recreate or "
            "--from-blast-radius"
        )
    if not (yes or dry_run):
        _confirm(box, incident_id, revoke, block, services, from_blast_radius)
    from sbx.local_server import ensure_api

    ensure_api()
    from flows.incident.contain import incident_contain

    report = incident_contain(
        revoke=revoke, block=block, recreate=services, from_blast_radius=from_blast_radius,
        dry_run=dry_run, incident=incident_id,
        stack=door.stack_param, config_file=door.config_param,
    )  # fmt: skip
    if json_:
        out.print_json(report.model_dump_json())
        return
    for note in report.plan.notes:
        err.print(f"[dim]note[/] {escape(note)}", soft_wrap=True)
    for line in report.done:
        out.print(escape(line), soft_wrap=True)
    if not report.done:
        err.print("nothing to contain")


def escape(text: object) -> str:
    """A string from a log, a container or a user, shown as written: no Rich markup, no
    terminal control sequence (tasks/incident/text.py)."""
    return _markup(plain(text))


def register(incident: typer.Typer) -> None:
    incident.command("blast-radius")(blast_radius)
    incident.command("contain")(contain)


def _confirm(
    box: SbxConfig,
    incident_id: str | None,
    revoke: list[str],
    block: list[str],
    recreate: list[str],
    from_blast_radius: bool,
) -> None:
    """Show the plan and ask (read only: plans without a flow run, opens no incident)."""
    from sbx.errors import ContainRefused
    from tasks.incident.contain import plan_orders
    from tasks.incident.record import current_incident

    chosen = incident_id or getattr(current_incident(box.stack_dir), "id", None)
    plan: ContainPlan = plan_orders(
        box, chosen, revoke=revoke, block=block, recreate=recreate,
        from_blast_radius=from_blast_radius,
    )  # fmt: skip
    for line in plan.sentences():
        err.print(f"will {escape(line)}", soft_wrap=True)
    if plan.empty:
        return
    if not sys.stdin.isatty():
        raise ContainRefused("not asked on a terminal. Pass --yes, or --dry-run to only list it.")
    if not typer.confirm("Carry this out?", err=True):
        raise typer.Exit(1)


def _print_report(report: BlastRadiusReport) -> None:
    from rich import box
    from rich.table import Table

    keys = Table(title="API keys used", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("", "key", "fingerprint", "requests", "refused", "addresses", "first", "last"):
        keys.add_column(column, overflow="fold")
    for k in report.api_keys:
        keys.add_row(
            "[bold red]FLAGGED[/]" if k.flagged else "", escape(k.name or "(not in keys file)"),
            escape(k.fingerprint), str(k.requests), str(k.refused), escape(", ".join(k.addresses)),
            f"{k.first_seen:%m-%d %H:%M:%S}", f"{k.last_seen:%m-%d %H:%M:%S}",
        )  # fmt: skip
    out.print(keys)
    fetches = Table(title="Agent fetches off their allowlist", box=box.SIMPLE_HEAD,
                    title_justify="left")  # fmt: skip
    for column in ("", "agent", "url", "time"):
        fetches.add_column(column, overflow="fold")
    for f in report.off_list:
        fetches.add_row(
            "[bold red]FLAGGED[/]", escape(f.agent), escape(f.url), f"{f.time:%m-%d %H:%M:%S}"
        )
    for f in report.attempts:
        fetches.add_row("refused", escape(f.agent), escape(f.url), f"{f.time:%m-%d %H:%M:%S}")
    out.print(fetches)
    qdrant = Table(title="Qdrant collections", box=box.SIMPLE_HEAD, title_justify="left")
    for column in ("collection", "points now", "reads", "writes"):
        qdrant.add_column(column)
    for c in report.collections:
        points = "-" if c.points is None else str(c.points)
        qdrant.add_row(escape(c.name), points, str(c.reads), str(c.writes))
    out.print(qdrant)
    for s in report.sources:
        state = f"[yellow]not read[/]: {escape(s.error)}" if s.error else (
            f"{s.lines} lines, {s.in_window} in the window, {s.unparsed} unreadable")  # fmt: skip
        err.print(f"{escape(s.source)}: {state}", soft_wrap=True)
    err.print(
        f"{len(report.flagged_keys)} key(s) and {len(report.flagged_domains)} domain(s) flagged; "
        f"saved in .sbx/incidents/{report.incident_id}/blast-radius.json"
    )

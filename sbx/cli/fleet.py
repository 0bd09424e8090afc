"""`sbx fleet`: every box on a shared Prefect server at a glance, read from the server alone."""

from __future__ import annotations

import os

import typer
from rich.markup import escape

from sbx.cli.options import JsonOption, out

LABELS = {"backup": "backup", "offbox": "off-box", "drill": "drill", "health": "health"}


def fleet(json_: JsonOption = False) -> None:
    """Every box of the fleet: its last backup, off-box copy, drill and RTO, health, incident.

    Reads the Prefect server (PREFECT_API_URL; no box or stack needed): the boxes are its
    'sbx-box-<box>' work pools ('sbx serve --box'), and for each the newest run that started of
    each runbook, as 'ok' or its state, with its age and its page in the UI. An incident is
    open from its first run until 'sbx incident report --close'. The 'fleet-view' flow publishes
    the same table as the 'fleet' artifact ('sbx serve --box NAME --fleet-view').
    """
    from sbx.local_server import ensure_api

    api = ensure_api().rstrip("/")
    from prefect.client.orchestration import get_client

    from sbx.cli.lines import fit
    from tasks.fleet import HEAD, RUN_COLUMNS, cells, read_fleet

    ui = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    with get_client(sync_client=True) as client:
        view = read_fleet(client, api, ui)
    if json_:
        out.print_json(view.model_dump_json())
        return
    if not view.boxes:
        out.print(
            escape(f"No box of a fleet on {api}: start 'sbx serve --box NAME' on each box "
                   "with PREFECT_API_URL pointing here (docs/fleet.md)."),
            soft_wrap=False,
        )  # fmt: skip
        return
    rows = [cells(row, view.read_at) for row in view.boxes]
    for line in fit(HEAD, rows, out.width, flex=0, caps={}):
        out.print(escape(line), soft_wrap=True)
    out.print(f"\n{len(view.boxes)} boxes on {escape(api)}; ages since each run started. Runs:")
    for row in view.boxes:
        for name in RUN_COLUMNS:
            ref = getattr(row, name)
            if ref is not None:
                label = LABELS.get(name, "incident (open)")
                out.print(escape(f"  {row.box} {label}: {ref.url}"), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Operations")(fleet)

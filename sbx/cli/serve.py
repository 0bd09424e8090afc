"""`sbx serve`: the Prefect API (local server unless PREFECT_API_URL is set), `sbx setup`, every
deployment of prefect.yaml registered, then a process worker in the foreground until SIGTERM."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import JsonOption, StackOption, err, out


def serve(
    prefect_yaml: Annotated[
        Path | None,
        typer.Option(
            "--prefect-yaml", help="Deployments to serve (default: sbx's own prefect.yaml)."
        ),
    ] = None,
    box: Annotated[
        str | None,
        typer.Option(
            "--box",
            envvar="SBX_BOX",
            help="For a fleet sharing one Prefect server: this box's name. Deployments "
            "become '<name>-<box>' in work pool 'sbx-box-<box>', so each box's worker "
            "runs only its own; its runs read only the 'sbx-secrets-<box>' block.",
        ),
    ] = None,
    fleet_view: Annotated[
        bool,
        typer.Option(
            "--fleet-view",
            help="Also refresh the fleet view (the 'fleet' artifact, 'sbx fleet') every 15 "
            "minutes from this box: give it to one box of a fleet.",
        ),
    ] = False,
    register_only: Annotated[
        bool,
        typer.Option("--register-only", help="Register the deployments, run no worker."),
    ] = False,
    stack: StackOption = None,
    json_: JsonOption = False,
) -> None:
    """Serve every scheduled deployment on this box: local server + process worker.

    Registers prefect.yaml's deployments (schedules, parameters, concurrency limits) and runs
    a process worker for the `sbx-box` pool until SIGTERM or Ctrl-C. The deployments stay
    registered when it stops: a run due meanwhile starts as soon as it is back. Each is named
    <stack>-<verb>-<schedule> (stack-backup-nightly); ones sbx registered before for the same
    stack and pool that prefect.yaml no longer declares are retired.
    """
    from blocks.config import resolve_stack_dir
    from sbx.errors import ConfigError
    from sbx.local_server import ensure_api
    from tasks.clients.compose import COMPOSE_FILE_NAMES

    stack_dir = resolve_stack_dir(stack)
    if not any((stack_dir / name).is_file() for name in COMPOSE_FILE_NAMES):
        raise ConfigError(
            f"The schedules would act on {stack_dir}, which holds no compose file. Name your "
            "box's stack once with 'sbx init --stack DIR' (or pass --stack). Nothing was "
            "registered."
        )
    api = ensure_api()
    from deployments.bootstrap import WORK_POOL, setup_prefect
    from deployments.serve import (
        FLEET_VIEW,
        PROJECT_ROOT,
        RegisteredList,
        pool_for_box,
        read_prefect_yaml,
        register_deployments,
    )

    if box:
        # every run of this worker is a subprocess that inherits the environment: it then knows
        # its box, and reads only the box's own secrets block (tasks/secrets.py)
        os.environ["SBX_BOX"] = box
    path = prefect_yaml or PROJECT_ROOT / "prefect.yaml"
    declared = read_prefect_yaml(path) + ([FLEET_VIEW] if fleet_view else [])
    specs = [spec.for_box(box) for spec in declared]
    pool = pool_for_box(WORK_POOL, box)
    for item in setup_prefect(pool):
        err.print(f"setup: {item.kind} {item.name}: {item.outcome}")
    from sbx.cli.lines import fit
    from tasks.schedules import record_schedules

    registered = register_deployments(specs, path.resolve().parent, stack_dir)
    live = [d for d in registered if d.outcome != "retired"]
    record_schedules(
        stack_dir, [(d.full_name, d.schedules) for d in live if d.stack == str(stack_dir)], api
    )
    # with --json the table goes to stdout as JSON; what it says besides goes to stderr
    say = err if json_ else out
    if json_:
        out.print_json(RegisteredList.dump_json(registered).decode())
    else:
        rows = [
            (d.full_name, ", ".join(d.schedules) or "by hand", d.outcome)
            if d.outcome != "retired"
            else (d.full_name, "—", "retired (deleted)")
            for d in registered
        ]
        out.print(escape(f"{path} → {api}; every schedule acts on the stack {stack_dir}"))
        head = ("deployment", "schedule", "registered")
        for line in fit(head, rows, out.width, flex=1, caps={}):
            out.print(escape(line), soft_wrap=True)
    others = sorted({d.stack for d in live if d.stack and d.stack != str(stack_dir)})
    for other in others:  # prefect.yaml set a stack of its own for some deployment
        say.print(escape(f"note: some deployments act on {other} (set in {path.name})"))
    ui = os.environ.get("PREFECT_UI_URL") or api.removesuffix("/api")
    say.print(f"Prefect UI: {ui}/runs  (deployments: {ui}/deployments)")
    if register_only:
        say.print(
            f"No worker polls work pool '{pool}' yet: the UI shows these deployments as "
            "'Not Ready' and scheduled runs wait (as 'Late') until one does. Start it with "
            "'sbx serve' (without --register-only).",
            soft_wrap=False,
        )
        return
    from deployments.serve import run_worker

    say.print(f"Running a process worker for work pool '{pool}'; stop it with Ctrl-C.")
    run_worker(pool, printer=lambda line: err.print(line, soft_wrap=True))


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Operations")(serve)

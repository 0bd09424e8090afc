"""`sbx logs rotate` (the rotate-logs flow, by hand) and `sbx logs setup` (logrotate + compose)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, StackOption, err, out
from sbx.cli.runner import open_box


def logs_rotate(
    stack: StackOption = None,
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be rotated and deleted.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Rotate every non-empty log, due or not.")
    ] = False,
    json_: JsonOption = False,
) -> None:
    """Rotate the stack's log files now, by size or age, losing no line (a flow run)."""
    box = open_box(stack, config)
    from flows.logs import rotate_logs
    from sbx.errors import LogRotationIncomplete

    try:
        report = rotate_logs(
            stack=box.stack_param,
            config_file=box.config_param,
            dry_run=dry_run,
            force=force,
        )
    except LogRotationIncomplete as exc:
        _print(exc.report, json_)
        raise
    _print(report, json_)


def logs_setup(
    stack: StackOption = None,
    config: ConfigOption = None,
    logrotate_file: Annotated[
        Path | None,
        typer.Option(
            "--logrotate-file",
            help="Where to write the logrotate(8) file. Default: <stack>/.sbx/logrotate.conf.",
            show_default=False,
        ),
    ] = None,
    compose: Annotated[
        bool,
        typer.Option(
            "--compose/--no-compose",
            help="Also write docker-compose.logging.yml (json-file max-size/max-file).",
        ),
    ] = True,
) -> None:
    """Write the logrotate file and compose logging options ([logs] in sbx.toml).

    For operators who prefer logrotate(8) and Docker's json-file rotation to sbx's daily
    rotate-logs deployment. The user's own compose file is never edited.
    """
    from tasks.logs.setup import write_setup

    box = open_box(stack, config, api=False).config
    done = write_setup(box, logrotate_file.absolute() if logrotate_file else None, compose=compose)
    out.print(escape(f"wrote {done.logrotate_file}"))
    err.print(
        "  logrotate(8) equivalent of \\[logs]: copy it to /etc/logrotate.d/ to use it instead "
        "of sbx's rotation (its copytruncate can lose lines; sbx's does not)."
    )
    if done.override_file is None:
        return
    files = " ".join(f"-f {f}" for f in done.compose_files)
    joined = ":".join(done.compose_files)
    out.print(escape(f"wrote {done.override_file}"))
    err.print(
        f"  json-file max-size {box.logs.docker_max_size}, max-file {box.logs.docker_max_file} "
        f"for {', '.join(done.services)} (checked with 'docker compose config').\n"
        f"  Enable it (containers are recreated with the new options):\n"
        f"    cd {box.stack_dir} && docker compose {files} up -d\n"
        f"  or put COMPOSE_FILE={joined} in {box.stack_dir / '.env'}, and\n"
        f"    \\[compose] files = {list(done.compose_files)!r} in sbx.toml (sbx reads them).",
        soft_wrap=True,
    )


def register(logs: typer.Typer) -> None:
    logs.command("rotate")(logs_rotate)
    logs.command("setup")(logs_setup)


def _print(report: Any, json_: bool) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    from tasks.logs.report import LogRotationReport
    from tasks.units import human_bytes

    assert isinstance(report, LogRotationReport)
    if json_:
        out.print_json(report.model_dump_json())
        return
    for d in report.directories:
        table = Table(
            title=f"{d.directory} — {d.filesystem}, {d.method or 'no lossless method'}",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for column in ("file", "action", "why", "rotated to", "lines", "deleted"):
            table.add_column(column, overflow="fold")
        for f in d.files:
            table.add_row(
                escape(f.path),
                f.action,
                escape(f.reason),
                f.rotated_to or "—",
                human_bytes(f.bytes_rotated),
                str(len(f.deleted)),
            )
        out.print(table)
        err.print(f"  guarantee: {escape(d.guarantee)}", soft_wrap=True)
    if not report.directories:
        err.print("no live log file matched logs.globs")

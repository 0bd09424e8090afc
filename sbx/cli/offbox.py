"""`sbx copy`: the off-box copy of the local repository (flows/offbox.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from sbx.cli.options import ConfigOption, RepoOption, StackOption, err, out
from sbx.cli.runner import open_box


def copy(
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="s3://bucket/prefix (or a directory). Default: offbox.url in sbx.toml.",
            show_default=False,
        ),
    ] = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
) -> None:
    """Copy the local repository off the box, encrypted with age; only what is missing."""
    box = open_box(stack, config, repo=repo, keys=True)
    from tasks.repository import check_copy_keys

    settings = box.config
    url = to or settings.offbox.url
    if url:  # without one the flow says what to set
        check_copy_keys(settings, url)  # key problems: exit 2 before any flow run
    from flows.offbox import copy_offbox
    from tasks.units import human_bytes

    report = copy_offbox(
        to=to, repo=box.location, stack=box.stack_param, config_file=box.config_param
    )
    err.print(
        f"sent {report.objects_sent} objects ({human_bytes(report.bytes_sent)}) and "
        f"{len(report.manifests_sent)} snapshot(s) in {report.duration_s:.1f} s"
    )
    out.print(report.target)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Backups")(copy)

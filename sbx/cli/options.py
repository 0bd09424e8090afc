"""Options shared by sbx commands, and the console the CLI prints through."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

# data (tables, ids) on stdout; progress, announcements and errors on stderr
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

StackOption = Annotated[
    Path | None,
    typer.Option(
        "--stack",
        help="The stack directory (holds docker-compose.yml). "
        "Default: $SBX_STACK_DIR or ~/sealed-box-ai/stack.",
        show_default=False,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="sbx.toml to use instead of <stack>/sbx.toml.", show_default=False
    ),
]
RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo", help="Repository: a directory or s3://bucket/prefix.", show_default=False
    ),
]
IncidentOption = Annotated[
    str | None,
    typer.Option("--incident", help="Incident ID (default: the current one).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
PartOption = Annotated[
    list[str] | None,
    typer.Option(
        "--part",
        help="Only this part (repeatable): configs, models, qdrant, ...",
        show_default=False,
    ),
]

"""`sbx init`: name the box once — its stack, repository and off-box copy — for every command
and every scheduled deployment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from sbx.cli.options import JsonOption, RepoOption, StackOption, err, out


def init(
    stack: StackOption = None,
    repo: RepoOption = None,
    offbox: Annotated[
        str | None,
        typer.Option(
            "--offbox", help="s3://bucket/prefix for the nightly off-box copy.", show_default=False
        ),
    ] = None,
    json_: JsonOption = False,
) -> None:
    """Name the box once: write the stack's sbx.toml and remember the stack.

    Afterwards every command without --stack, and every deployment 'sbx serve' registers, acts
    on this stack with its repository. Run again to change the repository or the off-box copy
    (the rest of sbx.toml is kept as it is); run with no options to see what is set.
    """
    from blocks.config import CONFIG_FILE_NAME, load_config, resolve_stack_dir
    from blocks.home import box_file, name_stack
    from blocks.init_file import with_keys
    from sbx.errors import ConfigError
    from tasks.clients.compose import COMPOSE_FILE_NAMES

    stack_dir = resolve_stack_dir(stack)
    if not stack_dir.is_dir() or not any((stack_dir / n).is_file() for n in COMPOSE_FILE_NAMES):
        raise ConfigError(
            f"{stack_dir} holds no compose file ({', '.join(COMPOSE_FILE_NAMES)}). Give --stack "
            "the directory your box's docker compose stack runs from. Nothing was written."
        )
    if offbox is not None and not offbox.startswith("s3://"):
        raise typer.BadParameter(
            f"{offbox!r} is not an s3://bucket/prefix URL.", param_hint="'--offbox'"
        )
    updates: dict[str, dict[str, str]] = {}
    if repo is not None:
        location = repo if repo.startswith("s3://") else str(Path(repo).expanduser().absolute())
        updates["repository"] = {"location": location}
    if offbox is not None:
        updates["offbox"] = {"url": offbox}
    path = stack_dir / CONFIG_FILE_NAME
    before = path.read_text(encoding="utf-8") if path.is_file() else None
    outcome = "unchanged"
    if updates or before is None:
        text = with_keys(before, updates, str(path))
        tmp = path.with_name(f".{path.name}.sbx-tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        try:
            load_config(stack_dir)
        except ConfigError:
            if before is None:
                path.unlink()
            else:
                path.write_text(before, encoding="utf-8")  # the operator's file, as it was
            raise
        outcome = "written" if before is None else "updated"
    config = load_config(stack_dir)
    named = name_stack(stack_dir)
    hint = (
        "Commands without --stack now act on this stack. Next: 'sbx backup', then 'sbx serve' "
        f"to run the schedules on it (SBX_STACK_DIR still wins; {box_file().name} is per "
        "SBX_HOME)."
    )
    if json_:  # the hint is for a person: stderr
        out.print_json(
            data={
                "stack": str(stack_dir),
                "config": str(path),
                "outcome": outcome,
                "repository": config.repository.location,
                "offbox_url": config.offbox.url,
                "remembered_in": str(named),
            }
        )
        err.print(hint)
        return
    rows = [
        ("stack", str(stack_dir)),
        ("config", f"{path} ({outcome})"),
        ("repository", config.repository.location),
        (
            "off-box copy",
            config.offbox.url or "none (add one: sbx init --offbox s3://bucket/prefix)",
        ),
        ("remembered in", f"{named}"),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        out.print(escape(f"{key.ljust(width)}  {value}"), soft_wrap=True)
    out.print(hint)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Operations")(init)

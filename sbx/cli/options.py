"""Options shared by sbx commands, and the console the CLI prints through."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

#: what --repo takes: a directory, or this scheme (anything else with :// is a mistake)
REPO_SCHEMES = ("s3://",)


def not_utf8(value: str) -> bool:
    """Whether ``value`` holds bytes that are not UTF-8 (Python passes them as surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _utf8_path(value: Path | None, option: str) -> Path | None:
    # flow parameters, manifests and reports are JSON (UTF-8): such a path would fail later,
    # halfway, with a traceback; refused here with the fix
    if value is not None and not_utf8(str(value)):
        shown = os.fsencode(value).decode("utf-8", "backslashreplace")  # shows the bytes as \xff
        raise typer.BadParameter(
            f"'{shown}' is not valid UTF-8; rename it, or give a UTF-8 symlink to it.",
            param_hint=f"'{option}'",
        )
    return value


def check_stack(ctx: typer.Context, stack: Path | None) -> Path | None:
    """``--stack`` callback: a UTF-8 path to a directory (leftovers: sbx/cli/runner.py)."""
    _utf8_path(stack, "--stack")
    if stack is not None and stack.exists() and not stack.is_dir():
        raise typer.BadParameter(
            f"{str(stack)!r} is a file, not a directory; give the stack directory (the one "
            "holding docker-compose.yml).",
            param_hint="'--stack'",
        )
    return stack


def check_repo(repo: str | None) -> str | None:
    """``--repo`` callback: a UTF-8 directory path or an s3:// URL, never empty."""
    if repo is None:
        return None
    hint = "'--repo'"
    if not repo.strip():
        raise typer.BadParameter(
            "is empty; give a repository directory or s3://bucket/prefix, or leave --repo out "
            "to use the configured repository.",
            param_hint=hint,
        )
    if "://" in repo and not repo.startswith(REPO_SCHEMES):
        scheme = repo.partition("://")[0]
        raise typer.BadParameter(
            f"{scheme}:// is not a repository sbx can use; give a directory or s3://bucket/prefix.",
            param_hint=hint,
        )
    _utf8_path(Path(repo), "--repo")
    return repo


def check_path(ctx: typer.Context, param: typer.CallbackParam, value: Path | None) -> Path | None:
    """Callback of path options (--to, --config): valid UTF-8."""
    return _utf8_path(value, f"--{param.name}")


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
        callback=check_stack,
    ),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="sbx.toml to use instead of <stack>/sbx.toml.",
        show_default=False,
        callback=check_path,
    ),
]
RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        help="Repository: a directory or s3://bucket/prefix.",
        show_default=False,
        callback=check_repo,
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


def tidy_help(app: typer.Typer) -> None:
    """Command help as an operator reads it, for ``app`` and its groups.

    Typer's rich mode keeps every line break of a docstring after its first paragraph (help at
    80 columns broke as "on the / LLMs") and reads ``[alerts]`` as Rich markup (the word
    vanished). Each paragraph is joined into one line, which Rich then wraps at the terminal's
    width, and brackets are escaped.
    """
    import inspect

    from rich.markup import escape

    for info in app.registered_commands:
        doc = info.help if info.help is not None else inspect.getdoc(info.callback) or ""
        paragraphs = [" ".join(p.split()) for p in doc.split("\n\n")]
        info.help = escape("\n\n".join(p for p in paragraphs if p))
    for group in app.registered_groups:
        if group.typer_instance is not None:
            tidy_help(group.typer_instance)


def hide_flag_types() -> None:
    """No ``<bool>`` type column for flags in help (typer 0.29 shows one for ``--json``,
    ``--help``...): a flag takes no value, so the column only misleads."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich
    if getattr(shown, "_sbx_flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    display_type_rich._sbx_flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]

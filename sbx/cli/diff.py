"""``sbx diff A B``: files added, removed and changed between two snapshots, as ``restic diff``
prints them, from the two manifests alone (no object is read, no flow runs: a listing)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape

from sbx.cli.options import ConfigOption, JsonOption, PartOption, RepoOption, StackOption, out
from sbx.cli.runner import open_box

CODE_WIDTH = 5  # restic's "%-5s%v": the code, then the path


def diff(
    a: Annotated[
        str, typer.Argument(metavar="A", help="The older snapshot: an id, its start, or 'latest'.")
    ],
    b: Annotated[
        str, typer.Argument(metavar="B", help="The newer snapshot: an id, its start, or 'latest'.")
    ],
    part: PartOption = None,
    repo: RepoOption = None,
    stack: StackOption = None,
    config: ConfigOption = None,
    json_: JsonOption = False,
) -> None:
    """Files added (+), removed (-), changed (M: content, U: mode or owner only, T: type)
    between snapshots A and B, read from their manifests alone."""
    door = open_box(stack, config, repo=repo, api=False)
    from sbx.repository import Repository
    from sbx.repository.catalog import match_id
    from sbx.repository.diff import diff_snapshots
    from tasks.repository import open_encrypted

    repository = Repository.open(open_encrypted(door.config, door.location))
    first = repository.load_snapshot(match_id(repository.storage, a))
    second = repository.load_snapshot(match_id(repository.storage, b))
    held = {p.name for p in first.parts} | {p.name for p in second.parts}
    if unknown := [name for name in part or () if name not in held]:  # else an empty diff
        raise typer.BadParameter(
            f"neither snapshot holds part {', '.join(unknown)}; they hold "
            f"{', '.join(sorted(held)) or 'no parts'}.",
            param_hint="'--part'",
        )
    result = diff_snapshots(first, second, part or None)
    if json_:
        out.print_json(result.model_dump_json())
        return
    _print_diff(result)


def _print_diff(result: Any) -> None:
    """restic's layout: a heading, one line per change, then the counts."""
    from sbx.cli.lines import shorten
    from tasks.units import human_bytes

    width = max(40, out.width)
    out.print(escape(f"comparing snapshot {result.a} to {result.b}:"), soft_wrap=True)
    out.print()
    for change in result.changes:
        out.print(escape(change_line(change, width)), soft_wrap=True)
    if result.changes:
        out.print()
    c = result.counts
    lines = [
        f"Files:  {c.files_new:5d} new, {c.files_removed:5d} removed, {c.files_changed:5d} changed",
        f"Dirs:   {c.dirs_new:5d} new, {c.dirs_removed:5d} removed",
        f"Others: {c.others_new:5d} new, {c.others_removed:5d} removed",
        f"  Added:   {human_bytes(c.bytes_added)}",
        f"  Removed: {human_bytes(c.bytes_removed)}",
    ]
    for line in lines:
        out.print(escape(shorten(line, width)), soft_wrap=True)


def change_line(change: Any, width: int) -> str:
    """``M    path  (what changed)`` in ``width`` characters: the path is cut in the middle
    first, the details after it (they name targets, which may be long too)."""
    from sbx.cli.lines import shorten

    path = change.path.replace("\n", "\\n") + ("/" if _is_dir(change) else "")
    detail = describe(change).replace("\n", "\\n")
    room = width - CODE_WIDTH
    if detail:
        detail_room = min(len(detail) + 4, room // 2)  # the path keeps half the line at least
        detail = f"  ({shorten(detail, detail_room - 4)})"
    return f"{change.code:<{CODE_WIDTH}}{shorten(path, room - len(detail))}{detail}"


def describe(change: Any) -> str:
    """What changed, with both values where they are short: ``size 3 B → 9 B, mode 0644 →
    0600``; the content by name only (its hashes are in --json)."""
    from tasks.units import human_bytes

    before, after = change.before, change.after
    if change.code == "T":
        return f"{before.type} → {after.type}"
    if change.code not in "MU":
        return ""
    shown = {
        "content": "content",
        "size": f"size {human_bytes(before.size)} → {human_bytes(after.size)}",
        "link": f"link {before.link} → {after.link}",
        "mode": f"mode {before.mode:04o} → {after.mode:04o}",
        "owner": f"owner {before.uid}:{before.gid} → {after.uid}:{after.gid}",
        "xattrs": "xattrs",
    }
    return ", ".join(shown[name] for name in change.what)


def _is_dir(change: Any) -> bool:
    state = change.after or change.before
    return bool(state is not None and state.type == "dir")


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Backups")(diff)

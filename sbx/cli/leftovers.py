"""Before a command touches a stack: finish what a killed sbx run left behind (issue #6).

The ``--stack`` option's callback runs this for every command that names a stack. It costs three
``stat`` calls when nothing was left (stop markers, a swap journal, an open upgrade entry);
otherwise it runs the ``reconcile-stack`` flow (so the run history shows the repair) and says what
it did on stderr.

Not for the commands that must see the stack exactly as it is (``incident`` steps: evidence comes
before any restart) or that finish an open journal entry themselves (``upgrade``, ``rollback``).
"""

from __future__ import annotations

from pathlib import Path

import typer

# command paths (parent, name) that never trigger the repair; a parent alone covers its children
SKIPPED = {"upgrade", "rollback", "incident"}
OPEN_ENTRY = Path(".sbx") / "upgrade" / "open.json"
STOP_MARKERS = Path(".sbx") / "stopped"
SWAP_JOURNAL = (
    Path(".sbx") / "swap.json"
)  # tasks.restore.swap_journal.JOURNAL (not imported: Docker SDK)


def left_behind(stack_dir: Path) -> bool:
    """True when a killed run may have left a stopped container, a half-done swap of restored
    data or an open upgrade journal entry."""
    from tasks.upgrade.journal import read_open

    markers = stack_dir / STOP_MARKERS
    if markers.is_dir() and any(markers.glob("*.json")):
        return True
    if (stack_dir / SWAP_JOURNAL).exists():
        return True
    try:
        entry = read_open(stack_dir)
    except ValueError:  # a torn open.json: the reconcile step knows what to do with it
        return True
    return entry is not None and not entry.writer_alive()


def finish_leftovers(ctx: typer.Context, stack: Path | None) -> Path | None:
    """``--stack`` callback: repair leftovers of a killed run, then hand the value on."""
    names = {ctx.info_name, ctx.parent.info_name if ctx.parent else None}
    if ctx.resilient_parsing or names & SKIPPED:
        return stack
    from blocks.config import resolve_stack_dir

    stack_dir = resolve_stack_dir(stack)
    if not left_behind(stack_dir):
        return stack
    from sbx.local_server import ensure_api

    ensure_api()
    from flows.reconcile import reconcile_stack
    from sbx.cli.options import err  # common imports this module for its --stack option

    err.print("a killed sbx run left this stack unfinished: finishing it first")
    report = reconcile_stack(stack=str(stack_dir))
    err.print(report.describe(), soft_wrap=True)
    return stack

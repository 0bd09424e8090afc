"""What ``sbx backup`` prints: one line per part, what the compose model named and where it went,
warnings and config drift — fitted to the terminal (80 columns, a pipe, systemd's journal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.markup import escape

from sbx.cli.options import err


def print_backup(report: Any) -> None:
    """One line per part (part, how, status, files, size, new, time) fitting the terminal; a
    part's reason for failing or being skipped on its own line below it."""
    from sbx.cli.lines import fit
    from tasks.units import human_bytes

    rows = [
        (p.name, p.mode, p.status, str(p.stats.files), human_bytes(p.stats.bytes),
         human_bytes(p.stats.new_bytes), f"{p.stats.duration_s:.1f} s")
        for p in report.parts
    ]  # fmt: skip
    head = ("part", "method used", "status", "files", "size", "new", "time")
    lines = fit(head, rows, err.width, flex=1, caps={0: 16})
    err.print(escape(f"snapshot {report.snapshot_id}"), soft_wrap=True)
    err.print(f"[bold]{escape(lines[0])}[/]", soft_wrap=True)
    for p, line in zip(report.parts, lines[1:], strict=True):
        err.print(escape(line), soft_wrap=True)
        if p.reason:  # whole, wrapped at words: it says what to do
            err.print(escape(f"  ↳ {p.reason}".replace("\n", " ")))
    _print_sources(report)
    s = report.stats
    err.print(
        f"{s.files} files, {human_bytes(s.bytes)} ({human_bytes(s.new_bytes)} new) in "
        f"{s.duration_s:.1f} s → {escape(report.repository)}",
        soft_wrap=True,
    )
    _print_warnings(report)
    print_drift(report)


def print_drift(report: Any) -> None:
    if getattr(report, "drift", None):  # hand edits of configuration: in the change log
        from sbx.cli.lines import shorten

        err.print(f"[yellow]config drift[/]: {len(report.drift)} file(s) changed outside sbx "
                  "(recorded in the change log; 'sbx changelog' shows them)")  # fmt: skip
        for drift in report.drift:
            err.print(escape(shorten(f"  {drift.describe()}", max(20, err.width))), soft_wrap=True)


def _print_sources(report: Any) -> None:
    """Each bind mount, volume and file the compose model names, and where it went: paths
    inside the stack relative to it, the part alone where it keeps the same path."""
    found = [(p.name, s) for p in report.parts for s in p.sources]
    if not found:
        return
    err.print("[bold]from the compose model[/]")
    for part, src in found:
        shown = shown_source(str(src["from"]), Path(report.stack_dir))
        stored = src["stored_as"]
        where = "-" if not stored else part if stored == shown else f"{part}: {stored}"
        line = f"  {src['kind']} {shown} → {where} ({src['status']})"
        err.print(escape(line.replace("\n", " ")), soft_wrap=True)


def shown_source(source: str, stack_dir: Path) -> str:
    """A source path relative to the stack when it lies in it; volumes and outside paths as
    they are."""
    path = Path(source)
    if path.is_absolute() and path.is_relative_to(stack_dir) and path != stack_dir:
        return path.relative_to(stack_dir).as_posix()
    return source


#: warnings shown on the terminal; the Prefect artifact lists them all
SHOWN_WARNINGS = 5


def _print_warnings(report: Any) -> None:
    """How many warnings of each kind, and the first few (escaped: they hold file names)."""
    from sbx.cli.lines import shorten
    from tasks.reports import warning_counts

    counts = warning_counts(report.parts)
    if not counts:
        return
    total = sum(counts.values())
    kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    err.print(f"[yellow]{total} warning(s)[/]: {escape(kinds)}")
    shown = [(p.name, w) for p in report.parts for w in p.warnings][:SHOWN_WARNINGS]
    for name, message in shown:
        one_line = message.replace("\n", "\\n")  # a file name may hold a newline
        # one line each, cut in the middle at the terminal's width: the artifact has them whole
        err.print(escape(shorten(f"  {name}: {one_line}", max(20, err.width))), soft_wrap=True)
    if total > len(shown):
        err.print(f"  ... and {total - len(shown)} more (see the run's backup artifact)")

"""The backup summary on the terminal and in the Prefect artifact: warnings counted by kind,
the first few shown, every user-controlled string printed as it is (not as Rich markup)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from rich.console import Console

from sbx.cli import backup_output as backups_cli
from sbx.repository import Stats
from tasks.reports import BackupReport, PartSummary, backup_markdown


def _report() -> BackupReport:
    warnings = [
        "data/open-webui/web[ui].db changed while being read; kept the 10 bytes read",
        "data/open-webui/run/s skipped: a socket (not backed up)",
        "data/open-webui/uploads/a vanished or was renamed while the backup read it; what was "
        "below it is not in this snapshot (part marked incomplete). Run the backup again once "
        "the stack is idle.",
        *(f"data/open-webui/f{i} skipped: a fifo (not backed up)" for i in range(6)),
    ]
    part = PartSummary(
        name="open-webui",
        method="sqlite-online",
        mode="sqlite-online-backup",
        status="failed",
        reason="could not read [bold]web[ui].db[/bold]",
        stats=Stats(),
        warnings=warnings,
        incomplete=["data/open-webui/uploads/a"],
    )
    return BackupReport(
        snapshot_id="20260102T030405Z-abcdef",
        repository="/srv/[repo]",
        stack_dir=Path("/stack"),
        project=None,
        started_at=datetime(2026, 1, 2, tzinfo=UTC),
        stats=Stats(),
        parts=[part],
        restarted=[],
        docker=False,
    )


def test_terminal_summary_counts_warnings_and_shows_names_verbatim(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = io.StringIO()
    monkeypatch.setattr(backups_cli, "err", Console(file=text, width=400, highlight=False))
    backups_cli.print_backup(_report())
    shown = text.getvalue()
    assert "9 warning(s)" in shown
    assert "7 special files skipped" in shown
    assert "1 files changed while read" in shown
    assert "1 directories vanished mid-walk" in shown
    assert "data/open-webui/web[ui].db changed while being read" in shown
    assert "could not read [bold]web[ui].db[/bold]" in shown
    assert "/srv/[repo]" in shown
    assert "... and 4 more" in shown


def test_incomplete_part_is_a_problem_and_the_artifact_lists_warnings() -> None:
    report = _report()
    assert any("part open-webui is incomplete" in p for p in report.problems)
    markdown = backup_markdown(report)
    assert "9 warnings: 7 special files skipped" in markdown
    assert "uploads/a vanished or was renamed" in markdown


def test_one_line_per_part_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    text = io.StringIO()
    monkeypatch.setattr(backups_cli, "err", Console(file=text, width=80, highlight=False))
    backups_cli.print_backup(_report())
    lines = text.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), text.getvalue()
    (row,) = [line for line in lines if line.startswith("open-webui ")]
    assert "sqlite-online-backup" in row and "failed" in row  # #20: cut to 'sqlite-onl…'
    assert any("↳ could not read [bold]web[ui].db[/bold]" in line for line in lines)


def test_compose_model_sources_are_shown_relative_to_the_stack(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At 80 columns a source inside the stack reads as its path there (the part alone when it
    is stored under the same path); outside paths and volumes as they are."""
    sources: list[dict[str, object]] = [
        {"kind": "env-file", "from": "/stack/env/stack.env", "stored_as": "env/stack.env",
         "status": "captured"},
        {"kind": "bind", "from": "/srv/models", "stored_as": "outside/srv/models",
         "status": "captured"},
        {"kind": "volume", "from": "box_chats", "stored_as": "volumes/box_chats",
         "status": "captured"},
        {"kind": "bind", "from": "/var/run/docker.sock", "stored_as": "",
         "status": "not captured: a socket"},
    ]  # fmt: skip
    report = _report()
    part = report.parts[0].model_copy(update={"sources": sources})
    report = report.model_copy(update={"parts": [part]})
    text = io.StringIO()
    monkeypatch.setattr(backups_cli, "err", Console(file=text, width=80, highlight=False))
    backups_cli.print_backup(report)
    shown = text.getvalue()
    assert "  env-file env/stack.env → open-webui (captured)" in shown
    assert "  bind /srv/models → open-webui: outside/srv/models (captured)" in shown
    assert "  volume box_chats → open-webui: volumes/box_chats (captured)" in shown
    assert "  bind /var/run/docker.sock → - (not captured: a socket)" in shown
    assert "/stack/env" not in shown

"""The incident record every `sbx incident` step shares: open, append, close."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sbx.errors import ConfigError
from tasks.incident.record import (
    close_incident,
    current_incident,
    open_or_current,
    read_actions,
    record_action,
)

WHEN = datetime(2026, 11, 27, 3, 15, tzinfo=UTC)


def test_first_step_opens_and_later_steps_join(tmp_path: Path) -> None:
    first = open_or_current(tmp_path, "freeze", now=WHEN)
    assert first.id == "20261127T031500Z"
    assert first.opened_by == "freeze"
    assert open_or_current(tmp_path, "preserve").id == first.id
    assert current_incident(tmp_path) == first


def test_actions_are_appended_in_order_and_torn_lines_skipped(tmp_path: Path) -> None:
    info = open_or_current(tmp_path, "freeze", now=WHEN)
    record_action(tmp_path, info.id, "freeze", "stopped proxy", details={"stopped": ["proxy"]})
    record_action(tmp_path, info.id, "preserve", "bundle written", ok=False)
    log = tmp_path / ".sbx" / "incidents" / info.id / "actions.jsonl"
    with log.open("a") as handle:
        handle.write('{"at": "2026-11')  # a write cut short by a crash
    record_action(tmp_path, info.id, "contain", "after the crash")  # starts a line of its own
    actions = read_actions(tmp_path, info.id)
    assert [(a.step, a.ok) for a in actions] == [
        ("freeze", True), ("preserve", False), ("contain", True)
    ]  # fmt: skip
    assert actions[0].details == {"stopped": ["proxy"]}


def test_closed_incident_is_not_current_and_next_step_opens_a_new_one(tmp_path: Path) -> None:
    info = open_or_current(tmp_path, "freeze", now=WHEN)
    close_incident(tmp_path, info.id)
    assert current_incident(tmp_path) is None
    again = open_or_current(tmp_path, "preserve", now=WHEN)  # same second: a distinct id
    assert again.id == f"{info.id}-1"
    assert open_or_current(tmp_path, "report", incident_id=info.id).closed_at is not None


def test_unknown_incident_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="No incident 'nope'"):
        open_or_current(tmp_path, "report", incident_id="nope")

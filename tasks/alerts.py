"""Alerts on change only: healthy → failing, failing → recovered, and reminders while it lasts.

State lives in ``<stack>/.sbx/health-state.json`` (written atomically, under a file lock), not
in a Prefect Variable: it describes one stack, so it sits beside it; a manual ``sbx health`` and
the scheduled run share it even when they talk to different Prefect servers; and it needs no API
round trip to read. Per check and per alert target it remembers what that target was last *told*
("ok" or "failing"), so de-duplication and retries fall out of one rule: tell a target when what
it was told differs from what is true. A delivery that fails leaves the state as it was, so the
next run sends it again. A suppressed check (its parent fails) changes nothing: its parent's
alert covers it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from blocks.config import AlertTarget
from tasks.health.model import CheckResult, HealthReport

STATE_FILE = Path(".sbx") / "health-state.json"
Told = Literal["ok", "failing"]
Event = Literal["failing", "recovered", "reminder"]


class TargetMemory(BaseModel):
    model_config = ConfigDict(frozen=True)

    told: Told = "ok"
    last_sent_at: datetime | None = None


class CheckMemory(BaseModel):
    model_config = ConfigDict(frozen=True)

    failing: bool  # failing or suppressed
    since: datetime
    targets: dict[str, TargetMemory] = Field(default_factory=dict)


class AlertState(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = 1
    checks: dict[str, CheckMemory] = Field(default_factory=dict)


class Notice(BaseModel):
    model_config = ConfigDict(frozen=True)

    target: str
    check: str
    event: Event
    subject: str
    body: str
    wanted: bool  # False: the target's `on` leaves this event out; remembered, not sent


def plan_notices(
    previous: AlertState,
    report: HealthReport,
    targets: dict[str, AlertTarget],
    now: datetime,
    reminder: timedelta,
    muted: frozenset[str] = frozenset(),
) -> list[Notice]:
    """What to tell whom, as a pure function of the previous state and this report.

    ``muted`` checks (an upgrade's maintenance window, tasks/upgrade/maintenance.py) get no
    notice; their state is not remembered as told, so one still failing after the window alerts
    then."""
    notices = []
    for check in report.checks:
        if check.id in muted:
            continue
        memory = previous.checks.get(check.id)
        since = memory.since if memory and memory.failing == check.failed else now
        if memory and memory.failing and not check.failed:  # a recovery lasted since it failed
            since = memory.since
        for name, target in targets.items():
            told = memory.targets.get(name, TargetMemory()) if memory else TargetMemory()
            event: Event | None = None
            if check.state == "failing" and told.told == "ok":
                event = "failing"
            elif check.state == "failing" and (
                told.last_sent_at is None or now - told.last_sent_at >= reminder
            ):
                event = "reminder"
            elif check.state in ("ok", "info") and told.told == "failing":
                event = "recovered"
            if event is not None:
                subject, body = message(event, check, report, since, now)
                notices.append(
                    Notice(
                        target=name,
                        check=check.id,
                        event=event,
                        subject=subject,
                        body=body,
                        wanted=event in target.on,
                    )
                )
    return notices


def remember(
    previous: AlertState, report: HealthReport, done: list[Notice], now: datetime
) -> AlertState:
    """The state after this run: ``done`` are the notices delivered (or not wanted)."""
    checks = {}
    for check in report.checks:
        memory = previous.checks.get(check.id)
        targets = dict(memory.targets) if memory else {}
        for notice in (n for n in done if n.check == check.id):
            told: Told = "ok" if notice.event == "recovered" else "failing"
            targets[notice.target] = TargetMemory(told=told, last_sent_at=now)
        since = memory.since if memory and memory.failing == check.failed else now
        checks[check.id] = CheckMemory(failing=check.failed, since=since, targets=targets)
    return AlertState(checks=checks)


def message(
    event: Event, check: CheckResult, report: HealthReport, since: datetime, now: datetime
) -> tuple[str, str]:
    """Subject and body: the check, the stack, what was observed and the next step."""
    stack = f"{report.stack_dir.name} ({report.host}:{report.stack_dir})"
    lasted = _duration(now - since)
    if event == "recovered":
        subject = f"[sbx] RECOVERED {check.id} on {report.stack_dir.name}"
        lines = [
            f"{check.id} on stack {stack} recovered after {lasted}.",
            f"Now: {check.observed}",
        ]
    else:
        word = "FAILING" if event == "failing" else "STILL FAILING"
        subject = f"[sbx] {word} {check.id} on {report.stack_dir.name}"
        lines = [
            f"{check.id} on stack {stack} is failing"
            + (f" for {lasted} now." if event == "reminder" else "."),
            f"Observed: {check.observed}",
            f"Next step: {check.next_step or 'see sbx health'}",
        ]
        covered = [c.id for c in report.checks if c.suppressed_by == check.id]
        if covered:
            lines.append(f"Also failing because of it (no separate alert): {', '.join(covered)}")
    lines.append(
        f"Checked at {report.started_at:%Y-%m-%d %H:%M:%S %Z}; run 'sbx health' to see all."
    )
    return subject, "\n".join(lines)


def _duration(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- the state file ------------------------------------------------------------------------------


@contextlib.contextmanager
def locked_state(stack_dir: Path) -> Iterator[tuple[AlertState, Path]]:
    """The saved state under an exclusive lock (one health run decides at a time)."""
    path = stack_dir / STATE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / "health-state.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield load_state(path), path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load_state(path: Path) -> AlertState:
    """The saved state; a missing or unreadable file starts afresh (at worst: one re-alert)."""
    try:
        return AlertState.model_validate_json(path.read_bytes())
    except (OSError, ValidationError, ValueError):
        return AlertState()


def save_state(path: Path, state: AlertState) -> None:
    """Write to a temporary file, fsync, rename: a crash leaves the old state or the new."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        fh.write(json.dumps(state.model_dump(mode="json"), indent=1, sort_keys=True))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)

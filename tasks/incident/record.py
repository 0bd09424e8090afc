"""The record of one incident, ``<stack>/.sbx/incidents/<id>/``, shared by every incident step.

An incident is opened by the first step that needs one (``freeze`` or ``preserve`` usually) and
stays the *current* incident until ``close_incident`` marks it closed (``sbx incident report
--close``).
Every step appends what it did to ``actions.jsonl`` (one JSON object a line, appended with one
``write`` + ``fsync`` under a lock), so ``sbx incident report`` can rebuild the timeline without
trusting anybody's memory. Evidence bundles live under ``<id>/evidence/<bundle>/``.

The folder sits under ``.sbx/`` so backups leave it out and a restore never overwrites it.

Layout::

    .sbx/incidents/<id>/incident.json    IncidentInfo (id, opened_at, opened_by, closed_at)
    .sbx/incidents/<id>/actions.jsonl    IncidentAction, one a line
    .sbx/incidents/<id>/evidence/        bundles written by ``sbx incident preserve``
    .sbx/incidents/<id>/...              anything else a step wants to keep (blast-radius.json, …)
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sbx.durable import append_durably, is_no_space, write_atomic
from sbx.errors import ConfigError, NoSpace
from tasks.changelog import current_flow_run_id

INCIDENTS_DIR = Path(".sbx") / "incidents"
SCHEMA_VERSION = 1


class IncidentInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(description="UTC opening time, e.g. 20261127T031500Z; also the folder name.")
    opened_at: datetime
    opened_by: str = Field(description="The step that opened it, e.g. 'freeze'.")
    closed_at: datetime | None = None


class IncidentAction(BaseModel):
    """One thing a step did (or refused to do), as the report will show it."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    at: datetime
    step: str = Field(description="freeze, unfreeze, preserve, blast-radius, contain, recover, …")
    summary: str = Field(description="One line for the timeline.")
    flow_run_id: str | None = None
    ok: bool = True
    details: dict[str, Any] = Field(default_factory=dict)


def incidents_root(stack_dir: Path) -> Path:
    return stack_dir / INCIDENTS_DIR


def incident_dir(stack_dir: Path, incident_id: str) -> Path:
    return incidents_root(stack_dir) / incident_id


def _new_id(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@contextlib.contextmanager
def _locked(stack_dir: Path) -> Iterator[None]:
    root = incidents_root(stack_dir)
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def read_incident(stack_dir: Path, incident_id: str) -> IncidentInfo:
    path = incident_dir(stack_dir, incident_id) / "incident.json"
    try:
        return IncidentInfo.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise ConfigError(
            f"No incident {incident_id!r} under {incidents_root(stack_dir)}. List them with "
            "'ls .sbx/incidents' in the stack, or leave --incident out to use the current one."
        ) from None


def list_incidents(stack_dir: Path) -> list[IncidentInfo]:
    """Every incident of the stack, oldest first."""
    root = incidents_root(stack_dir)
    found = []
    for path in sorted(root.glob("*/incident.json")) if root.is_dir() else []:
        found.append(IncidentInfo.model_validate_json(path.read_bytes()))
    return found


def current_incident(stack_dir: Path) -> IncidentInfo | None:
    """The newest incident that is not closed, if any."""
    open_ones = [i for i in list_incidents(stack_dir) if i.closed_at is None]
    return open_ones[-1] if open_ones else None


def _write_info(stack_dir: Path, info: IncidentInfo, outcome: str) -> None:
    """incident.json, whole; on a full disk nothing is left (not even a new, empty folder)."""
    folder = incident_dir(stack_dir, info.id)
    new = not folder.exists()
    try:
        write_atomic(folder / "incident.json", info.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        if new:
            shutil.rmtree(folder, ignore_errors=True)
        if not is_no_space(exc):
            raise
        raise NoSpace(folder / "incident.json", outcome) from exc


def open_or_current(
    stack_dir: Path, step: str, incident_id: str | None = None, now: datetime | None = None
) -> IncidentInfo:
    """The incident a step works on: the one named, else the current one, else a new one."""
    if incident_id is not None:
        return read_incident(stack_dir, incident_id)
    with _locked(stack_dir):
        current = current_incident(stack_dir)
        if current is not None:
            return current
        when = now or datetime.now(UTC)
        base = _new_id(when)
        chosen, n = base, 1
        while incident_dir(stack_dir, chosen).exists():  # two opened within one second
            chosen, n = f"{base}-{n}", n + 1
        info = IncidentInfo(id=chosen, opened_at=when, opened_by=step)
        _write_info(stack_dir, info, "no incident was opened and nothing was changed")
        return info


def close_incident(stack_dir: Path, incident_id: str, now: datetime | None = None) -> IncidentInfo:
    with _locked(stack_dir):
        info = read_incident(stack_dir, incident_id)
        if info.closed_at is None:
            info = info.model_copy(update={"closed_at": now or datetime.now(UTC)})
            _write_info(stack_dir, info, "the incident stays open")
        return info


def record_action(
    stack_dir: Path,
    incident_id: str,
    step: str,
    summary: str,
    *,
    ok: bool = True,
    details: dict[str, Any] | None = None,
) -> IncidentAction:
    """Append one action to the incident's ``actions.jsonl`` (durable before it returns)."""
    action = IncidentAction(
        at=datetime.now(UTC),
        step=step,
        summary=summary,
        flow_run_id=current_flow_run_id(),
        ok=ok,
        details=details or {},
    )
    line = (json.dumps(action.model_dump(mode="json"), sort_keys=True) + "\n").encode()
    with _locked(stack_dir):
        path = incident_dir(stack_dir, incident_id) / "actions.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            append_durably(path, line)
        except OSError as exc:
            if not is_no_space(exc):
                raise
            raise NoSpace(path, f"the incident's record lacks this action: {summary}") from exc
    return action


def read_actions(stack_dir: Path, incident_id: str) -> list[IncidentAction]:
    """The incident's actions in the order they were recorded (a torn last line is skipped)."""
    path = incident_dir(stack_dir, incident_id) / "actions.jsonl"
    actions = []
    for raw in path.read_bytes().splitlines() if path.exists() else []:
        try:
            actions.append(IncidentAction.model_validate_json(raw))
        except ValueError:
            continue
    return actions
